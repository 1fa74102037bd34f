#!/usr/bin/env python3
"""PyTorch + Captum timings on this machine: the PyTorch side of mho's side-by-side benchmark.

    /opt/mho-venv/bin/python scripts/bench_torch.py [--threads 2] [--quick] > out.json

A readable table goes to stderr, JSON to stdout. f32 everywhere, torch.set_num_threads(T),
medians of repeated runs after a warm-up.

* sgemm: torch.mm, n = 256, 512, 1024, GFLOP/s = 2n^3 / t.
* conv2d, batch 64, 3x3, stride 1, pad 1, the four convolutions of the CIFAR CNN:
  forward (F.conv2d), input gradient (torch.nn.grad.conv2d_input), weight gradient
  (torch.nn.grad.conv2d_weight); GFLOP/s = 2*N*Cout*H*W*Cin*9 / t for each.
* The CIFAR CNN (3x32x32, 14 layers) and the digits CNN (1x8x8, 9 layers), random init
  (torch.manual_seed(0)), written to tests/fixtures/bench/{cifar,digits}_cnn.safetensors with
  inputs {cifar,digits}_input.npy (4 examples) so that mho benchmarks the same models:
  Captum IntegratedGradients (gausslegendre, 50 steps, target 0) at batch 4 and batch 1, and
  LayerConductance (gausslegendre, 50 steps, target 0) called once per layer for every layer
  (total and per layer), at batch 4 and batch 1.
* Peak RSS: of this process (resource.getrusage), and of each attribution job alone, run in a
  fresh child process (`--only JOB`), which is the figure to compare with mho's for that job.
* other_load: cores kept busy by OTHER processes during each section (from /proc/stat minus
  this process's CPU time). Timings with other_load well above 0 are not to be trusted on a
  2-core machine; `--wait-idle SECONDS` waits for a quiet machine before each section.
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


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def median_ms(fn, repeats, warmup=1):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1e3


def cpu_snapshot():
    with open("/proc/stat") as f:
        v = [int(t) for t in f.readline().split()[1:]]
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return sum(v[:8]) - v[3] - v[4], ru.ru_utime + ru.ru_stime, time.monotonic()


def other_load(s0, s1):
    """Average number of cores busy with OTHER processes between two snapshots."""
    busy = (s1[0] - s0[0]) / os.sysconf("SC_CLK_TCK")
    return max(0.0, busy - (s1[1] - s0[1])) / max(s1[2] - s0[2], 1e-9)


def wait_idle(timeout, threshold=0.15):
    """Wait (up to timeout s) until other processes use < threshold cores for 3 s in a row."""
    t_end = time.monotonic() + timeout
    while True:
        s0 = cpu_snapshot()
        time.sleep(3)
        load = other_load(s0, cpu_snapshot())
        if load < threshold or time.monotonic() > t_end:
            return load


def measured(r, name, fn, a):
    """Run fn (a timing job); if other processes were busy meanwhile, wait and run it again
    (up to --retries times), keeping the quietest run. Records other_load[name]."""
    best = None
    for attempt in range(a.retries + 1):
        if a.wait_idle:
            wait_idle(a.wait_idle)
        log(f"{name} ..." + (f" (attempt {attempt + 1})" if attempt else ""))
        s0 = cpu_snapshot()
        val = fn()
        load = other_load(s0, cpu_snapshot())
        if best is None or load < best[1]:
            best = (val, load)
        if load < 0.1:
            break
        log(f"  other processes kept {load:.2f} cores busy")
    r["other_load"][name] = round(best[1], 3)
    return best[0]


def peak_rss_mb():
    """getrusage's ru_maxrss (Linux: KiB). NB: Linux carries it over fork and exec."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def proc_status_mb(key):
    """VmHWM (peak RSS of this process image, reset by exec) or VmRSS from /proc/self/status."""
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

def bench_sgemm(reps):
    out = []
    for n in (256, 512, 1024):
        g = torch.Generator().manual_seed(n)
        a, b = torch.randn(n, n, generator=g), torch.randn(n, n, generator=g)
        c = torch.empty(n, n)
        ms = median_ms(lambda: torch.mm(a, b, out=c), reps * (4 if n < 1024 else 1), warmup=3)
        out.append({"n": n, "ms": ms, "gflops": 2 * n ** 3 / ms / 1e6})
    return out


CONV_LAYERS = [(3, 32, 32), (32, 32, 32), (32, 64, 16), (64, 64, 16)]  # (Cin, Cout, H=W)


def bench_conv(reps, batch=64):
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
                ms = median_ms(fn, reps, warmup=2)
                row[k] = {"ms": ms, "gflops": flops / ms / 1e6}
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


def model_info(name):
    shape, build, _ = MODELS[name]
    model = build()
    return {"file": os.path.relpath(os.path.join(BENCH_DIR, f"{name}.safetensors"), REPO),
            "input": os.path.relpath(os.path.join(BENCH_DIR, f"{name.replace('_cnn', '')}_input.npy"), REPO),
            "input_shape": shape, "layers": len(model), "target": TARGET, "steps": STEPS, "rule": METHOD,
            "layer_types": {str(i): type(m).__name__ for i, m in enumerate(model)},
            "forward_mflop_per_example": forward_flops(model, shape) / 1e6,
            "integrated_gradients": {}, "conductance": {}}


def bench_ig(name, batch, reps):
    ms = median_ms(job_ig(name, batch), reps, warmup=2)
    fl = forward_flops(MODELS[name][1](), MODELS[name][0])
    # forward + input-gradient pass over batch*steps points: about 2x the forward flops
    return {"ms": ms, "approx_gflops": 2 * fl * batch * STEPS / ms / 1e6}


def bench_lc(name, batch, reps):
    calls = job_conductance_calls(name, batch)
    for _, fn in calls:  # warm-up
        fn()
    totals, per = [], {k: [] for k, _ in calls}
    for _ in range(max(3, reps // 2)):
        t_all = 0.0
        for k, fn in calls:
            t0 = time.perf_counter()
            fn()
            dt = time.perf_counter() - t0
            per[k].append(dt)
            t_all += dt
        totals.append(t_all)
    return {"total_ms": statistics.median(totals) * 1e3,
            "per_layer_ms": {k: statistics.median(v) * 1e3 for k, v in per.items()}}


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
    L = []
    L.append(f"PyTorch {r['torch']} + Captum {r['captum']}, threads {r['threads']}, "
             f"CPU: {r['machine']['cpu']} ({r['machine']['cpus']} cpus, torch capability {r['machine']['torch_cpu_capability']})")
    L.append("medians of repeated runs, f32")
    L.append("")
    L.append("sgemm (torch.mm)        n      ms   GFLOP/s")
    for s in r["sgemm"]:
        L.append(f"                     {s['n']:5d} {s['ms']:7.3f}  {s['gflops']:8.1f}")
    L.append("")
    L.append(f"conv2d 3x3 s1 p1, batch {r['conv2d'][0]['batch']}     forward ms (GFLOP/s)   input-grad ms (GFLOP/s)   weight-grad ms (GFLOP/s)")
    for c in r["conv2d"]:
        cells = "".join(f"  {c[k]['ms']:9.3f} ({c[k]['gflops']:6.1f})     " for k in ("forward", "input_grad", "weight_grad"))
        L.append(f"  {c['layer']:18s}{cells}")
    for name, m in r["models"].items():
        L.append("")
        L.append(f"{name} ({m['layers']} layers, input {m['input_shape']}, {m['forward_mflop_per_example']:.2f} MFLOP/example forward), "
                 f"Captum, {m['rule']} {m['steps']} steps, target {m['target']}")
        for b in ("batch4", "batch1"):
            ig = m["integrated_gradients"][b]
            lc = m["conductance"][b]
            L.append(f"  {b}: IntegratedGradients {ig['ms']:9.2f} ms (~{ig['approx_gflops']:.1f} GFLOP/s)   "
                     f"LayerConductance, all {m['layers']} layers: {lc['total_ms']:9.2f} ms")
            L.append("      per layer ms: " + ", ".join(
                f"{k} {m['layer_types'][k]} {v:.1f}" for k, v in lc["per_layer_ms"].items()))
    L.append("")
    L.append("")
    L.append("cores kept busy by other processes during each section (0 = quiet machine):")
    L.append("  " + ", ".join(f"{k} {v:.2f}" for k, v in r["other_load"].items()))
    pk = r["peak_rss_mb"]
    L.append(f"peak RSS of this whole benchmark process: {pk['process_vmhwm']:.0f} MB (VmHWM)")
    if pk["jobs"]:
        L.append("peak RSS of each attribution job alone (fresh process: import torch+captum, build the")
        L.append("model, run the job twice; VmHWM):")
        for j, v in pk["jobs"].items():
            L.append(f"  {j:42s} {v['peak_rss_mb']:7.0f} MB   (RSS after imports: {v['rss_after_imports_mb']:.0f} MB)")
    return "\n".join(L)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=10, help="timed runs per figure (median)")
    ap.add_argument("--quick", action="store_true", help="3 repeats, no per-job memory probes")
    ap.add_argument("--no-export", action="store_true", help="do not (re)write tests/fixtures/bench/")
    ap.add_argument("--wait-idle", type=float, default=0, metavar="SECONDS",
                    help="before each section wait (at most SECONDS) until other processes are quiet")
    ap.add_argument("--retries", type=int, default=4,
                    help="re-run a section when other processes were busy during it (default 4)")
    ap.add_argument("--only", choices=JOBS, help=argparse.SUPPRESS)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.only:
        return run_only(a.only)
    reps = 3 if a.quick else a.repeats
    if not a.no_export:
        export_models()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")),
               platform.processor())
    r = {"torch": torch.__version__, "captum": captum.__version__, "numpy": np.__version__,
         "threads": a.threads, "repeats": reps,
         "machine": {"cpu": cpu, "cpus": os.cpu_count(),
                     "torch_cpu_capability": torch.backends.cpu.get_cpu_capability()},
         "command": " ".join(sys.argv)}
    r["other_load"] = {}
    r["sgemm"] = measured(r, "sgemm", lambda: bench_sgemm(reps), a)
    r["conv2d"] = measured(r, "conv2d", lambda: bench_conv(reps), a)
    r["models"] = {}
    for name in MODELS:
        m = r["models"][name] = model_info(name)
        for batch in (4, 1):
            m["integrated_gradients"][f"batch{batch}"] = measured(
                r, f"{name}/integrated_gradients/batch{batch}", lambda: bench_ig(name, batch, reps), a)
            m["conductance"][f"batch{batch}"] = measured(
                r, f"{name}/conductance/batch{batch}", lambda: bench_lc(name, batch, reps), a)
    r["peak_rss_mb"] = {"process_ru_maxrss": peak_rss_mb(), "process_vmhwm": proc_status_mb("VmHWM"),
                        "jobs": {}}
    if not a.quick:
        for job in JOBS:
            log(f"memory: {job} ...")
            r["peak_rss_mb"]["jobs"][job] = child_peak(job, a.threads)
    log("")
    log(table(r))
    print(json.dumps(r, indent=1))


if __name__ == "__main__":
    main()
