#!/usr/bin/python3
"""The block formats of quantized SlowFast.NET checkpoints (llama.cpp's Q8_0 and Q4_0), in NumPy.

This file is the executable documentation of the on-disk layout (README "Quantized weights"): a
[N, K] linear weight W is stored as two tensors,
    NAME          U8  [N, K]     (q8_0: int8 two's complement)   or   [N, K/2]  (q4_0: nibbles)
    NAME.scales   F16 [N, K/32]  one float16 scale per block of 32 consecutive elements of a row
and element k of row n is  scales[n, k // 32] * q[n, k]  in float32, with q as below.
The arithmetic is llama.cpp's reference quantizers' (quantize_row_q8_0_ref, quantize_row_q4_0_ref),
in float32, so this file, llama.cpp and the C# BlockQuantizer give identical bytes.

Use:
    /usr/bin/python3 tools/quant/blocks.py fixtures     writes the C# tests' fixture file
    /usr/bin/python3 tools/quant/blocks.py dequantize MODEL_DIR TENSOR_NAME   prints a summary of one tensor
"""
import json
import os
import struct
import sys

import numpy as np

BLOCK = 32
F32 = np.float32


def _round_half_away(v):
    """C's roundf on float32 values, exactly (np.round rounds halves to even)."""
    a = np.abs(v.astype(np.float64))
    t = np.trunc(a)
    r = t + (a - t >= 0.5)
    return np.sign(v) * r


def quantize_q8_0(x):
    """x: float32 [..., K] -> (payload uint8 [..., K], scales float16 [..., K/32])."""
    x = np.asarray(x, dtype=F32)
    blocks = x.reshape(*x.shape[:-1], -1, BLOCK)
    amax = np.max(np.abs(blocks), axis=-1)
    d = (amax / F32(127)).astype(F32)
    with np.errstate(divide="ignore"):
        inv = np.where(d != 0, F32(1) / np.where(d != 0, d, F32(1)), F32(0)).astype(F32)
    q = _round_half_away((blocks * inv[..., None]).astype(F32)).astype(np.int8)
    return q.reshape(x.shape).view(np.uint8), d.astype(np.float16)


def quantize_q4_0(x):
    """x: float32 [..., K] -> (payload uint8 [..., K/2], scales float16 [..., K/32])."""
    x = np.asarray(x, dtype=F32)
    blocks = x.reshape(*x.shape[:-1], -1, BLOCK)
    # The element of largest magnitude, the first one on ties (np.argmax returns the first).
    idx = np.argmax(np.abs(blocks), axis=-1)
    m = np.take_along_axis(blocks, idx[..., None], axis=-1)[..., 0]
    d = (m / F32(-8)).astype(F32)
    inv = np.where(d != 0, F32(1) / np.where(d != 0, d, F32(1)), F32(0)).astype(F32)
    # (int8_t)(v + 8.5f): truncation toward zero, then at most 15.
    q = np.minimum(15, np.trunc((blocks * inv[..., None]).astype(F32) + F32(8.5)).astype(np.int32)).astype(np.uint8)
    lo, hi = q[..., :16], q[..., 16:]
    payload = (lo | (hi << 4)).astype(np.uint8)
    return payload.reshape(*x.shape[:-1], -1), d.astype(np.float16)


def dequantize_q8_0(payload, scales):
    q = payload.view(np.int8).astype(F32)
    q = q.reshape(*q.shape[:-1], -1, BLOCK)
    return (q * scales.astype(F32)[..., None]).reshape(*payload.shape[:-1], -1).astype(F32)


def dequantize_q4_0(payload, scales):
    p = payload.reshape(*payload.shape[:-1], -1, 16)
    lo = (p & 15).astype(F32) - F32(8)
    hi = (p >> 4).astype(F32) - F32(8)
    q = np.concatenate([lo, hi], axis=-1)
    return (q * scales.astype(F32)[..., None]).reshape(*payload.shape[:-1], -1).astype(F32)


QUANTIZE = {"q8_0": quantize_q8_0, "q4_0": quantize_q4_0}
DEQUANTIZE = {"q8_0": dequantize_q8_0, "q4_0": dequantize_q4_0}

_DTYPES = {np.dtype(np.float32): "F32", np.dtype(np.float16): "F16", np.dtype(np.uint8): "U8"}
_NUMPY = {"F32": np.float32, "F16": np.float16, "U8": np.uint8, "BF16": np.uint16}


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        raw = np.ascontiguousarray(t).tobytes()
        header[name] = {"dtype": _DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
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


def read_tensor(model_dir, name):
    """One tensor of a checkpoint directory (any *.safetensors file), as a NumPy array (BF16 as uint16 bits)."""
    for file in sorted(os.listdir(model_dir)):
        if not file.endswith(".safetensors"):
            continue
        with open(os.path.join(model_dir, file), "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
            header = json.loads(f.read(n))
            if name in header:
                e = header[name]
                a, b = e["data_offsets"]
                f.seek(8 + n + a)
                return np.frombuffer(f.read(b - a), dtype=_NUMPY[e["dtype"]]).reshape(e["shape"])
    raise KeyError(name)


def fixtures():
    rng = np.random.default_rng(1806)
    rows = [rng.standard_normal(256).astype(F32) * F32(s) for s in (1.0, 0.02, 300.0)]
    edge = np.zeros(256, dtype=F32)                        # block 0: all zeros
    edge[32:64] = np.linspace(-1, 1, 32, dtype=F32)       # halves after scaling
    edge[64:96] = F32(0.5)                                 # one repeated value
    edge[96:128] = rng.standard_normal(32).astype(F32)
    edge[96 + 7], edge[96 + 20] = F32(-4), F32(4)        # a tie in magnitude: the first (negative) one wins in q4_0
    edge[128:160] = (np.arange(32, dtype=F32) - 16) * F32(1 / 8.0)   # exact multiples
    edge[160:256] = rng.standard_normal(96).astype(F32) * F32(1e-6)  # tiny values (subnormal fp16 scales)
    x = np.stack(rows + [edge])
    tensors = {"x": x}
    for fmt in ("q8_0", "q4_0"):
        payload, scales = QUANTIZE[fmt](x)
        tensors[fmt + ".payload"] = payload
        tensors[fmt + ".scales"] = scales
        tensors[fmt + ".dequantized"] = DEQUANTIZE[fmt](payload, scales)
    out = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "SlowFast.Tensors.Tests", "Fixtures", "quant", "blocks.safetensors")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    write_safetensors(out, tensors)


def summarize(model_dir, name):
    config = json.load(open(os.path.join(model_dir, "config.json")))
    fmt = config["quantization"]["format"]
    payload = read_tensor(model_dir, name)
    scales = read_tensor(model_dir, name + ".scales")
    w = DEQUANTIZE[fmt](payload, scales)
    print(f"{name}: {fmt}, {w.shape[0]} x {w.shape[1]}, mean {w.mean():.6g}, std {w.std():.6g}, first {w.ravel()[:4]}")


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "fixtures":
        fixtures()
    elif len(sys.argv) == 4 and sys.argv[1] == "dequantize":
        summarize(sys.argv[2], sys.argv[3])
    else:
        print(__doc__)
        sys.exit(2)
