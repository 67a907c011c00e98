"""Independent PyTorch implementation of the slow-fast video MLLM forward pass and greedy decoding.

Written from the semantics of the authors' code (LLaVA-style prepare_inputs_labels_for_multimodal,
split_slow_fast_tokens, timm's ConvNeXt, HF Qwen2 and the hybrid cross-attention layers) so that the
C# engine can be checked against numbers that do not come from itself. Plain torch (1.13 works),
no transformers / timm / flash-attn. Reads the checkpoint directories that `slowfast create-model`
writes (config.json + model.safetensors or a sharded index), F32 / BF16 / F16 weights.

Everything runs in one dtype chosen by the caller: float32 (what the fixtures hold, weights
upcast) or float64 (to measure how far float32 itself is from the exact result).

Layouts used below (batch size is always 1, so there is no batch axis):
  pixels [T, 3, S, S]; tower activations NHWC [T, h, w, C]; visual tokens [T, n, C] with n = h*w
  row-major over (h, w); decoder rows [L, hidden]; per-head tensors [L, heads, head_dim].
"""

import json
import math
import os
import struct

import numpy as np
import torch

IMAGE_TOKEN_INDEX = -200
TOKEN_TYPE_TEXT = 1       # system / user text (labels are IGNORE_INDEX at inference)
TOKEN_TYPE_RESPONSE = 2   # response text (only during training, or the attend-while-decoding option)
TOKEN_TYPE_VISUAL = 3
TOKEN_TYPE_PADDING = 4


# ----------------------------------------------------------------------------- safetensors

_ST_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I64": np.int64,
              "I32": np.int32, "BF16": np.uint16, "U8": np.uint8}


def read_safetensors(path):
    """Returns ({name: torch tensor (BF16 upcast to float32 exactly)}, metadata dict)."""
    with open(path, "rb") as f:
        header_len = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(header_len))
        data = f.read()
    meta = header.pop("__metadata__", {}) or {}
    out = {}
    for name, info in header.items():
        start, end = info["data_offsets"]
        raw = np.frombuffer(data[start:end], dtype=_ST_DTYPES[info["dtype"]]).reshape(info["shape"])
        if info["dtype"] == "BF16":
            # bfloat16 is the top half of a float32: widening is exact.
            raw = (raw.astype(np.uint32) << 16).view(np.float32)
        out[name] = torch.from_numpy(raw.copy())
    return out, meta


def write_safetensors(path, tensors, metadata=None):
    """tensors: {name: numpy array of float32/float16/int64}; written in name order."""
    names = {np.dtype(np.float32): "F32", np.dtype(np.float16): "F16", np.dtype(np.int64): "I64"}
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    offset = 0
    blobs = []
    for name in sorted(tensors):
        arr = np.ascontiguousarray(tensors[name])
        blob = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": names[arr.dtype], "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    head = json.dumps(header, separators=(",", ":")).encode("utf-8")
    head += b" " * ((8 - len(head) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for b in blobs:
            f.write(b)


class Checkpoint:
    """config.json (a dict) and every weight as a tensor of the compute dtype."""

    def __init__(self, directory, dtype=torch.float32):
        with open(os.path.join(directory, "config.json"), encoding="utf-8") as f:
            self.config = json.load(f)
        index = os.path.join(directory, "model.safetensors.index.json")
        files = ["model.safetensors"]
        if os.path.exists(index):
            with open(index, encoding="utf-8") as f:
                files = sorted(set(json.load(f)["weight_map"].values()))
        self.weights = {}
        self.stored_dtypes = set()
        raw = {}
        for name in files:
            tensors, _ = read_safetensors(os.path.join(directory, name))
            raw.update(tensors)
        # A quantized checkpoint (`slowfast quantize`): each listed matrix is its block integers (U8)
        # and float16 scales; the weight is their product, and products with it follow the block
        # arithmetic (see quantized_linear).
        q = self.config.get("quantization")
        self.quantized = set()
        if q is not None:
            fmt = q["format"].lower()
            suffix = q.get("scales_suffix", ".scales")
            for name in q["tensors"]:
                payload, scales = raw.pop(name).numpy(), raw.pop(name + suffix).numpy()
                weight = torch.from_numpy(_quant_blocks().DEQUANTIZE[fmt](payload, scales)).to(dtype)
                weight.block_scales = torch.from_numpy(scales.astype(np.float32))            # [N, K/32]
                weight.block_integers = _block_integers(fmt, payload)                         # [N, K/32, 32]
                self.weights[name] = weight
                self.quantized.add(name)
        for k, v in raw.items():
            self.weights[k] = v.to(dtype)
        self.dtype = dtype

    def __getitem__(self, name):
        return self.weights[name]

    def has(self, name):
        return name in self.weights


# ----------------------------------------------------------------------------- small math

def layer_norm(x, weight, bias, eps):
    """LayerNorm over the last axis (biased variance), as torch's layer_norm."""
    mean = x.mean(dim=-1, keepdim=True)
    centered = x - mean
    var = (centered * centered).mean(dim=-1, keepdim=True)
    return centered / torch.sqrt(var + eps) * weight + bias


def gelu_exact(x):
    """GELU with the exact erf form (nn.GELU's default)."""
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def silu(x):
    return x * torch.sigmoid(x)


def rms_norm(x, weight, eps):
    """HF Qwen2RMSNorm: x * rsqrt(mean(x^2) + eps), then * weight."""
    var = (x * x).mean(dim=-1, keepdim=True)
    return weight * (x * torch.rsqrt(var + eps))


# bf16 math (SlowFastModel.Precision = BFloat16, PyTorch's bf16 inference): every product with a
# checkpoint matrix first rounds its input rows to bfloat16 (nearest even); the weights already are
# bfloat16 values (a BF16 checkpoint), products and sums stay in the compute dtype. The one exception
# is the 1-output cross-attention gate, which the engine computes as a plain dot product.
_BF16_MATH = False


# The vision tower's fc1/fc2 in int8 with one scale per input row and per output channel
# (ConvNextTower.MlpInt8, `--vision-int8`); module-wide, set by SlowFastReference.
_VISION_INT8 = False


def int8_channels_linear(x, weight, bias=None):
    """y = x · Wᵀ (+ bias) in int8 with one scale per row: every row of x and of W (an output channel)
    is quantized in float32 on its own, s = max|v| / 127 and q = round-half-even(v · (127 / max|v|)),
    0 for a row of zeros; the integer dot products are exact, and y = float32(dot) · (s_x · s_w), all in
    float32 whatever the compute dtype."""
    def quantize(m):
        m = m.to(torch.float32)
        top = m.abs().amax(dim=-1)
        nonzero = top > 0
        inverse = torch.where(nonzero, torch.tensor(127.0) / torch.where(nonzero, top, torch.ones_like(top)), torch.zeros_like(top))
        return torch.round(m * inverse[:, None]), top / torch.tensor(127.0)

    shape = x.shape
    qx, sx = quantize(x.reshape(-1, shape[-1]))
    qw, sw = quantize(weight)
    dots = (qx.double() @ qw.double().t()).to(torch.float32)   # exact integers, then float32 as the kernel converts them
    y = dots * (sx[:, None] * sw[None, :])
    if bias is not None:
        y = y + bias.to(torch.float32)
    return y.reshape(*shape[:-1], weight.shape[0]).to(x.dtype)


def round_bf16(x):
    return x.to(torch.bfloat16).to(x.dtype)


def linear(x, weight, bias=None, exact=False):
    if hasattr(weight, "block_integers"):
        y = quantized_linear(x, weight)
    else:
        if _BF16_MATH and not exact:
            x = round_bf16(x)
        y = x @ weight.t()
    return y + bias if bias is not None else y


def _quant_blocks():
    """tools/quant/blocks.py, the NumPy quantizer and dequantizer of the block formats."""
    import importlib.util
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "quant", "blocks.py")
    spec = importlib.util.spec_from_file_location("slowfast_quant_blocks", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _block_integers(fmt, payload):
    """The signed integers of each 32-element block, [N, K/32, 32] (q8_0: int8; q4_0: nibble - 8, low then high)."""
    if fmt == "q8_0":
        q = payload.view(np.int8).astype(np.int64)
        return torch.from_numpy(q.reshape(q.shape[0], -1, 32))
    p = payload.reshape(payload.shape[0], -1, 16).astype(np.int64)
    return torch.from_numpy(np.concatenate([(p & 15) - 8, (p >> 4) - 8], axis=-1))


def quantized_linear(x, weight):
    """y = x · Wᵀ in the block arithmetic of llama.cpp's q8_0/q4_0 dot products: each input row is
    quantized per 32-element block in float32 (d = max|x| / 127, q = round-half-even(x · (1/d)), 0 when
    d = 0), each block's integer dot product is exact, and y = Σ_blocks float(dot) · d_w · d_x."""
    rows, k = x.shape
    xb = x.to(torch.float32).reshape(rows, k // 32, 32)
    d = xb.abs().amax(dim=-1) / 127.0
    inv = torch.where(d != 0, 1.0 / torch.where(d != 0, d, torch.ones_like(d)), torch.zeros_like(d))
    q = torch.round(xb * inv[..., None]).clamp(-127, 127)
    dots = torch.einsum("rbk,nbk->rnb", q.double(), weight.block_integers.double())   # exact integers
    terms = (dots.to(torch.float32) * weight.block_scales[None]) * d[:, None, :]
    return terms.to(x.dtype).sum(dim=-1)


def softmax_last(scores):
    m = scores.max(dim=-1, keepdim=True).values
    e = torch.exp(scores - m)
    return e / e.sum(dim=-1, keepdim=True)


# ----------------------------------------------------------------------------- vision tower

def patchify_nchw(x, p):
    """[T, C, H, W] -> [T, H/p, W/p, C*p*p], patch vector ordered (c, ky, kx) like a conv weight."""
    t, c, h, w = x.shape
    x = x.reshape(t, c, h // p, p, w // p, p)
    return x.permute(0, 2, 4, 1, 3, 5).reshape(t, h // p, w // p, c * p * p)


def patchify_nhwc(x, p):
    """[T, H, W, C] -> [T, H/p, W/p, C*p*p], ordered (c, ky, kx)."""
    t, h, w, c = x.shape
    x = x.reshape(t, h // p, p, w // p, p, c)
    return x.permute(0, 1, 3, 5, 2, 4).reshape(t, h // p, w // p, c * p * p)


def depthwise_conv_nhwc(x, weight, bias):
    """Depthwise k×k convolution, stride 1, zero padding k//2, as shift-and-add over the k² taps.
    x [T, H, W, C], weight [C, 1, k, k]."""
    t, h, w, c = x.shape
    k = weight.shape[-1]
    pad = k // 2
    padded = torch.zeros(t, h + 2 * pad, w + 2 * pad, c, dtype=x.dtype)
    padded[:, pad:pad + h, pad:pad + w, :] = x
    out = torch.zeros_like(x) + bias
    for ky in range(k):
        for kx in range(k):
            out = out + padded[:, ky:ky + h, kx:kx + w, :] * weight[:, 0, ky, kx]
    return out


class ConvNextTower:
    """timm ConvNeXt (conv_mlp=False: channels-last LayerNorm + Linear MLP in the blocks) up to the
    last stage; its output feature map flattened to tokens. No head, no norm_pre."""

    PREFIX = "model.vision_tower.vision_tower."

    def __init__(self, ckpt):
        vc = ckpt.config.get("vision_config") or {}
        self.depths = vc.get("depths", [3, 4, 30, 3])
        self.dims = vc.get("dims", [384, 768, 1536, 3072])
        self.patch = vc.get("patch_size", 4)
        self.eps = vc.get("norm_eps", 1e-5)
        self.ckpt = ckpt

    def w(self, name):
        return self.ckpt[self.PREFIX + name]

    def block(self, x, s, b):
        pre = f"stages.{s}.blocks.{b}."
        shortcut = x
        y = depthwise_conv_nhwc(x, self.w(pre + "conv_dw.weight"), self.w(pre + "conv_dw.bias"))
        y = layer_norm(y, self.w(pre + "norm.weight"), self.w(pre + "norm.bias"), self.eps)
        mlp = int8_channels_linear if _VISION_INT8 else linear
        y = mlp(y, self.w(pre + "mlp.fc1.weight"), self.w(pre + "mlp.fc1.bias"))
        y = gelu_exact(y)
        y = mlp(y, self.w(pre + "mlp.fc2.weight"), self.w(pre + "mlp.fc2.bias"))
        scale_name = self.PREFIX + pre + "weight"
        if not self.ckpt.has(scale_name):
            scale_name = self.PREFIX + pre + "gamma"   # older exports
        y = y * self.ckpt[scale_name]
        return shortcut + y

    def forward(self, pixels, frames_per_batch=4):
        """pixels [T, 3, S, S] -> tokens [T, (S/reduction)^2, dims[-1]], a few frames at a time."""
        outs = []
        for start in range(0, pixels.shape[0], frames_per_batch):
            outs.append(self._forward_frames(pixels[start:start + frames_per_batch]))
        return torch.cat(outs, dim=0)

    def _forward_frames(self, pixels):
        stem_w = self.w("stem.0.weight")
        x = linear(patchify_nchw(pixels, self.patch), stem_w.reshape(stem_w.shape[0], -1), self.w("stem.0.bias"))
        x = layer_norm(x, self.w("stem.1.weight"), self.w("stem.1.bias"), self.eps)
        for s, depth in enumerate(self.depths):
            if s > 0:   # stage 0 keeps the stem's resolution and width: no downsample there
                x = layer_norm(x, self.w(f"stages.{s}.downsample.0.weight"), self.w(f"stages.{s}.downsample.0.bias"), self.eps)
                dw = self.w(f"stages.{s}.downsample.1.weight")
                x = linear(patchify_nhwc(x, 2), dw.reshape(dw.shape[0], -1), self.w(f"stages.{s}.downsample.1.bias"))
            for b in range(depth):
                x = self.block(x, s, b)
        t, h, w, c = x.shape
        return x.reshape(t, h * w, c)


def project(ckpt, features):
    """The mm_projector: linear, mlpNx_gelu (Linear, then GELU+Linear pairs) or identity."""
    kind = ckpt.config.get("mm_projector_type", "linear")
    if kind == "identity":
        return features
    if kind == "linear":
        return linear(features, ckpt["model.mm_projector.weight"], ckpt["model.mm_projector.bias"])
    if not (kind.startswith("mlp") and kind.endswith("x_gelu")):
        raise ValueError(f"unknown projector {kind}")
    depth = int(kind[3:-6])
    x = linear(features, ckpt["model.mm_projector.0.weight"], ckpt["model.mm_projector.0.bias"])
    for i in range(1, depth):
        x = gelu_exact(x)
        x = linear(x, ckpt[f"model.mm_projector.{2 * i}.weight"], ckpt[f"model.mm_projector.{2 * i}.bias"])
    return x


# ----------------------------------------------------------------------------- visual tokens

def spatial_avg_pool(tokens, stride):
    """[T, n, C] tokens on a side×side grid -> [T, (side//stride)^2, C]; avg_pool2d(kernel=stride,
    stride=stride) drops the rows/columns that do not fill a window (floor mode)."""
    if stride <= 1:
        return tokens
    t, n, c = tokens.shape
    side = int(n ** 0.5)
    out_side = side // stride
    grid = tokens.reshape(t, side, side, c)[:, :out_side * stride, :out_side * stride, :]
    grid = grid.reshape(t, out_side, stride, out_side, stride, c)
    return grid.sum(dim=(2, 4)).div(stride * stride).reshape(t, out_side * out_side, c)


def sample_fast_frames(total, stride, min_frames):
    """Frame indices for the fast path's temporal sampling (the reference's sample_fast_frames)."""
    if total < min_frames:
        return list(range(total))
    count = max(total // stride, min_frames)
    step = total / count
    return [min(int(i * step), total - 1) for i in range(count)]


def temporal_avg_pool(frames, stride, min_frames):
    """[F, n, C] -> pooled frames: windows of `stride` (leftovers dropped) when that leaves at least
    min_frames, otherwise adaptive pooling down to min(F, min_frames) frames."""
    f = frames.shape[0]
    if stride <= 1:
        return frames
    if f // stride >= min_frames:
        out = f // stride
        return torch.stack([frames[i * stride:(i + 1) * stride].sum(dim=0) / stride for i in range(out)])
    out = min(f, min_frames)
    pooled = []
    for i in range(out):
        lo = (i * f) // out
        hi = -((-(i + 1) * f) // out)   # ceil((i+1)*f/out)
        pooled.append(frames[lo:hi].sum(dim=0) / (hi - lo))
    return torch.stack(pooled)


def fast_frame_plan(cfg, frames):
    """Which frames the fast path keeps (after temporal sampling), for reporting in the fixtures."""
    sampling = cfg.get("fast_token_temporal_sampling_stride", 1) or 1
    if frames > 1 and sampling > 1:
        return sample_fast_frames(frames, sampling, cfg.get("min_fast_frames", 1) or 1)
    return list(range(frames))


def slow_and_fast_tokens(cfg, projected):
    """projected [T, n, H] (after the projector) -> (fast [Nf, H], slow [Ns, H]).

    Videos (T > 1): every frame is first average-pooled by mm_video_pooling_stride; the slow tokens
    are all of them; the fast tokens are temporally sampled, temporally pooled and spatially
    pooled. (The reference zero-pads the frame axis to a multiple of the two temporal strides first,
    but its frame selection only ever picks indices below T, so the padding never reaches the
    result; it is not reproduced here.) An image (T == 1) is only spatially pooled for the fast path.
    """
    t = projected.shape[0]
    min_frames = cfg.get("min_fast_frames", 1) or 1
    spatial = cfg.get("fast_token_spatial_stride", 1) or 1
    if t > 1:
        pooled = spatial_avg_pool(projected, cfg.get("mm_video_pooling_stride", 2))
        fast = pooled[fast_frame_plan(cfg, t)]
        fast = temporal_avg_pool(fast, cfg.get("fast_token_temporal_stride", 1) or 1, min_frames)
        fast = spatial_avg_pool(fast, spatial)
    else:
        pooled = projected
        fast = spatial_avg_pool(projected, spatial)
    return fast.reshape(-1, fast.shape[-1]), pooled.reshape(-1, pooled.shape[-1])


def baseline_visual(visual):
    """The self-attention-only baseline on the same weights (LLaVA style): every frame's video-pooled
    tokens (the slow tokens, frame by frame) take the place of the fast tokens in the sequence, and
    there are no slow tokens, so the hybrid layers' cross branch never runs."""
    return dict(visual, fast_tokens=visual["slow_tokens"], slow_tokens=None)


def build_sequence(ckpt, input_ids, fast_tokens):
    """Text embeddings with the fast tokens spliced in at every IMAGE_TOKEN_INDEX (one visual input),
    token types, then truncation to tokenizer_model_max_length. Returns (embeds [P, H], types [P])."""
    embed = ckpt["model.embed_tokens.weight"]
    ids = list(input_ids)
    pieces, types = [], []
    start = 0
    image_positions = [i for i, t in enumerate(ids) if t == IMAGE_TOKEN_INDEX]
    if fast_tokens is not None and len(image_positions) > 1:
        raise ValueError("one visual input per prompt")
    for pos in image_positions + [len(ids)]:
        text = ids[start:pos]
        if text:
            pieces.append(embed[torch.tensor(text, dtype=torch.long)])
            types += [TOKEN_TYPE_TEXT] * len(text)
        if pos < len(ids):
            if fast_tokens is None:
                raise ValueError("prompt has an image placeholder but no visual input")
            pieces.append(fast_tokens)
            types += [TOKEN_TYPE_VISUAL] * fast_tokens.shape[0]
        start = pos + 1
    embeds = torch.cat(pieces, dim=0)
    types = torch.tensor(types, dtype=torch.long)
    max_len = ckpt.config.get("tokenizer_model_max_length")
    if max_len is not None:
        embeds, types = embeds[:max_len], types[:max_len]
    return embeds, types


# ----------------------------------------------------------------------------- decoder

def rope_cos_sin(positions, head_dim, theta, dtype):
    """HF default rotary: inv_freq = theta^(-2i/D) (float32 like HF, or float64 in a float64 run),
    angle = position * inv_freq, duplicated to D columns (rotate_half layout)."""
    exponent = torch.arange(0, head_dim, 2, dtype=torch.int64).to(dtype) / head_dim
    inv_freq = 1.0 / (theta ** exponent)
    angles = positions.to(dtype)[:, None] * inv_freq[None, :]
    emb = torch.cat([angles, angles], dim=-1)
    return emb.cos(), emb.sin()


def apply_rope(x, cos, sin):
    """x [L, heads, D]; rotate_half pairs column i with column i + D/2."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos[:, None, :] + rotated * sin[:, None, :]


def attention(q, k, v, query_positions, key_positions, scale):
    """Grouped-query attention. q [L, Hq, D], k/v [S, Hkv, D]; query row t sees keys whose position
    is <= its own (pass None positions for full, unmasked attention). Softmax in the compute dtype."""
    hq, hkv = q.shape[1], k.shape[1]
    group = hq // hkv
    k = k.repeat_interleave(group, dim=1)      # query head h uses kv head h // group
    v = v.repeat_interleave(group, dim=1)
    scores = torch.einsum("lhd,shd->hls", q, k) * scale
    if query_positions is not None:
        allowed = key_positions[None, :] <= query_positions[:, None]
        scores = scores.masked_fill(~allowed[None, :, :], float("-inf"))
    probs = softmax_last(scores)
    return torch.einsum("hls,shd->lhd", probs, v)


class Decoder:
    """Qwen2 with the slow-fast hybrid layers (Qwen2HybridFlashAttention2 semantics)."""

    def __init__(self, ckpt):
        c = ckpt.config
        self.ckpt = ckpt
        self.hidden = c["hidden_size"]
        self.heads = c["num_attention_heads"]
        self.kv_heads = c.get("num_key_value_heads") or self.heads
        self.head_dim = self.hidden // self.heads
        self.layers = c["num_hidden_layers"]
        self.eps = c.get("rms_norm_eps", 1e-6)
        self.theta = c.get("rope_theta", 10000.0)
        every = c.get("cross_attn_every_n_layers")
        lo = c.get("cross_attn_min_layer_depth") or 0
        hi = c.get("cross_attn_max_layer_depth")
        hi = self.layers if hi is None else hi
        self.hybrid = set(range(lo, hi, every)) if every else set()
        self.impl = c.get("cross_attn_implementation", "vanilla")
        self.gating = c.get("cross_attn_gating_type", "whole-dynamic")
        if not (self.impl.startswith("vanilla") or self.impl.startswith("text-only-vanilla")):
            raise ValueError(f"cross-attention implementation {self.impl} not implemented")
        if not self.gating.startswith("whole-dynamic"):
            raise ValueError(f"gating {self.gating} not implemented")
        self.tied = c.get("tie_word_embeddings", False)

    def w(self, name):
        return self.ckpt[name]

    def lm_head(self):
        if not self.tied and self.ckpt.has("lm_head.weight"):
            return self.w("lm_head.weight")
        return self.w("model.embed_tokens.weight")

    # --- the cross-attention branch of a hybrid layer
    def cross_attention(self, i, text_state, queries, slow, token_types, rows_enabled):
        """text_state [L, hidden] (self-attention output, before o_proj), queries [L, Hq, D] (rotated),
        slow [Ns, hidden] (already input_layernorm-ed). Returns text_state + gated context on the
        selected rows. rows_enabled [L] bool: rows whose contribution is kept (all True for one
        reference forward call; the decode-recompute check uses it to switch generated rows off)."""
        pre = f"model.layers.{i}.self_attn."
        if self.impl.startswith("text-only-vanilla"):
            selected = token_types <= TOKEN_TYPE_RESPONSE
            if "masksystem" in self.impl:
                visual = (token_types == TOKEN_TYPE_VISUAL).nonzero()
                start = int(visual[0]) if len(visual) else 0
                selected[:start] = False
        else:
            selected = torch.ones_like(token_types, dtype=torch.bool)
        selected = selected & rows_enabled
        if not bool(selected.any()):
            return text_state

        gate = linear(text_state[selected], self.w(pre + "cross_attn_gate_proj.0.weight"), self.w(pre + "cross_attn_gate_proj.0.bias"),
                      exact=True)
        if "tanh" in self.gating:
            gate = torch.tanh(gate)
        if self.gating.endswith("warmup"):
            warm = self.w(pre + "cross_attn_warm_up_gate")
            # The vanilla branch multiplies by the raw parameter; the text-only branch by its tanh.
            gate = gate * (torch.tanh(warm) if self.impl.startswith("text-only-vanilla") else warm)

        kv = linear(slow, self.w(pre + "cross_attn_kv_proj.weight"), self.w(pre + "cross_attn_kv_proj.bias"))
        # Output features are laid out (kv_head, key/value, head_dim): 'Lv (H KV D)'.
        kv = kv.reshape(slow.shape[0], self.kv_heads, 2, self.head_dim)
        keys, values = kv[:, :, 0, :], kv[:, :, 1, :]
        context = attention(queries[selected], keys, values, None, None, 1.0 / math.sqrt(self.head_dim))
        out = text_state.clone()
        out[selected] = text_state[selected] + context.reshape(context.shape[0], -1) * gate
        return out

    def forward(self, embeds, positions, token_types, slow, cache, rows_enabled=None, sample_has_visual=None):
        """One reference forward call over new rows `embeds` [L, hidden] at `positions` [L].
        cache: list of per-layer (keys [S, Hkv, D], values, key_positions) or None entries, updated
        in place. token_types [L] are the types the reference holds for THIS call (media_locations):
        the cross branch of a sample only runs when it contains a visual token (all_text_mask).
        sample_has_visual overrides that test (the attend-while-decoding option: a one-row call of a
        sample whose prompt has visual tokens). Returns logits [L, vocab] and the final hidden states."""
        c = self.ckpt
        cos, sin = rope_cos_sin(positions, self.head_dim, self.theta, embeds.dtype)
        if rows_enabled is None:
            rows_enabled = torch.ones(embeds.shape[0], dtype=torch.bool)
        has_visual = bool((token_types == TOKEN_TYPE_VISUAL).any()) if sample_has_visual is None else sample_has_visual
        x = embeds
        for i in range(self.layers):
            pre = f"model.layers.{i}."
            in_w = self.w(pre + "input_layernorm.weight")
            h = rms_norm(x, in_w, self.eps)
            q = linear(h, self.w(pre + "self_attn.q_proj.weight"), self.w(pre + "self_attn.q_proj.bias"))
            k = linear(h, self.w(pre + "self_attn.k_proj.weight"), self.w(pre + "self_attn.k_proj.bias"))
            v = linear(h, self.w(pre + "self_attn.v_proj.weight"), self.w(pre + "self_attn.v_proj.bias"))
            q = apply_rope(q.reshape(-1, self.heads, self.head_dim), cos, sin)
            k = apply_rope(k.reshape(-1, self.kv_heads, self.head_dim), cos, sin)
            v = v.reshape(-1, self.kv_heads, self.head_dim)
            if cache[i] is not None:   # keys/values of earlier calls (the KV cache)
                pk, pv, ppos = cache[i]
                k, v, kpos = torch.cat([pk, k]), torch.cat([pv, v]), torch.cat([ppos, positions])
            else:
                kpos = positions
            cache[i] = (k, v, kpos)
            attn = attention(q, k, v, positions, kpos, 1.0 / math.sqrt(self.head_dim))
            attn = attn.reshape(attn.shape[0], -1)
            if i in self.hybrid and slow is not None and has_visual:
                slow_normed = rms_norm(slow, in_w, self.eps)   # the hybrid layer norms the slow tokens with its input norm
                attn = self.cross_attention(i, attn, q, slow_normed, token_types, rows_enabled)
            x = x + linear(attn, self.w(pre + "self_attn.o_proj.weight"))
            h = rms_norm(x, self.w(pre + "post_attention_layernorm.weight"), self.eps)
            gate = linear(h, self.w(pre + "mlp.gate_proj.weight"))
            up = linear(h, self.w(pre + "mlp.up_proj.weight"))
            x = x + linear(silu(gate) * up, self.w(pre + "mlp.down_proj.weight"))
        x = rms_norm(x, self.w("model.norm.weight"), self.eps)
        return linear(x, self.lm_head()), x


# ----------------------------------------------------------------------------- whole model

class SlowFastReference:
    def __init__(self, directory, dtype=torch.float32, bf16_math=False, vision_int8=False):
        """bf16_math: see _BF16_MATH (module-wide; needs a checkpoint whose matrices are bfloat16 values).
        vision_int8: see _VISION_INT8 (module-wide)."""
        global _BF16_MATH, _VISION_INT8
        _VISION_INT8 = vision_int8
        self.ckpt = Checkpoint(directory, dtype)
        if bf16_math:
            for name, w in self.ckpt.weights.items():
                if w.dim() >= 2 and not torch.equal(w, round_bf16(w)):
                    raise ValueError(f"bf16 math needs BF16 weights; {name} is not bfloat16-valued")
        _BF16_MATH = bf16_math
        self.dtype = dtype
        self.tower = ConvNextTower(self.ckpt)
        self.decoder = Decoder(self.ckpt)

    @property
    def config(self):
        return self.ckpt.config

    def encode_visual(self, pixels):
        """pixels [T, 3, S, S] -> dict with vision_features, projected, fast_tokens, slow_tokens."""
        features = self.tower.forward(pixels.to(self.dtype))
        projected = project(self.ckpt, features)
        fast, slow = slow_and_fast_tokens(self.config, projected)
        return {"vision_features": features, "projected": projected, "fast_tokens": fast, "slow_tokens": slow}

    def prefill(self, input_ids, visual):
        """The prompt forward pass (what generate() runs first). Returns (logits [P, V], types, cache)."""
        fast = visual["fast_tokens"] if visual else None
        slow = visual["slow_tokens"] if visual else None
        embeds, types = build_sequence(self.ckpt, input_ids, fast)
        positions = torch.arange(embeds.shape[0])
        cache = [None] * self.decoder.layers
        logits, _ = self.decoder.forward(embeds, positions, types, slow, cache)
        return logits, types, cache

    def generate_greedy(self, input_ids, visual, steps, attend_while_decoding=False):
        """Greedy decoding with a KV cache, `steps` tokens, EOS ignored.

        Reference semantics (default): every decoding step is a one-token forward call whose
        token types are all 1 (prepare_inputs_labels_for_multimodal returns early for a 1-token
        input), so the sample has no visual token, all_text_mask is False and the cross-attention
        contribution is multiplied by zero. attend_while_decoding=True instead lets each new token
        attend to the slow tokens as a response token (type 2) of a sample that has visual input.

        Returns (generated ids, top-1 minus top-2 logit margin at each step, prompt logits,
        step logits [steps, V]: the logits each generated token was picked from)."""
        logits, types, cache = self.prefill(input_ids, visual)
        slow = visual["slow_tokens"] if visual else None
        position = logits.shape[0]
        ids, margins, picked_from = [], [], []
        step_logits = logits[-1]
        for _ in range(steps):
            picked_from.append(step_logits)
            top2 = torch.topk(step_logits, 2)
            nxt = int(top2.indices[0])
            ids.append(nxt)
            margins.append(float(top2.values[0] - top2.values[1]))
            embed = self.ckpt["model.embed_tokens.weight"][torch.tensor([nxt])]
            pos = torch.tensor([position])
            if attend_while_decoding and slow is not None:
                # The new row is a response token (type 2) of a sample that has visual tokens.
                step_logits_all, _ = self.decoder.forward(embed, pos, torch.tensor([TOKEN_TYPE_RESPONSE]), slow, cache,
                                                          sample_has_visual=True)
            else:
                step_logits_all, _ = self.decoder.forward(embed, pos, torch.tensor([TOKEN_TYPE_TEXT]), slow, cache)
            step_logits = step_logits_all[-1]
            position += 1
        return ids, margins, logits, torch.stack(picked_from)
