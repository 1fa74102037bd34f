#!/usr/bin/env python3
"""Write mho's PyTorch/Captum test fixtures into tests/fixtures/ (deterministic).

    /opt/mho-venv/bin/python scripts/make_fixtures.py            # everything
    /opt/mho-venv/bin/python scripts/make_fixtures.py --only model_format|captum

tests/fixtures/model_format/<name>.safetensors   model in mho.sequential.v1
                            <name>.input.npy      batch of 3 (float32; int64 for Embedding)
                            <name>.output.npy     PyTorch's output (float32)
tests/fixtures/captum/<name>.safetensors          F64 weights (all exactly representable in f32)
                     <name>.json                  Captum's results + expected values
See tests/fixtures/model_format/README.md and tests/fixtures/captum/README.md.

Every Captum result is also checked against an independent reference written
here from the formulas in tests/fixtures/captum/README.md (exact f64 nodes and
weights); the script fails if they disagree.
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mho_format import Permute, export_sequential, load_sequential  # noqa: E402

import captum  # noqa: E402
from captum.attr import (IntegratedGradients, InternalInfluence, LayerActivation,  # noqa: E402
                         LayerConductance, LayerGradientXActivation, NeuronConductance)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(REPO, "tests", "fixtures")

torch.set_num_threads(1)  # reductions in a fixed order: same bits on any machine


def seq(input_shape, *layers):
    """nn.Sequential where a callable layer gets the flattened size of the previous output."""
    mods = []
    for l in layers:
        if not isinstance(l, nn.Module):
            with torch.no_grad():
                l = l(nn.Sequential(*mods)(torch.zeros(1, *input_shape)).shape[1])
        mods.append(l)
    return nn.Sequential(*mods)


def randomize(model):
    """Non-trivial BatchNorm statistics and PReLU slopes (default init elsewhere), float32 values."""
    with torch.no_grad():
        for m in model:
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.running_mean.copy_(torch.randn_like(m.running_mean) * 0.5)
                m.running_var.copy_(torch.rand_like(m.running_var) * 1.5 + 0.5)
                m.weight.copy_(torch.rand_like(m.weight) + 0.5)
                m.bias.copy_(torch.randn_like(m.bias) * 0.3)
            if isinstance(m, nn.PReLU):
                m.weight.copy_(torch.rand_like(m.weight) * 0.4 + 0.05)
    return model.eval()


def grid(t, step=1 / 64):
    """Round to multiples of 1/64: exactly representable in f32, short in JSON."""
    return torch.round(t / step) * step


# ----------------------------------------------------------------------------------------------
# a. model format fixtures
# ----------------------------------------------------------------------------------------------

def model_format_models():
    M = {}
    torch.manual_seed(1)
    M["mlp"] = ([10], None, seq([10], nn.Linear(10, 16), nn.Tanh(), nn.Dropout(0.25),
                                nn.Linear(16, 12), nn.Sigmoid(), nn.Linear(12, 8), nn.ReLU(),
                                nn.Identity(), nn.Linear(8, 4, bias=False)))
    torch.manual_seed(2)
    s = [3, 11, 10]
    M["cnn"] = (s, None, seq(
        s,
        nn.Conv2d(3, 8, (3, 2), stride=(1, 2), padding=(2, 1), dilation=(2, 1)),
        nn.BatchNorm2d(8, eps=1e-3),
        nn.LeakyReLU(0.05),
        nn.Conv2d(8, 8, 3, stride=1, padding=2, dilation=2, groups=4),
        nn.PReLU(8),
        nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True),
        nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
        nn.AdaptiveAvgPool2d((2, 3)),
        nn.Flatten(),
        lambda n: nn.Linear(n, 5),
        nn.Softmax(dim=1)))
    torch.manual_seed(3)
    s = [2, 16, 13]
    M["pooling"] = (s, None, seq(
        s,
        nn.Conv2d(2, 3, 1),
        # H: 16 -> 6, ceil_mode's rule "the last window must start inside the input or the
        # left padding" drops a 7th row; W: 13 -> 7
        nn.MaxPool2d((2, 3), stride=(3, 2), padding=(1, 1), ceil_mode=True),
        # W: 7 -> 4, the last window hangs over the right edge (ceil_mode) and its divisor
        # counts padding but not the overhang
        nn.AvgPool2d((3, 2), stride=(1, 2), padding=(1, 0), ceil_mode=True, count_include_pad=True),
        nn.Tanh(),
        nn.AdaptiveAvgPool2d((4, 3)),  # 6x4 -> 4x3: overlapping, uneven windows
        nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),  # -> 3x2
        nn.MaxPool2d(2, stride=1, padding=0, dilation=(2, 1)),  # -> 1x1
        nn.Flatten(),
        lambda n: nn.Linear(n, 3)))
    torch.manual_seed(4)
    s = [4, 20]
    M["conv1d"] = (s, None, seq(
        s,
        nn.Conv1d(4, 6, 5, stride=2, padding=2),
        nn.BatchNorm1d(6),
        nn.ReLU(),
        nn.Conv1d(6, 8, 3, padding=2, dilation=2, groups=2),
        nn.MaxPool1d(3, stride=2, padding=1, ceil_mode=True),
        nn.ReLU(),
        nn.Flatten(),
        lambda n: nn.Linear(n, 16),
        nn.BatchNorm1d(16, eps=1e-4),  # BatchNorm1d on (N, C)
        nn.Tanh(),
        nn.Linear(16, 5),
        nn.LogSoftmax(dim=1)))
    torch.manual_seed(5)
    s = [3, 5, 6]
    M["permute"] = (s, None, seq(
        s,
        Permute([0, 1, 3, 2]),  # transpose the image: (N, 3, 6, 5)
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        Permute([0, 2, 3, 1]),  # channels last: (N, 6, 5, 4)
        nn.Flatten(),
        lambda n: nn.Linear(n, 4),
        Permute([1, 0]),  # (4, N) ...
        Permute([1, 0]),  # ... and back
        nn.Softmax(dim=-1)))
    torch.manual_seed(6)
    M["embedding"] = ([7], "int64", seq(
        [7],
        nn.Embedding(20, 6),
        Permute([0, 2, 1]),  # (N, 6, 7)
        nn.Conv1d(6, 8, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool1d(2),
        nn.Flatten(),
        nn.Linear(24, 4)))
    torch.manual_seed(7)
    s = [1, 8, 8]
    M["cnn_f16"] = (s, torch.float16, seq(
        s, nn.Conv2d(1, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 8, 3), nn.ReLU(), nn.Flatten(), lambda n: nn.Linear(n, 10), nn.Softmax(dim=1)))
    torch.manual_seed(8)
    M["mlp_bf16"] = ([12], torch.bfloat16, seq(
        [12], nn.Linear(12, 32), nn.ReLU(), nn.Linear(32, 16), nn.Tanh(), nn.Linear(16, 6)))
    torch.manual_seed(9)
    s = [2, 7, 7]
    M["cnn_f64"] = (s, torch.float64, seq(
        s, nn.Conv2d(2, 5, 3, padding=1), nn.BatchNorm2d(5), nn.PReLU(5),
        nn.AvgPool2d(2, ceil_mode=True), nn.Conv2d(5, 6, 2), nn.Sigmoid(), nn.Flatten(),
        lambda n: nn.Linear(n, 3), nn.LogSoftmax(dim=1)))
    return M


def make_model_format():
    out = os.path.join(FIX, "model_format")
    os.makedirs(out, exist_ok=True)
    rows = []
    for name, (shape, kind, model) in model_format_models().items():
        randomize(model)
        torch.manual_seed(100)
        if kind == "int64":
            x = torch.randint(0, model[0].num_embeddings, (3, *shape), dtype=torch.int64)
        else:
            x = torch.randn(3, *shape)
        dtype = kind if isinstance(kind, torch.dtype) else None
        path = os.path.join(out, f"{name}.safetensors")
        export_sequential(model, shape, path, dtype=dtype)
        with torch.no_grad():
            if dtype == torch.float64:  # F64 weights: PyTorch in f64, output rounded to f32
                y = load_sequential(path, torch.float64)(x.double()).float()
            else:  # F32 as is; F16/BF16 weights widened to f32, computed in f32
                y = load_sequential(path)(x)
            if dtype is None:  # the round trip is exact
                assert torch.equal(y, model(x)), name
        np.save(os.path.join(out, f"{name}.input.npy"), x.numpy())
        np.save(os.path.join(out, f"{name}.output.npy"), y.numpy().astype(np.float32))
        types = sorted({type(m).__name__ for m in model})
        rows.append((name, str(dtype or torch.float32).replace("torch.", ""), shape, list(y.shape), types))
        print(f"model_format/{name}: {rows[-1][1]} in {shape} out {list(y.shape)}")
    covered = set(t for r in rows for t in r[4])
    from mho_format import ARGS
    assert covered == set(ARGS), set(ARGS) - covered
    return rows


# ----------------------------------------------------------------------------------------------
# b. Captum fixtures
# ----------------------------------------------------------------------------------------------

RULES = {"riemann-left": "riemann_left", "riemann-right": "riemann_right",
         "riemann-middle": "riemann_middle", "riemann-trapezoid": "riemann_trapezoid",
         "gauss-legendre": "gausslegendre"}
CONFIGS = [(r, 20) for r in RULES] + [("gauss-legendre", 7), ("gauss-legendre", 50)]
F32_CONFIGS = [("gauss-legendre", 50)]


def captum_models():
    """name -> (input_shape, baseline kind, target, model, neurons {layer: [neuron, neuron]},
    internal-influence layers)."""
    M = {}
    torch.manual_seed(11)
    M["mlp_smooth"] = ([6], "random", 2, seq(
        [6], nn.Linear(6, 10), nn.Tanh(), nn.Linear(10, 8), nn.Sigmoid(), nn.Linear(8, 3)),
        {"1": [[3], [7]], "3": [[0], [5]]}, ["0", "1", "3"])
    torch.manual_seed(12)
    s = [2, 6, 6]
    M["cnn_bn"] = (s, "zeros", 1, seq(
        s, nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2, stride=1), nn.Flatten(),
        lambda n: nn.Linear(n, 4)),
        {"2": [[1, 2, 3], [3, 0, 5]], "6": [[0, 1, 1], [4, 0, 1]]}, ["1", "3", "6"])
    torch.manual_seed(13)
    M["prelu_net"] = ([8], "constant", 0, seq(
        [8], nn.Linear(8, 12), nn.PReLU(12), nn.Linear(12, 10), nn.PReLU(1), nn.Linear(10, 6),
        nn.LeakyReLU(0.1), nn.Linear(6, 3)),
        {"1": [[2], [9]], "5": [[0], [4]]}, ["1", "3", "5"])
    torch.manual_seed(14)
    M["softmax_head"] = ([7], "zeros", 3, seq(
        [7], nn.Linear(7, 9), nn.Tanh(), nn.Dropout(0.3), nn.Linear(9, 5), nn.Softmax(dim=1)),
        {"1": [[0], [8]], "3": [[3], [1]]}, ["1", "3", "4"])
    torch.manual_seed(15)
    s = [3, 12]
    M["conv1d_net"] = (s, "zeros", 2, seq(
        s, nn.Conv1d(3, 5, 3, padding=1), nn.BatchNorm1d(5), nn.ReLU(), nn.MaxPool1d(2),
        nn.Conv1d(5, 6, 3, stride=2, padding=1), nn.Tanh(), nn.Flatten(),
        lambda n: nn.Linear(n, 4), nn.LogSoftmax(dim=1)),
        {"1": [[0, 4], [4, 11]], "5": [[2, 1], [5, 0]]}, ["2", "4", "7"])
    torch.manual_seed(16)
    M["linear"] = ([5], "random", 1, seq([5], nn.Linear(5, 4), nn.Linear(4, 3)),
                   {"0": [[0], [3]], "1": [[1], [2]]}, ["0"])
    return M


# ---- independent reference (exact f64 nodes/weights), the formulas of captum/README.md ----

def rule_nodes(rule, n):
    k = np.arange(n, dtype=np.float64)
    if rule == "riemann-left":
        return k / n, np.full(n, 1 / n)
    if rule == "riemann-right":
        return (k + 1) / n, np.full(n, 1 / n)
    if rule == "riemann-middle":
        return (k + 0.5) / n, np.full(n, 1 / n)
    if rule == "riemann-trapezoid":
        w = np.full(n, 1 / (n - 1))
        w[0] /= 2
        w[-1] /= 2
        return k / (n - 1), w
    x, w = np.polynomial.legendre.leggauss(n)
    return (x + 1) / 2, w / 2


def path(x, b, alphas):
    return torch.cat([b + float(a) * (x - b) for a in alphas], 0)


def split_grad(model, i, X, target):
    """(y, dF/dy) of layer i's output at the batch X; i = -1 is the input."""
    X = X.clone().requires_grad_(i < 0)
    y = X if i < 0 else model[: i + 1](X).detach().requires_grad_()
    F = model[i + 1:](y)[:, target]
    (g,) = torch.autograd.grad(F.sum(), y)
    return y.detach(), g


def reference(method, model, li, neuron, x, b, target, rule, n):
    N = x.shape[0]
    if method in ("activation", "gradient-x-activation"):
        y, g = split_grad(model, li, x, target)
        return y if method == "activation" else y * g
    if method == "conductance":  # difference form on the (n+1)-point rule's nodes, no weights
        al, _ = rule_nodes(rule, n + 1)
        y, g = split_grad(model, li, path(x, b, al), target)
        y, g = y.reshape(n + 1, N, *y.shape[1:]), g.reshape(n + 1, N, *g.shape[1:])
        return ((y[1:] - y[:-1]) * g[:-1]).sum(0)
    al, w = rule_nodes(rule, n)
    w = torch.tensor(w, dtype=x.dtype).reshape(n, 1, *[1] * (x.dim() - 1))
    if method == "integrated-gradients":
        _, g = split_grad(model, -1, path(x, b, al), target)
        return (x - b) * (w * g.reshape(n, *x.shape)).sum(0)
    if method == "internal-influence":
        _, g = split_grad(model, li, path(x, b, al), target)
        w = w.reshape(n, 1, *[1] * (g.dim() - 1))
        return (w * g.reshape(n, N, *g.shape[1:])).sum(0)
    if method == "neuron-conductance":
        X = path(x, b, al).requires_grad_()
        y = model[: li + 1](X)
        F = model[li + 1:](y)[:, target]
        (dFdy,) = torch.autograd.grad(F.sum(), y, retain_graph=True)
        yu, gu = y[(slice(None), *neuron)], dFdy[(slice(None), *neuron)]
        (dydx,) = torch.autograd.grad(yu.sum(), X)
        gu = gu.reshape(-1, *[1] * (x.dim() - 1))
        return (x - b) * (w * (gu * dydx).reshape(n, *x.shape)).sum(0)
    raise ValueError(method)


# ---- Captum ----

def run_captum(method, model, layer, neuron, x, b, target, rule, n):
    """Captum's attribution (and delta when it has one)."""
    cm = RULES.get(rule)
    if method == "integrated-gradients":
        return IntegratedGradients(model).attribute(
            x, baselines=b, target=target, n_steps=n, method=cm, return_convergence_delta=True)
    if method == "conductance":
        return LayerConductance(model, layer).attribute(
            x, baselines=b, target=target, n_steps=n, method=cm, return_convergence_delta=True)
    if method == "neuron-conductance":
        return NeuronConductance(model, layer).attribute(
            x, neuron_selector=tuple(neuron), baselines=b, target=target, n_steps=n, method=cm), None
    if method == "internal-influence":
        return InternalInfluence(model, layer).attribute(
            x, baselines=b, target=target, n_steps=n, method=cm), None
    if method == "activation":
        return LayerActivation(model, layer).attribute(x), None
    if method == "gradient-x-activation":
        return LayerGradientXActivation(model, layer).attribute(x, target=target), None
    raise ValueError(method)


def num(v, f32):
    """Floats for JSON: 9 significant digits for f32 (exact round trip), 15 for f64."""
    return float(f"{v:.9g}") if f32 else float(f"{v:.15g}")


def arr(t, f32=False):
    t = t.detach().double()
    return {"shape": list(t.shape), "data": [num(v, f32) for v in t.flatten().tolist()]}


TRAPEZOID_CORRECTED = ("integrated-gradients", "neuron-conductance", "internal-influence")


def make_captum():
    out = os.path.join(FIX, "captum")
    os.makedirs(out, exist_ok=True)
    summary = {}
    for name, (shape, bkind, target, model, neurons, ii_layers) in captum_models().items():
        randomize(model)
        path_w = os.path.join(out, f"{name}.safetensors")
        export_sequential(model, shape, path_w, dtype=torch.float64)
        m64 = load_sequential(path_w, torch.float64)
        m32 = load_sequential(path_w, torch.float32)
        torch.manual_seed(200)
        x = grid(torch.randn(2, *shape, dtype=torch.float64))
        if bkind == "zeros":
            b = torch.zeros_like(x)
        elif bkind == "constant":
            b = torch.full_like(x, -0.25)
        else:  # a different random baseline per example
            b = grid(torch.randn(2, *shape, dtype=torch.float64) * 0.5)
        with torch.no_grad():
            Fx, Fb = m64(x)[:, target], m64(b)[:, target]
        layers = [str(i) for i in range(len(m64))]
        plan = []  # (method, layer, neuron, rule, n, precision)
        for prec, configs in (("f64", CONFIGS), ("f32", F32_CONFIGS)):
            for rule, n in configs + ([("riemann-trapezoid", 20)] if prec == "f32" else []):
                plan.append(("integrated-gradients", "input", None, rule, n, prec))
            for rule, n in configs:
                plan += [("conductance", l, None, rule, n, prec) for l in layers]
                for l, ns in neurons.items():
                    plan += [("neuron-conductance", l, u, rule, n, prec) for u in ns[: 2 if prec == "f64" else 1]]
                plan += [("internal-influence", l, None, rule, n, prec) for l in ii_layers]
            acts = layers if prec == "f64" else [ii_layers[-1]]
            plan += [(m, l, None, None, None, prec) for m in ("activation", "gradient-x-activation") for l in acts]

        cases, worst = [], {}
        for method, layer, neuron, rule, n, prec in plan:
            f32 = prec == "f32"
            mdl, xx, bb = (m32, x.float(), b.float()) if f32 else (m64, x, b)
            li = -1 if layer == "input" else int(layer)
            attr, delta = run_captum(method, mdl, None if li < 0 else mdl[li], neuron, xx, bb, target, rule, n)
            expected, note = attr, ""
            if rule == "riemann-trapezoid" and method in TRAPEZOID_CORRECTED:
                expected = attr * (n / (n - 1))
                note = (f"Captum 0.9 riemann_trapezoid weights sum to (n-1)/n: expected = captum * n/(n-1) "
                        f"= captum * {n}/{n - 1}.")
                if delta is not None:  # delta belongs to expected, not to Captum's attributions
                    note += (" delta = sum(expected) - (F(x) - F(x')), recomputed (Captum's own delta: "
                             f"{[num(d, f32) for d in delta.tolist()]}).")
                    with torch.no_grad():
                        dF = mdl(xx)[:, target] - mdl(bb)[:, target]
                    delta = expected.sum(tuple(range(1, expected.dim()))) - dF
            if method == "conductance":
                note = (note + " " if note else "") + (
                    f"Captum's difference form on the {n + 1}-point {rule} nodes; no weights; no correction.")
            # independent check against the README formulas (f64, exact nodes/weights)
            ref = reference(method, m64, li, neuron, x, b, target, rule, n)
            scale = max(ref.abs().max().item(), 1e-300)
            err = (expected.double() - ref).abs().max().item() / scale
            tol = 1e-4 if f32 else 1e-6
            key = f"{method}/{prec}"
            worst[key] = max(worst.get(key, 0.0), err)
            assert err < tol, (name, method, layer, neuron, rule, n, prec, err)
            cases.append({
                "method": method, "layer": layer, "neuron": neuron, "rule": rule, "steps": n,
                "precision": prec, "captum": arr(attr, f32), "expected": arr(expected, f32),
                "delta": None if delta is None else [num(d, f32) for d in delta.tolist()],
                "note": note.strip()})
        doc = {"model": f"{name}.safetensors", "input": arr(x), "baseline": arr(b), "target": target,
               "outputs": {"input": [num(v, False) for v in Fx.tolist()],
                           "baseline": [num(v, False) for v in Fb.tolist()]},
               "cases": cases}
        with open(os.path.join(out, f"{name}.json"), "w") as f:
            json.dump(doc, f, separators=(",", ":"))
            f.write("\n")
        summary[name] = worst
        print(f"captum/{name}: {len(cases)} cases; max |expected - reference| / max|reference|: "
              + ", ".join(f"{k} {v:.1e}" for k, v in sorted(worst.items())))
    return summary


def check_trapezoid_on_linear():
    """IG on a linear model is exact for any rule whose weights sum to 1. Captum's trapezoid
    falls short by exactly (n-1)/n; after the correction completeness holds to rounding."""
    name, (shape, _, target, model, _, _) = "linear", captum_models()["linear"]
    model = load_sequential(os.path.join(FIX, "captum", "linear.safetensors"), torch.float64)
    doc = json.load(open(os.path.join(FIX, "captum", "linear.json")))
    x = torch.tensor(doc["input"]["data"], dtype=torch.float64).reshape(doc["input"]["shape"])
    b = torch.tensor(doc["baseline"]["data"], dtype=torch.float64).reshape(doc["baseline"]["shape"])
    with torch.no_grad():
        dF = model(x)[:, target] - model(b)[:, target]
    lines = []
    for n in (7, 20, 50):
        for rule in RULES:
            ig = IntegratedGradients(model).attribute(x, baselines=b, target=target, n_steps=n,
                                                      method=RULES[rule])
            ratio = (ig.sum(1) / dF).tolist()
            fixed = ig * (n / (n - 1)) if rule == "riemann-trapezoid" else ig
            rel = ((fixed.sum(1) - dF).abs() / dF.abs()).max().item()
            lines.append(f"n={n:2d} {rule:18s} sum(IG)/(F(x)-F(x')) = {ratio[0]:.9f}, {ratio[1]:.9f}"
                         f"   after correction |rel. error| = {rel:.1e}")
            if rule == "riemann-trapezoid":
                assert all(abs(r - (n - 1) / n) < 1e-6 for r in ratio), ratio
            assert rel < 1e-6, (rule, n, rel)
    print("\n".join(lines))
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", choices=["model_format", "captum"])
    a = ap.parse_args()
    print(f"torch {torch.__version__}, captum {captum.__version__}, numpy {np.__version__}")
    if a.only in (None, "model_format"):
        make_model_format()
    if a.only in (None, "captum"):
        make_captum()
        check_trapezoid_on_linear()


if __name__ == "__main__":
    main()
