#!/usr/bin/env python3
"""PyTorch + Captum timings on this machine: the PyTorch side of mho's side-by-side benchmark.

    /opt/mho-venv/bin/python scripts/bench_torch.py [--threads 2] [--repeats 10] > out.json

A readable table goes to stderr, JSON to stdout. f32, torch.set_num_threads(T), one warm-up call,
then the median of --repeats timed samples (a sample times enough back-to-back calls to last
>= 0.3 s, and reports the time per call).

* sgemm: torch.mm, n = 256, 512, 1024, GFLOP/s = 2n^3 / t.
* conv2d, batch 64, 3x3, stride 1, pad 1, the four convolutions of the CIFAR CNN:
  forward (F.conv2d), input gradient (torch.nn.grad.conv2d_input), weight gradient
  (torch.nn.grad.conv2d_weight); GFLOP/s = 2*N*Cout*H*W*Cin*9 / t for each.
* The CIFAR CNN (3x32x32, 14 layers) and the digits CNN (1x8x8, 9 layers), random init
  (torch.manual_seed(0)), written to tests/fixtures/bench/{cifar,digits}_cnn.safetensors with
  inputs {cifar,digits}_input.npy (4 examples) so that mho benchmarks the same models:
  Captum IntegratedGradients (gausslegendre, 50 steps, baseline zeros, target 0) at batch 4 and
  batch 1, and LayerConductance (same settings) called once per layer for every layer: per layer,
  and the total = the sum of the per-layer medians.
* Peak RSS: of this process, and of each attribution job alone, run in a fresh child process
  (`--only JOB`: imports, builds the model, runs the job twice), the figure to compare with mho's
  for that job. VmHWM from /proc/self/status (getrusage's ru_maxrss survives fork+exec on Linux,
  so it would report the parent's peak).

This is a 2-core machine shared with other work: every sample also measures how many cores OTHER
processes kept busy meanwhile (/proc/stat minus this process's CPU time). Samples with more than
0.1 such cores are discarded, and the benchmark waits for a quiet machine before sampling again,
for at most --max-wait seconds per figure; after that it keeps the disturbed samples and says so
("max_other_load" in the JSON, "*" in the table).
"""
import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mho_format import export_sequential  # noqa: E402

import captum  # noqa: E402
from captum.attr import IntegratedGradients, LayerConductance  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH_DIR = os.path.join(REPO, "tests", "fixtures", "bench")
STEPS, METHOD, TARGET = 50, "gausslegendre", 0
LOAD_OK = 0.1  # cores used by other processes during a sample, above which it is discarded


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# timing on a shared machine
# ---------------------------------------------------------------------------------------------

def cpu_snapshot():
    with open("/proc/stat") as f:
        v = [int(t) for t in f.readline().split()[1:]]
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return sum(v[:8]) - v[3] - v[4], ru.ru_utime + ru.ru_stime, time.monotonic()


def other_load(s0, s1):
    """Average number of cores busy with OTHER processes between two snapshots."""
    busy = (s1[0] - s0[0]) / os.sysconf("SC_CLK_TCK")
    return max(0.0, busy - (s1[1] - s0[1])) / max(s1[2] - s0[2], 1e-9)


def wait_idle(deadline, quiet=2.0):
    """Sleep until other processes used < LOAD_OK cores for `quiet` seconds, or the deadline."""
    while time.monotonic() < deadline:
        s0 = cpu_snapshot()
        time.sleep(quiet)
        if other_load(s0, cpu_snapshot()) < LOAD_OK:
            return


class Timer:
    def __init__(self, a):
        self.repeats, self.max_wait, self.quick = a.repeats, a.max_wait, a.quick

    def __call__(self, label, fn, min_sample_s=0.3):
        """Median time per call of fn in ms, from samples taken while the machine was quiet."""
        fn()  # warm-up
        t0 = time.perf_counter()
        fn()
        k = max(1, int(min_sample_s / max(time.perf_counter() - t0, 1e-9)))
        clean, loads, discarded = [], [], 0
        deadline = time.monotonic() + (0 if self.quick else self.max_wait)
        wait_idle(deadline)
        while len(clean) < self.repeats:
            s0 = cpu_snapshot()
            t0 = time.perf_counter()
            for _ in range(k):
                fn()
            dt = (time.perf_counter() - t0) / k
            load = other_load(s0, cpu_snapshot())
            if load < LOAD_OK or time.monotonic() > deadline or self.quick:
                clean.append(dt)
                loads.append(load)
            else:
                discarded += 1
                wait_idle(deadline)
        res = {"ms": statistics.median(clean) * 1e3, "min_ms": min(clean) * 1e3, "samples": len(clean),
               "calls_per_sample": k, "discarded_samples": discarded,
               "max_other_load": round(max(loads), 3)}
        log(f"  {label}: {res['ms']:.3f} ms" + (f"  (disturbed: {res['max_other_load']:.2f} cores)"
                                                 if res["max_other_load"] >= LOAD_OK else ""))
        return res


def proc_status_mb(key):
    """VmHWM (peak RSS of this process image, reset by exec) or VmRSS, from /proc/self/status."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


# ---------------------------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------------------------

def cifar_cnn():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 8 * 8, 256), nn.ReLU(), nn.Linear(256, 10)).eval()


def digits_cnn():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(512, 64), nn.ReLU(), nn.Linear(64, 10)).eval()


def cifar_input():
    g = torch.Generator().manual_seed(0)
    return torch.rand(4, 3, 32, 32, generator=g)  # 4 random "images" in [0, 1)


def digits_input():
    """The first 4 images of scikit-learn's digits.csv.gz, scaled to [0, 1] like mho does."""
    import gzip
    path = os.path.join(REPO, "data", "digits.csv.gz")
    with gzip.open(path, "rt") as f:
        rows = [next(f) for _ in range(4)]
    x = np.array([[float(v) for v in r.split(",")[:64]] for r in rows], dtype=np.float32) / 16
    return torch.from_numpy(x.reshape(4, 1, 8, 8))


MODELS = {"cifar_cnn": ([3, 32, 32], cifar_cnn, cifar_input),
          "digits_cnn": ([1, 8, 8], digits_cnn, digits_input)}


def forward_flops(model, shape):
    """Multiply-adds x 2 of the convolutions and linear layers, per example."""
    flops, x = 0, torch.zeros(1, *shape)
    with torch.no_grad():
        for m in model:
            y = m(x)
            if isinstance(m, nn.Conv2d):
                flops += 2 * y.numel() * m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
            elif isinstance(m, nn.Linear):
                flops += 2 * m.in_features * m.out_features
            x = y
    return flops


def export_models():
    os.makedirs(BENCH_DIR, exist_ok=True)
    for name, (shape, build, inp) in MODELS.items():
        export_sequential(build(), shape, os.path.join(BENCH_DIR, f"{name}.safetensors"))
        np.save(os.path.join(BENCH_DIR, f"{name.replace('_cnn', '')}_input.npy"), inp().numpy())


# ---------------------------------------------------------------------------------------------
# benchmarks
# ---------------------------------------------------------------------------------------------

# ---------------------------------------------------------------------------------------------
# benchmarks
# ---------------------------------------------------------------------------------------------

def bench_sgemm(timer):
    out = []
    for n in (256, 512, 1024):
        g = torch.Generator().manual_seed(n)
        a, b = torch.randn(n, n, generator=g), torch.randn(n, n, generator=g)
        c = torch.empty(n, n)
        t = timer(f"sgemm {n}", lambda: torch.mm(a, b, out=c))
        out.append({"n": n, **t, "gflops": 2 * n ** 3 / t["ms"] / 1e6})
    return out


CONV_LAYERS = [(3, 32, 32), (32, 32, 32), (32, 64, 16), (64, 64, 16)]  # (Cin, Cout, H=W)


def bench_conv(timer, batch=64):
    out = []
    for cin, cout, hw in CONV_LAYERS:
        g = torch.Generator().manual_seed(cin * 1000 + cout)
        x = torch.randn(batch, cin, hw, hw, generator=g)
        w = torch.randn(cout, cin, 3, 3, generator=g) * 0.1
        b = torch.randn(cout, generator=g)
        gy = torch.randn(batch, cout, hw, hw, generator=g)
        flops = 2 * batch * cout * hw * hw * cin * 9
        row = {"layer": f"{cin}->{cout} @{hw}x{hw}", "batch": batch, "cin": cin, "cout": cout, "hw": hw,
               "gflop": flops / 1e9}
        with torch.no_grad():
            jobs = {
                "forward": lambda: F.conv2d(x, w, b, padding=1),
                "input_grad": lambda: torch.nn.grad.conv2d_input(x.shape, w, gy, padding=1),
                "weight_grad": lambda: torch.nn.grad.conv2d_weight(x, w.shape, gy, padding=1),
            }
            for k, fn in jobs.items():
                t = timer(f"conv {row['layer']} {k}", fn)
                row[k] = {**t, "gflops": flops / t["ms"] / 1e6}
        out.append(row)
    return out


def job_ig(name, batch):
    shape, build, inp = MODELS[name]
    model, x = build(), inp()[:batch]
    ig = IntegratedGradients(model)
    return lambda: ig.attribute(x, target=TARGET, n_steps=STEPS, method=METHOD)


def job_conductance_calls(name, batch):
    shape, build, inp = MODELS[name]
    model, x = build(), inp()[:batch]
    calls = []
    for i, layer in enumerate(model):
        lc = LayerConductance(model, layer)
        calls.append((str(i), lambda lc=lc: lc.attribute(x, target=TARGET, n_steps=STEPS, method=METHOD)))
    return calls


def bench_model(name, timer):
    shape, build, _ = MODELS[name]
    model = build()
    fl = forward_flops(model, shape)
    res = {"file": os.path.relpath(os.path.join(BENCH_DIR, f"{name}.safetensors"), REPO),
           "input": os.path.relpath(os.path.join(BENCH_DIR, f"{name.replace('_cnn', '')}_input.npy"), REPO),
           "input_shape": shape, "layers": len(model), "target": TARGET, "steps": STEPS, "rule": METHOD,
           "layer_types": {str(i): type(m).__name__ for i, m in enumerate(model)},
           "forward_mflop_per_example": fl / 1e6, "integrated_gradients": {}, "conductance": {}}
    for batch in (4, 1):
        t = timer(f"{name} IG batch {batch}", job_ig(name, batch))
        # a forward and an input-gradient pass over batch*steps points: about 2x the forward flops
        res["integrated_gradients"][f"batch{batch}"] = {**t, "approx_gflops": 2 * fl * batch * STEPS / t["ms"] / 1e6}
        per = {k: timer(f"{name} LayerConductance layer {k} batch {batch}", fn)
               for k, fn in job_conductance_calls(name, batch)}
        res["conductance"][f"batch{batch}"] = {
            "total_ms": sum(v["ms"] for v in per.values()),
            "per_layer_ms": {k: v["ms"] for k, v in per.items()},
            "max_other_load": max(v["max_other_load"] for v in per.values()),
            "per_layer": per}
    return res


JOBS = [f"{m}/{k}/batch{b}" for m in MODELS for k in ("integrated_gradients", "conductance") for b in (4, 1)]


def run_only(job):
    """One attribution job, run twice after building it, in this fresh process; peak RSS."""
    name, kind, b = job.split("/")
    batch = int(b.replace("batch", ""))
    base = proc_status_mb("VmRSS")
    if kind == "integrated_gradients":
        fns = [job_ig(name, batch)]
    else:
        fns = [fn for _, fn in job_conductance_calls(name, batch)]
    for _ in range(2):
        for fn in fns:
            fn()
    print(json.dumps({"job": job, "peak_rss_mb": proc_status_mb("VmHWM"), "rss_after_imports_mb": base}))


def child_peak(job, threads):
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--threads", str(threads), "--only", job],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def table(r):
    star = lambda t: "*" if t["max_other_load"] >= LOAD_OK else " "  # noqa: E731
    L = [f"PyTorch {r['torch']} + Captum {r['captum']}, threads {r['threads']}, "
         f"CPU: {r['machine']['cpu']} ({r['machine']['cpus']} cpus, torch CPU capability "
         f"{r['machine']['torch_cpu_capability']})",
         f"f32; median of {r['repeats']} samples per figure; * = disturbed by other processes "
         f"(> {LOAD_OK} cores busy)", ""]
    L.append("sgemm (torch.mm)        n        ms   GFLOP/s")
    for s in r["sgemm"]:
        L.append(f"                     {s['n']:5d} {s['ms']:9.3f}{star(s)} {s['gflops']:8.1f}")
    L.append("")
    L.append(f"conv2d 3x3 s1 p1, batch {r['conv2d'][0]['batch']}   forward ms (GFLOP/s)     "
             "input-grad ms (GFLOP/s)  weight-grad ms (GFLOP/s)")
    for c in r["conv2d"]:
        cells = "".join(f"  {c[k]['ms']:9.3f}{star(c[k])}({c[k]['gflops']:6.1f})      "
                        for k in ("forward", "input_grad", "weight_grad"))
        L.append(f"  {c['layer']:16s}{cells}")
    for name, m in r["models"].items():
        L.append("")
        L.append(f"{name} ({m['layers']} layers, input {m['input_shape']}, "
                 f"{m['forward_mflop_per_example']:.2f} MFLOP/example forward), "
                 f"Captum, {m['rule']} {m['steps']} steps, baseline zeros, target {m['target']}")
        for b in ("batch4", "batch1"):
            ig, lc = m["integrated_gradients"][b], m["conductance"][b]
            L.append(f"  {b}: IntegratedGradients {ig['ms']:9.2f} ms{star(ig)} (~{ig['approx_gflops']:.1f} GFLOP/s)"
                     f"   LayerConductance, all {m['layers']} layers: {lc['total_ms']:9.2f} ms{star(lc)}")
            L.append("      per layer ms: " + ", ".join(
                f"{k} {m['layer_types'][k]} {v:.1f}" for k, v in lc["per_layer_ms"].items()))
    L.append("")
    pk = r["peak_rss_mb"]
    L.append(f"peak RSS of this whole benchmark process: {pk['process']:.0f} MB (VmHWM)")
    if pk["jobs"]:
        L.append("peak RSS of each attribution job alone (fresh process: import torch+captum, build the")
        L.append("model, run the job twice; VmHWM):")
        for j, v in pk["jobs"].items():
            L.append(f"  {j:42s} {v['peak_rss_mb']:7.0f} MB   (RSS after imports: {v['rss_after_imports_mb']:.0f} MB)")
    return "\n".join(L)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=10, help="timed samples per figure (median)")
    ap.add_argument("--max-wait", type=float, default=300, metavar="SECONDS",
                    help="per figure: how long to wait for quiet samples before accepting disturbed ones")
    ap.add_argument("--quick", action="store_true", help="3 samples, keep disturbed ones, no memory probes")
    ap.add_argument("--no-export", action="store_true", help="do not (re)write tests/fixtures/bench/")
    ap.add_argument("--only", choices=JOBS, help=argparse.SUPPRESS)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.only:
        return run_only(a.only)
    if a.quick:
        a.repeats = 3
    if not a.no_export:
        export_models()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")),
               platform.processor())
    r = {"torch": torch.__version__, "captum": captum.__version__, "numpy": np.__version__,
         "threads": a.threads, "repeats": a.repeats, "command": " ".join(sys.argv),
         "machine": {"cpu": cpu, "cpus": os.cpu_count(),
                     "torch_cpu_capability": torch.backends.cpu.get_cpu_capability()}}
    timer = Timer(a)
    r["sgemm"] = bench_sgemm(timer)
    r["conv2d"] = bench_conv(timer)
    r["models"] = {name: bench_model(name, timer) for name in MODELS}
    r["peak_rss_mb"] = {"process": proc_status_mb("VmHWM"), "jobs": {}}
    if not a.quick:
        for job in JOBS:
            log(f"memory: {job} ...")
            r["peak_rss_mb"]["jobs"][job] = child_peak(job, a.threads)
    log("")
    log(table(r))
    print(json.dumps(r, indent=1))


if __name__ == "__main__":
    main()
