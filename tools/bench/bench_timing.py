"""Timing shared by the PyTorch side of the benchmarks (torch_kernels.py, torch_model.py)."""
import time


def time_call(fn, reps, slow_s):
    """One warm-up call (it also lets oneDNN pick and cache its kernel), then `reps` timed calls.
    A warm-up slower than slow_s is the only measurement: torch's default float32 path on Debian's
    generic BLAS can take minutes per large product."""
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    if first > slow_s:
        return [first]
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times
