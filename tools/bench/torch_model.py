#!/usr/bin/python3
"""PyTorch side of the model-level benchmark (src/SlowFast.Benchmarks runs this in the same run).

    /usr/bin/python3 tools/bench/torch_model.py --threads 2 --reps 3 \
        --layer 3584,28,4,18944,1356 --stage 36,1536 --stage 144,384

--layer HIDDEN,HEADS,KV_HEADS,INTERMEDIATE,POSITIONS
    ONE Qwen2 decoder layer, prefill of POSITIONS positions (written here from the architecture, not
    copied): RMSNorm -> q/k/v projections with bias -> rotary embedding (rotate-half, theta 1e6) ->
    causal grouped-query attention (explicit scores, mask, softmax) -> o_proj -> residual ->
    RMSNorm -> SwiGLU MLP -> residual.
--stage SIDE,DIM (repeatable)
    A 4x4 stride-4 stem (conv + LayerNorm) from a (4*SIDE)^2 RGB image to SIDE x SIDE x DIM, then ONE
    ConvNeXt block: depthwise 7x7 conv -> LayerNorm -> Linear 4*DIM -> GELU -> Linear DIM -> layer scale
    -> residual. The same work as the C# side (the model's ConvNextTower on a one-stage tower).
    In bf16 the block's two products are also timed alone ("bf16_products").

Each is timed in two precisions:
  f32   weights are bfloat16 values held in float32 (what our side computes with BF16 weights: the
        products run in float32). Debian's python3-torch is built with BLAS_INFO=generic, whose float32
        matrix products are ~30x slower than oneDNN, so every float32 product (projections and attention)
        goes through oneDNN (torch._C._nn.mkldnn_linear), as torch.utils.mkldnn would run the model.
  bf16  everything in bfloat16 (oneDNN products), torch's fastest CPU path.
Prints one JSON object with median/min seconds per call.
"""
import argparse
import json
import math
import statistics

import torch
import torch.nn.functional as F

from bench_timing import time_call


def summary(times):
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times), "reps": len(times)}


class Products:
    """x . w^T (+ b) in the chosen precision; float32 through oneDNN (see the module docstring)."""

    def __init__(self, precision):
        self.f32 = precision == "f32"
        self.dtype = torch.float32 if self.f32 else torch.bfloat16

    def weight(self, w):
        w = w.to(torch.bfloat16)  # bf16 values, like the checkpoint
        return w.float().to_mkldnn() if self.f32 else w

    def bias(self, b):
        return b.float().to_mkldnn() if self.f32 else b.to(torch.bfloat16)

    def linear(self, x, w, b=None):
        if self.f32:
            return torch._C._nn.mkldnn_linear(x.contiguous().to_mkldnn(), w, b).to_dense()
        return F.linear(x, w, b)

    def matmul_t(self, a, b):
        """a . b^T for 2-D a, b."""
        if self.f32:
            return torch._C._nn.mkldnn_linear(a.contiguous().to_mkldnn(), b.contiguous().to_mkldnn(), None).to_dense()
        return torch.matmul(a, b.t())


def rms_norm(x, w, eps=1e-6):
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype) * w


def rotary(x, positions, theta=1e6):
    """x [T, H, D], rotate-half convention."""
    d = x.shape[-1]
    inv = 1.0 / (theta ** (torch.arange(0, d, 2, dtype=torch.float32) / d))
    ang = positions[:, None].float() * inv[None, :]
    cos = torch.cat([ang.cos(), ang.cos()], -1)[:, None, :].to(x.dtype)
    sin = torch.cat([ang.sin(), ang.sin()], -1)[:, None, :].to(x.dtype)
    x1, x2 = x[..., : d // 2], x[..., d // 2:]
    return x * cos + torch.cat([-x2, x1], -1) * sin


def decoder_layer(hidden, heads, kv_heads, inter, positions, precision):
    p = Products(precision)
    d = hidden // heads
    g = torch.Generator().manual_seed(0)

    def rnd(*shape, scale=1.0):
        return (torch.rand(*shape, generator=g) * 2 - 1) * scale

    s = 1 / math.sqrt(hidden)
    wq, wk, wv = p.weight(rnd(heads * d, hidden, scale=s)), p.weight(rnd(kv_heads * d, hidden, scale=s)), p.weight(rnd(kv_heads * d, hidden, scale=s))
    bq, bk, bv = p.bias(rnd(heads * d, scale=0.1)), p.bias(rnd(kv_heads * d, scale=0.1)), p.bias(rnd(kv_heads * d, scale=0.1))
    wo = p.weight(rnd(hidden, heads * d, scale=s))
    wg, wu = p.weight(rnd(inter, hidden, scale=s)), p.weight(rnd(inter, hidden, scale=s))
    wd = p.weight(rnd(hidden, inter, scale=1 / math.sqrt(inter)))
    n1, n2 = (1 + rnd(hidden, scale=0.2)).to(p.dtype), (1 + rnd(hidden, scale=0.2)).to(p.dtype)
    x = rnd(positions, hidden, scale=0.5).to(p.dtype)
    pos = torch.arange(positions)
    mask = torch.full((positions, positions), float("-inf")).triu(1).to(p.dtype)
    group = heads // kv_heads

    def run():
        h = rms_norm(x, n1)
        q = rotary(p.linear(h, wq, bq).view(positions, heads, d), pos)
        k = rotary(p.linear(h, wk, bk).view(positions, kv_heads, d), pos)
        v = p.linear(h, wv, bv).view(positions, kv_heads, d)
        out = torch.empty(positions, heads, d, dtype=p.dtype)
        for head in range(heads):
            kv = head // group
            scores = p.matmul_t(q[:, head], k[:, kv]) * (1 / math.sqrt(d)) + mask
            probs = torch.softmax(scores.float(), -1).to(p.dtype)
            out[:, head] = p.matmul_t(probs, v[:, kv].t())
        y = x + p.linear(out.view(positions, heads * d), wo)
        h2 = rms_norm(y, n2)
        return y + p.linear(F.silu(p.linear(h2, wg)) * p.linear(h2, wu), wd)

    return run


def convnext_block(side, dim, precision):
    p = Products(precision)
    g = torch.Generator().manual_seed(1)

    def rnd(*shape, scale=1.0):
        return (torch.rand(*shape, generator=g) * 2 - 1) * scale

    image = rnd(1, 3, 4 * side, 4 * side).to(p.dtype)
    stem_w, stem_b = rnd(dim, 3, 4, 4, scale=0.1).to(torch.bfloat16).to(p.dtype), rnd(dim, scale=0.1).to(p.dtype)
    ln0_w, ln0_b = (1 + rnd(dim, scale=0.2)).to(p.dtype), rnd(dim, scale=0.1).to(p.dtype)
    dw_w, dw_b = rnd(dim, 1, 7, 7, scale=0.1).to(torch.bfloat16).to(p.dtype), rnd(dim, scale=0.1).to(p.dtype)
    ln_w, ln_b = (1 + rnd(dim, scale=0.2)).to(p.dtype), rnd(dim, scale=0.1).to(p.dtype)
    fc1, fc1_b = p.weight(rnd(4 * dim, dim, scale=1 / math.sqrt(dim))), p.bias(rnd(4 * dim, scale=0.1))
    fc2, fc2_b = p.weight(rnd(dim, 4 * dim, scale=1 / math.sqrt(4 * dim))), p.bias(rnd(dim, scale=0.1))
    gamma = (0.2 + rnd(dim, scale=0.1)).to(p.dtype)

    # The block's two products alone (bf16 only), on inputs of their shapes: how close torch's own
    # products come to the machine's peak (the bench sets a block's speed-up against that).
    products = None
    if not p.f32:
        rows = torch.ones(side * side, dim, dtype=p.dtype) * 0.5
        hidden = torch.ones(side * side, 4 * dim, dtype=p.dtype) * 0.5

        def products():
            p.linear(rows, fc1, fc1_b)
            p.linear(hidden, fc2, fc2_b)

    def run():
        x = F.conv2d(image, stem_w, stem_b, stride=4)                      # [1, dim, side, side]
        x = F.layer_norm(x.permute(0, 2, 3, 1), (dim,), ln0_w, ln0_b, 1e-5)  # NHWC
        t = F.conv2d(x.permute(0, 3, 1, 2), dw_w, dw_b, padding=3, groups=dim).permute(0, 2, 3, 1)
        t = F.layer_norm(t, (dim,), ln_w, ln_b, 1e-5).reshape(side * side, dim)
        t = p.linear(F.gelu(p.linear(t, fc1, fc1_b)), fc2, fc2_b)
        return x + (t * gamma).view(1, side, side, dim)

    return run, products


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--layer", help="HIDDEN,HEADS,KV_HEADS,INTERMEDIATE,POSITIONS")
    ap.add_argument("--stage", action="append", default=[], help="SIDE,DIM (repeatable)")
    ap.add_argument("--precisions", default="f32,bf16")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    precisions = args.precisions.split(",")
    out = {"torch": torch.__version__, "threads": args.threads}
    with torch.no_grad():
        if args.layer:
            hidden, heads, kv_heads, inter, positions = (int(v) for v in args.layer.split(","))
            entry = {"hidden": hidden, "heads": heads, "kv_heads": kv_heads, "intermediate": inter, "positions": positions}
            for prec in precisions:
                entry[prec] = summary(time_call(decoder_layer(hidden, heads, kv_heads, inter, positions, prec), args.reps, slow_s=60.0))
            out["decoder_layer"] = entry
        blocks = []
        for spec in args.stage:
            side, dim = (int(v) for v in spec.split(","))
            entry = {"side": side, "dim": dim}
            for prec in precisions:
                block, products = convnext_block(side, dim, prec)
                entry[prec] = summary(time_call(block, args.reps, slow_s=60.0))
                if prec == "bf16":
                    entry["bf16_products"] = summary(time_call(products, args.reps, slow_s=60.0))
            blocks.append(entry)
        out["convnext_blocks"] = blocks
    print(json.dumps(out))


if __name__ == "__main__":
    main()
