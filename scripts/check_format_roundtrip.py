#!/usr/bin/env python3
"""Run an mho model file in PyTorch: load it with mho_format.load_sequential, feed it
INPUT.npy and print the outputs as JSON in the shape of `mho predict`:
{"outputs": {"shape": [N, K], "data": [row-major]}}.

    /opt/mho-venv/bin/python scripts/check_format_roundtrip.py M.safetensors X.npy [--f64]
    diff <(mho predict --model M.safetensors --input X.npy) <(... this script ...)  # up to rounding

With --compare OUT.json (the JSON `mho predict` wrote) it prints the largest relative
difference, max|mho - torch| / max|torch|, and exits 1 above --rtol (default 1e-5).
Inputs: float32/float64 (or int64/int32 token indices for Embedding), shaped
input_shape or [N, *input_shape]; computation in f32 (--f64: in f64).
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
from safetensors import safe_open

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mho_format import load_sequential  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("input")
    ap.add_argument("--f64", action="store_true", help="compute in float64")
    ap.add_argument("--compare", metavar="OUT.json", help="mho predict's JSON to compare with")
    ap.add_argument("--rtol", type=float, default=1e-5)
    a = ap.parse_args()

    dtype = torch.float64 if a.f64 else torch.float32
    model = load_sequential(a.model, dtype)
    with safe_open(a.model, "pt") as f:
        input_shape = json.loads(f.metadata()["architecture"])["input_shape"]
    x = np.load(a.input)
    if list(x.shape) == list(input_shape):
        x = x[None]  # one example without the batch axis
    x = torch.from_numpy(np.ascontiguousarray(x))
    x = x.long() if x.dtype in (torch.int32, torch.int64) else x.to(dtype)
    with torch.no_grad():
        y = model(x)
    y = y.reshape(y.shape[0], -1).double()
    print(json.dumps({"outputs": {"shape": list(y.shape), "data": y.flatten().tolist()}}))
    if a.compare:
        got = json.load(open(a.compare))["outputs"]
        assert got["shape"] == list(y.shape), (got["shape"], list(y.shape))
        m = torch.tensor(got["data"], dtype=torch.float64).reshape(y.shape)
        rel = ((m - y).abs().max() / y.abs().max().clamp_min(1e-30)).item()
        print(f"max |mho - torch| / max |torch| = {rel:.3e} (rtol {a.rtol:g})", file=sys.stderr)
        sys.exit(0 if rel <= a.rtol else 1)


if __name__ == "__main__":
    main()
