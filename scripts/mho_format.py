"""The mho model file <-> PyTorch nn.Sequential (format "mho.sequential.v1").

One .safetensors file; tensors named as nn.Sequential(...).state_dict() names
them ("{i}.weight", "{i}.bias", "{i}.running_mean", "{i}.running_var";
"{i}.num_batches_tracked" dropped); metadata key "architecture" = JSON
{"format": "mho.sequential.v1", "input_shape": [...], "layers": [...]}, each
layer {"type": <torch module name>, <torch constructor arguments>}, pairs as
[a, b] for 2-d layers and plain integers for 1-d layers. See docs/model-format.md.

    from mho_format import export_sequential, load_sequential
    export_sequential(model, [1, 8, 8], "model.safetensors")   # PyTorch -> mho
    model = load_sequential("model.safetensors")               # mho -> PyTorch
"""
import json

import torch
from torch import nn
from safetensors import safe_open
from safetensors.torch import load_file, save_file


class Permute(nn.Module):
    """x.permute(*dims); dims include the batch axis."""

    def __init__(self, dims):
        super().__init__()
        self.dims = [int(d) for d in dims]

    def forward(self, x):
        return x.permute(*self.dims)


CONV = ["in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups", "bias"]
MAXPOOL = ["kernel_size", "stride", "padding", "dilation", "ceil_mode"]
BN = ["num_features", "eps"]
# layer type -> constructor arguments recorded in the file
ARGS = {
    "Linear": ["in_features", "out_features", "bias"], "Conv2d": CONV, "Conv1d": CONV,
    "MaxPool2d": MAXPOOL, "MaxPool1d": MAXPOOL,
    "AvgPool2d": ["kernel_size", "stride", "padding", "ceil_mode", "count_include_pad"],
    "AdaptiveAvgPool2d": ["output_size"], "BatchNorm2d": BN, "BatchNorm1d": BN,
    "ReLU": [], "Tanh": [], "Sigmoid": [], "Identity": [],
    "LeakyReLU": ["negative_slope"], "PReLU": ["num_parameters"],
    "Softmax": ["dim"], "LogSoftmax": ["dim"], "Flatten": ["start_dim", "end_dim"],
    "Dropout": ["p"], "Permute": ["dims"], "Embedding": ["num_embeddings", "embedding_dim"],
}
MODULES = {name: Permute if name == "Permute" else getattr(nn, name) for name in ARGS}
SIZES = {"kernel_size", "stride", "padding", "dilation", "output_size"}


def layer_json(m):
    t = type(m).__name__
    if t not in ARGS:
        raise ValueError(f"layer type {t} is not in mho.sequential.v1")
    d = {"type": t}
    for a in ARGS[t]:
        v = getattr(m, a)
        if a == "bias":
            v = v is not None
        elif a in SIZES:  # [a, b] for 2-d layers, an integer for 1-d layers
            v = list(v) if isinstance(v, (tuple, list)) else [v, v]
            v = v[0] if t.endswith("1d") else v
        d[a] = v
    if t.startswith("BatchNorm") and not (m.affine and m.track_running_stats):
        raise ValueError("BatchNorm must have affine=True and running statistics")
    return d


def export_sequential(model, input_shape, path, dtype=None):
    """Write an nn.Sequential as an mho model file (dtype: e.g. torch.float16; default: as is)."""
    arch = {"format": "mho.sequential.v1", "input_shape": list(input_shape),
            "layers": [layer_json(m) for m in model]}
    tensors = {k: (v.to(dtype) if dtype and v.is_floating_point() else v).detach().contiguous()
               for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    save_file(tensors, path, metadata={"architecture": json.dumps(arch)})


def build_sequential(arch, dtype=torch.float32):
    """A freshly initialised nn.Sequential from an architecture dict (PyTorch's default init)."""
    assert arch["format"] == "mho.sequential.v1", arch["format"]
    return nn.Sequential(*[
        MODULES[l["type"]](**{k: tuple(v) if isinstance(v, list) and k in SIZES else v
                              for k, v in l.items() if k != "type"})
        for l in arch["layers"]]).to(dtype)


def load_sequential(path, dtype=torch.float32):
    """Rebuild the nn.Sequential (eval mode, parameters in `dtype`) from an mho model file."""
    with safe_open(path, "pt") as f:
        model = build_sequential(json.loads(f.metadata()["architecture"]), dtype)
    missing, unexpected = model.load_state_dict(load_file(path), strict=False)  # casts to dtype
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing), (missing, unexpected)
    return model.eval()
