#!/usr/bin/env python3
"""F16 / BF16 weights: convert an mho model file, and compare attribution reports.

    python scripts/half_weights.py convert MODEL.safetensors OUT_PREFIX
        writes OUT_PREFIX_f16.safetensors and OUT_PREFIX_bf16.safetensors (same architecture
        metadata, floating-point tensors cast; needs torch + safetensors, e.g. /opt/mho-venv).
    python scripts/half_weights.py compare REF.json OTHER.json [...]
        for each OTHER (an `mho attribute` report of the same request), prints the largest
        relative change of F(x) and, per layer, the largest attribution change as a
        percentage of REF's largest magnitude in that layer (plain Python).

The figures in docs/benchmarks.md ("f16 and bf16 weights") come from these two commands.
"""
import json
import sys


def convert(model, prefix):
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(model, "pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    for dtype, name in [(torch.float16, "f16"), (torch.bfloat16, "bf16")]:
        out = {k: v.to(dtype) if v.is_floating_point() else v for k, v in tensors.items()}
        save_file(out, f"{prefix}_{name}.safetensors", metadata=meta)
        print(f"wrote {prefix}_{name}.safetensors")


def flat(x):
    if isinstance(x, list):
        for y in x:
            yield from flat(y)
    else:
        yield x


def compare(ref_path, others):
    ref = json.load(open(ref_path))
    for path in others:
        other = json.load(open(path))
        fa, fb = ref["outputs"]["input"], other["outputs"]["input"]
        rel = max(abs(p - q) / abs(p) for p, q in zip(fa, fb))
        parts = []
        for layer, att in ref["attributions"].items():
            x = list(flat(att["data"]))
            y = list(flat(other["attributions"][layer]["data"]))
            scale = max(abs(v) for v in x) or 1.0
            parts.append(f"{layer}: {100 * max(abs(p - q) for p, q in zip(x, y)) / scale:.2f}%")
        print(f"{path}: F(x) relative change {rel:.2e}; " + ", ".join(parts))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "convert":
        convert(sys.argv[2], sys.argv[3])
    elif len(sys.argv) >= 4 and sys.argv[1] == "compare":
        compare(sys.argv[2], sys.argv[3:])
    else:
        sys.exit(__doc__)
