"""torch.mm alone, for alternating with mho's sgemm benchmark on a noisy machine.

    /opt/mho-venv/bin/python scripts/torch_sgemm_loop.py     # prints "256:ms 512:ms 1024:ms"

Two threads (as mho's benchmarks); for each n, a warm-up loop, then the median of 15 timed
loops of back-to-back torch.mm calls into a preallocated output. docs/benchmarks.md alternates
it with `cargo bench --bench kernels -- sgemm/` three times.
"""
import statistics
import time

import torch

torch.set_num_threads(2)
res = {}
for n in (256, 512, 1024):
    g = torch.Generator().manual_seed(n)
    a, b = torch.randn(n, n, generator=g), torch.randn(n, n, generator=g)
    c = torch.empty(n, n)
    reps = {256: 400, 512: 60, 1024: 8}[n]
    for _ in range(reps):
        torch.mm(a, b, out=c)
    ts = []
    for _ in range(15):
        t = time.perf_counter()
        for _ in range(reps):
            torch.mm(a, b, out=c)
        ts.append((time.perf_counter() - t) / reps * 1e3)
    res[n] = statistics.median(ts)
print(" ".join(f"{n}:{v:.4f}" for n, v in res.items()))
