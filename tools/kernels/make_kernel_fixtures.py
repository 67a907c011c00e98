#!/usr/bin/python3
"""Golden values for the SlowFast.Tensors compute kernels, computed with PyTorch.

Run with Debian's Python (torch 1.13, CPU):
    /usr/bin/python3 tools/kernels/make_kernel_fixtures.py
Writes small safetensors files to tests/SlowFast.Tensors.Tests/Fixtures/kernels/. Each file holds
the inputs and the torch outputs of one kernel; the C# tests (KernelsGoldenTests.cs) load them,
run the kernel on the inputs and compare. Everything is float32 (BF16 weights are stored as BF16).
Inputs come from a seeded generator, so the files are reproducible.
"""
import json
import math
import os
import struct

import torch

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "SlowFast.Tensors.Tests", "Fixtures", "kernels")
torch.manual_seed(1234)
gen = torch.Generator().manual_seed(1234)

DTYPE_NAMES = {torch.float32: "F32", torch.bfloat16: "BF16", torch.int32: "I32"}


def write_safetensors(path, tensors):
    """Minimal safetensors writer (the format is an 8-byte header length, JSON header, raw data)."""
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        t = t.contiguous()
        if t.dtype == torch.bfloat16:
            raw = t.view(torch.int16).numpy().tobytes()
        else:
            raw = t.numpy().tobytes()
        header[name] = {"dtype": DTYPE_NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)
    print(f"wrote {os.path.relpath(path)} ({8 + len(text) + offset} bytes)")


def randn(*shape, scale=1.0):
    return torch.randn(*shape, generator=gen, dtype=torch.float32) * scale


def gelu():
    x = torch.cat([torch.linspace(-8, 8, 1001), randn(523, scale=3.0)])
    return {"x": x, "y": torch.nn.GELU()(x)}


def rmsnorm():
    # Qwen2RMSNorm written out: variance in float32, x * rsqrt(var + eps) * weight.
    x = randn(5, 37, scale=2.0)
    w = randn(37)
    eps = 1e-6
    var = x.pow(2).mean(-1, keepdim=True)
    y = w * (x * torch.rsqrt(var + eps))
    return {"x": x, "weight": w, "y": y}


def layernorm():
    x = randn(6, 40, scale=2.0) + 3.0
    w = randn(40)
    b = randn(40)
    y = torch.nn.functional.layer_norm(x, (40,), w, b, eps=1e-6)
    return {"x": x, "weight": w, "bias": b, "y": y}


def rope():
    # HF Qwen2 rotary embedding: inv_freq in float32, angles = positions ⊗ inv_freq in float32,
    # emb = cat(freqs, freqs), q' = q cos + rotate_half(q) sin.
    tokens, heads, dim, theta = 7, 3, 64, 1000000.0
    positions = torch.tensor([0, 1, 2, 17, 255, 1000, 4095], dtype=torch.int32)
    inv_freq = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
    freqs = positions.float()[:, None] * inv_freq[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos(), emb.sin()
    x = randn(tokens, heads, dim)

    def rotate_half(v):
        return torch.cat((-v[..., dim // 2:], v[..., : dim // 2]), dim=-1)

    y = x * cos[:, None, :] + rotate_half(x) * sin[:, None, :]
    return {"x": x, "positions": positions, "y": y}


def depthwise():
    h, w, c, k = 9, 11, 20, 7
    x = randn(h, w, c)
    weight = randn(c, 1, k, k, scale=0.2)
    bias = randn(c)
    y = torch.nn.functional.conv2d(x.permute(2, 0, 1)[None], weight, bias, padding=k // 2, groups=c)
    return {"x": x, "weight": weight, "bias": bias, "y": y[0].permute(1, 2, 0).contiguous()}


def patch_conv():
    c, h, w, p, cout = 3, 12, 8, 4, 10
    x = randn(c, h, w)
    weight = randn(cout, c, p, p, scale=0.3)
    bias = randn(cout)
    y = torch.nn.functional.conv2d(x[None], weight, bias, stride=p)  # [1, cout, h/p, w/p]
    return {"x": x, "weight": weight, "bias": bias, "y": y[0].permute(1, 2, 0).reshape(-1, cout).contiguous()}


def attention():
    # Causal GQA attention, prefill of T queries at positions S-T..S-1 against S keys.
    t, s, hq, hkv, d = 19, 83, 6, 2, 32
    q = randn(t, hq, d)
    k = randn(s, hkv, d)
    v = randn(s, hkv, d)
    positions = torch.arange(s - t, s, dtype=torch.int32)
    group = hq // hkv
    kk = k.repeat_interleave(group, dim=1)  # [S, Hq, D]
    vv = v.repeat_interleave(group, dim=1)
    scores = torch.einsum("thd,shd->hts", q, kk) / math.sqrt(d)
    mask = torch.arange(s)[None, :] > positions[:, None].long()
    scores = scores.masked_fill(mask[None], float("-inf"))
    y = torch.einsum("hts,shd->thd", torch.softmax(scores, dim=-1), vv).contiguous()
    full = torch.einsum("hts,shd->thd", torch.softmax(torch.einsum("thd,shd->hts", q, kk) / math.sqrt(d), dim=-1), vv).contiguous()
    return {"q": q, "k": k, "v": v, "positions": positions, "y_causal": y, "y_full": full}


def linear_bf16():
    out = {}
    n, k = 45, 83
    w = randn(n, k).bfloat16()
    b = randn(n)
    out["weight"] = w
    out["bias"] = b
    for m in (1, 3, 17, 64):
        x = randn(m, k)
        out[f"x{m}"] = x
        out[f"y{m}"] = torch.nn.functional.linear(x, w.float(), b)
    return out


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(1)
    for name, make in [("gelu", gelu), ("rmsnorm", rmsnorm), ("layernorm", layernorm), ("rope", rope),
                       ("depthwise", depthwise), ("patch_conv", patch_conv), ("attention", attention),
                       ("linear_bf16", linear_bf16)]:
        write_safetensors(os.path.join(OUT, name + ".safetensors"), make())


if __name__ == "__main__":
    main()
