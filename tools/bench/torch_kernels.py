#!/usr/bin/python3
"""PyTorch side of the kernel benchmark (bench/SlowFast.Bench KernelBench runs this).

    /usr/bin/python3 tools/bench/torch_kernels.py --threads 2 --reps 5 --shapes 2048x3584x3584,1x3584x18944

Each shape is MxKxN: y[M, N] = x[M, K] · W[N, K]ᵀ, timed three ways:
  f32         torch.nn.functional.linear in float32 (torch's default CPU path; BLAS-backed)
  f32_mkldnn  the same product through oneDNN (torch._C._nn.mkldnn_linear on mkldnn tensors), which
              is what torch.utils.mkldnn.to_mkldnn(model) would run — a fairer float32 baseline when
              torch was built against a slow generic BLAS, as Debian's python3-torch is
  bf16        torch.nn.functional.linear with bfloat16 inputs and weights (oneDNN)
Prints one JSON object: per shape the median and min seconds and GFLOP/s of each.
"""
import argparse
import json
import statistics

import torch

from bench_timing import time_call


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--shapes", required=True)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    results = []
    for shape in args.shapes.split(","):
        m, k, n = (int(v) for v in shape.split("x"))
        flops = 2.0 * m * k * n
        entry = {"m": m, "k": k, "n": n}
        x = torch.randn(m, k)
        for name in ("f32", "f32_mkldnn", "bf16"):
            dtype = torch.bfloat16 if name == "bf16" else torch.float32
            w = (torch.randn(n, k) * 0.02).to(dtype)
            xd = x.to(dtype)
            if name == "f32_mkldnn":
                w, xd = w.to_mkldnn(), xd.to_mkldnn()
                fn = lambda: torch._C._nn.mkldnn_linear(xd, w, None)
            else:
                fn = lambda: torch.nn.functional.linear(xd, w)
            with torch.no_grad():
                times = time_call(fn, args.reps, slow_s=2.0)
            med = statistics.median(times)
            entry[name] = {"median_s": med, "min_s": min(times), "reps": len(times), "gflops": flops / med / 1e9}
            del w, xd
        results.append(entry)
    print(json.dumps({"torch": torch.__version__, "threads": args.threads, "results": results}))


if __name__ == "__main__":
    main()
