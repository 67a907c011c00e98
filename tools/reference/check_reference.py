#!/usr/bin/python3
"""Cross-checks slowfast_reference.py against second, independent formulations of each part:

- the ConvNeXt tower against torch.nn modules in NCHW (Conv2d, grouped Conv2d, LayerNorm, GELU);
- the projector against nn.Sequential(nn.Linear, nn.GELU, ...);
- pooling against F.avg_pool2d / avg_pool3d / adaptive_avg_pool3d, and the whole slow/fast split
  against a step-by-step transcription of the reference flow (zero padding of the frame axis included)
  over many frame counts and strides;
- rotary embeddings against complex-number rotation;
- grouped attention against a per-head loop with F.softmax;
- the hybrid cross-attention against a batch-shaped transcription of the reference's
  all2media / onlytext2media code paths (permutes, rearrange, pad_sequence, masks) for every
  implementation x gating combination;
- KV-cache decoding against recomputing the whole sequence at every step.

Run: /usr/bin/python3 tools/reference/check_reference.py   (exit status 1 on any failure)
"""

import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import slowfast_reference as R  # noqa: E402
import make_golden as G  # noqa: E402

failures = []


def check(name, a, b, tol):
    err = float((a.double() - b.double()).abs().max()) if a.numel() else 0.0
    ok = err <= tol and a.shape == b.shape
    print(f"{'ok  ' if ok else 'FAIL'} {name}: max abs diff {err:.2e} (tol {tol:.0e})")
    if not ok:
        failures.append(name)


# ----------------------------------------------------------------------------- tower

def tower_with_nn(ckpt, pixels):
    vc = ckpt.config["vision_config"]
    p, eps, dims, depths = vc["patch_size"], vc["norm_eps"], vc["dims"], vc["depths"]
    pre = "model.vision_tower.vision_tower."
    W = lambda n: ckpt[pre + n]  # noqa: E731

    def ln2d(x, w, b):   # LayerNorm over channels of an NCHW map
        return F.layer_norm(x.permute(0, 2, 3, 1), (x.shape[1],), w, b, eps).permute(0, 3, 1, 2)

    dt = pixels.dtype
    stem = nn.Conv2d(3, dims[0], p, stride=p).to(dt)
    stem.weight.data, stem.bias.data = W("stem.0.weight"), W("stem.0.bias")
    x = ln2d(stem(pixels), W("stem.1.weight"), W("stem.1.bias"))
    for s in range(len(dims)):
        if s > 0:
            x = ln2d(x, W(f"stages.{s}.downsample.0.weight"), W(f"stages.{s}.downsample.0.bias"))
            conv = nn.Conv2d(dims[s - 1], dims[s], 2, stride=2).to(dt)
            conv.weight.data, conv.bias.data = W(f"stages.{s}.downsample.1.weight"), W(f"stages.{s}.downsample.1.bias")
            x = conv(x)
        for b in range(depths[s]):
            q = f"stages.{s}.blocks.{b}."
            c = dims[s]
            dw = nn.Conv2d(c, c, 7, padding=3, groups=c).to(dt)
            dw.weight.data, dw.bias.data = W(q + "conv_dw.weight"), W(q + "conv_dw.bias")
            norm = nn.LayerNorm(c, eps=eps).to(dt)
            norm.weight.data, norm.bias.data = W(q + "norm.weight"), W(q + "norm.bias")
            fc1, fc2 = nn.Linear(c, 4 * c).to(dt), nn.Linear(4 * c, c).to(dt)
            fc1.weight.data, fc1.bias.data = W(q + "mlp.fc1.weight"), W(q + "mlp.fc1.bias")
            fc2.weight.data, fc2.bias.data = W(q + "mlp.fc2.weight"), W(q + "mlp.fc2.bias")
            y = dw(x).permute(0, 2, 3, 1)
            y = fc2(nn.GELU()(fc1(norm(y)))).permute(0, 3, 1, 2)
            x = y * W(q + "weight").reshape(1, -1, 1, 1) + x
    b, c, h, w = x.shape
    return x.reshape(b, c, -1).transpose(1, 2)


def projector_with_nn(ckpt, x):
    kind = ckpt.config["mm_projector_type"]
    if kind == "identity":
        return x
    if kind == "linear":
        lin = nn.Linear(x.shape[-1], ckpt.config["hidden_size"]).to(x.dtype)
        lin.weight.data, lin.bias.data = ckpt["model.mm_projector.weight"], ckpt["model.mm_projector.bias"]
        return lin(x)
    depth = int(kind[3:-6])
    mods = []
    for i in range(depth):
        if i > 0:
            mods.append(nn.GELU())
        w = ckpt[f"model.mm_projector.{2 * i}.weight"]
        lin = nn.Linear(w.shape[1], w.shape[0]).to(x.dtype)
        lin.weight.data, lin.bias.data = w, ckpt[f"model.mm_projector.{2 * i}.bias"]
        mods.append(lin)
    return nn.Sequential(*mods)(x)


# ----------------------------------------------------------------------------- slow/fast split, literal

def split_literal(cfg, feats):
    """Transcription of the reference flow for one sample: video pooling in prepare_inputs, then
    split_slow_fast_tokens with its zero padding, sampling, avg_pool3d / adaptive_avg_pool3d and
    avg_pool2d in NCHW-style layouts."""
    t, n, c = feats.shape
    vp = cfg["mm_video_pooling_stride"]
    if t > 1 and vp > 1:
        h = int(n ** 0.5)
        feats = F.avg_pool2d(feats.reshape(t, h, h, c).permute(0, 3, 1, 2), kernel_size=vp, stride=vp).flatten(2, 3).transpose(1, 2)
    sample = feats
    t, n, c = sample.shape
    ss, ts, tss, mff = cfg["fast_token_spatial_stride"], cfg["fast_token_temporal_stride"], cfg["fast_token_temporal_sampling_stride"], cfg["min_fast_frames"]
    if t > 1:
        rate = tss * ts
        if t % rate != 0:
            sample = F.pad(sample, (0, 0, 0, 0, 0, (rate - t % rate) % rate))
        idx = R.sample_fast_frames(t, tss, mff) if tss > 1 else list(range(t))
        sample = torch.stack([sample[i] for i in idx], dim=0)
        b, n, c = sample.shape
        h = int(n ** 0.5)
        sample = sample.reshape(b, h, h, c).permute(0, 3, 1, 2)
        if ts > 1:
            if sample.shape[0] // ts >= mff:
                sample = F.avg_pool3d(sample.transpose(0, 1), kernel_size=(ts, 1, 1)).transpose(0, 1)
            else:
                out = min(sample.shape[0], mff)
                sample = F.adaptive_avg_pool3d(sample.transpose(0, 1), output_size=(out, h, h)).transpose(0, 1)
        if ss > 1:
            sample = F.avg_pool2d(sample, kernel_size=ss, stride=ss)
        sample = sample.flatten(2, 3).transpose(1, 2)
    elif ss > 1:
        h = int(n ** 0.5)
        sample = F.avg_pool2d(sample.reshape(t, h, h, c).permute(0, 3, 1, 2), kernel_size=ss, stride=ss).flatten(2, 3).transpose(1, 2)
    return sample.flatten(0, 1), feats.flatten(0, 1)


def check_split():
    g = torch.Generator().manual_seed(3)
    worst = 0.0
    count = 0
    for side in (4, 5, 6):
        for t in (1, 2, 3, 4, 5, 6, 7, 9, 10, 13, 16, 17):
            for vp in (1, 2):
                for ss in (1, 2):
                    for ts in (1, 2, 4):
                        for tss in (1, 2, 3):
                            for mff in (1, 2, 3, 4):
                                cfg = dict(mm_video_pooling_stride=vp, fast_token_spatial_stride=ss, fast_token_temporal_stride=ts,
                                           fast_token_temporal_sampling_stride=tss, min_fast_frames=mff)
                                feats = torch.randn(t, side * side, 3, generator=g, dtype=torch.float64)
                                f1, s1 = R.slow_and_fast_tokens(cfg, feats)
                                f2, s2 = split_literal(cfg, feats)
                                if f1.shape != f2.shape or s1.shape != s2.shape:
                                    failures.append(f"split shapes {cfg} T={t} side={side}: {f1.shape} vs {f2.shape}")
                                    continue
                                worst = max(worst, float((f1 - f2).abs().max()), float((s1 - s2).abs().max()))
                                count += 1
    ok = worst < 1e-12
    print(f"{'ok  ' if ok else 'FAIL'} slow/fast split vs literal reference flow: {count} configurations, max abs diff {worst:.1e}")
    if not ok:
        failures.append("split")


# ----------------------------------------------------------------------------- rotary / attention

def check_rope():
    d, theta = 16, 1e6
    pos = torch.arange(0, 70)
    x = torch.randn(70, 3, d, dtype=torch.float64)
    cos, sin = R.rope_cos_sin(pos, d, theta, torch.float64)
    ours = R.apply_rope(x, cos, sin)
    freqs = theta ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    rot = torch.polar(torch.ones(70, d // 2, dtype=torch.float64), pos[:, None].double() * freqs[None, :])
    z = torch.complex(x[..., : d // 2], x[..., d // 2:]) * rot[:, None, :]
    check("rotary vs complex rotation", ours, torch.cat([z.real, z.imag], dim=-1), 1e-12)


def check_attention():
    g = torch.Generator().manual_seed(4)
    q = torch.randn(7, 4, 16, generator=g, dtype=torch.float64)
    k = torch.randn(11, 2, 16, generator=g, dtype=torch.float64)
    v = torch.randn(11, 2, 16, generator=g, dtype=torch.float64)
    qpos = torch.arange(4, 11)
    kpos = torch.arange(0, 11)
    ours = R.attention(q, k, v, qpos, kpos, 0.25)
    loop = torch.zeros_like(ours)
    for h in range(4):
        kh = h // 2
        for t in range(7):
            n = int(qpos[t]) + 1
            w = F.softmax((k[:n, kh] @ q[t, h]) * 0.25, dim=0)
            loop[t, h] = w @ v[:n, kh]
    check("causal GQA attention vs per-head loop", ours, loop, 1e-12)
    ours_full = R.attention(q, k, v, None, None, 0.25)
    ref_full = torch.stack([F.softmax(q[:, h] @ k[:, h // 2].t() * 0.25, dim=-1) @ v[:, h // 2] for h in range(4)], dim=1)
    check("full GQA attention vs per-head softmax", ours_full, ref_full, 1e-12)


# ----------------------------------------------------------------------------- hybrid layer, literal

def repeat_kv(x, n):   # [B, Hkv, S, D] -> [B, Hkv*n, S, D], kv head h serves query heads h*n..h*n+n-1
    b, h, s, d = x.shape
    return x[:, :, None].expand(b, h, n, s, d).reshape(b, h * n, s, d)


def core_cross_attention(q, k, v, mask):
    """ScaleDotProductCrossAttention with a boolean mask [B, Lq, Lk] (True = attend), scale 1/sqrt(D)."""
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    scores = scores.masked_fill(~mask[:, None], float("-inf"))
    o = F.softmax(scores, dim=-1) @ v       # B Head L D
    return o.permute(0, 2, 1, 3).reshape(o.shape[0], o.shape[2], -1)


def literal_hybrid_forward(dec, embeds, token_types, slow, impl, gating):
    """Prefill of a batch of one, transcribing the reference's layer code with its tensor shapes."""
    ck = dec.ckpt
    L = embeds.shape[0]
    H, KV, D = dec.heads, dec.kv_heads, dec.head_dim
    x = embeds[None]                         # [1, L, hidden]
    tt = token_types[None]
    vis = slow[None]                         # [1, Ns, hidden]
    cross_mask = torch.ones(vis.shape[:2], dtype=torch.bool)
    pos = torch.arange(L)
    cos, sin = R.rope_cos_sin(pos, D, dec.theta, embeds.dtype)
    for i in range(dec.layers):
        p = f"model.layers.{i}."
        w = lambda n: ck[p + n]  # noqa: E731
        resid = x
        hs = R.rms_norm(x, w("input_layernorm.weight"), dec.eps)
        q = (hs @ w("self_attn.q_proj.weight").t() + w("self_attn.q_proj.bias")).view(1, L, H, D).transpose(1, 2)
        k = (hs @ w("self_attn.k_proj.weight").t() + w("self_attn.k_proj.bias")).view(1, L, KV, D).transpose(1, 2)
        v = (hs @ w("self_attn.v_proj.weight").t() + w("self_attn.v_proj.bias")).view(1, L, KV, D).transpose(1, 2)
        rot = lambda t: torch.cat([-t[..., D // 2:], t[..., :D // 2]], dim=-1)  # noqa: E731
        q = q * cos[None, None] + rot(q) * sin[None, None]
        k = k * cos[None, None] + rot(k) * sin[None, None]
        kr, vr = repeat_kv(k, H // KV), repeat_kv(v, H // KV)
        scores = q @ kr.transpose(2, 3) / math.sqrt(D)
        scores = scores + torch.triu(torch.full((L, L), float("-inf"), dtype=scores.dtype), diagonal=1)
        attn = (F.softmax(scores, dim=-1) @ vr).transpose(1, 2).reshape(1, L, H * D)
        query_states = q.transpose(1, 2)     # [1, L, H, D], as handed to the cross branch
        if i in dec.hybrid:
            visual = R.rms_norm(vis, w("input_layernorm.weight"), dec.eps)
            all_text_mask = (tt == 3).sum(dim=-1).bool()
            gate_proj = lambda s: s @ w("self_attn.cross_attn_gate_proj.0.weight").t() + w("self_attn.cross_attn_gate_proj.0.bias")  # noqa: E731
            kvp = visual @ w("self_attn.cross_attn_kv_proj.weight").t() + w("self_attn.cross_attn_kv_proj.bias")
            # rearrange 'BL Lv (H KV D) -> KV BL H Lv D'
            kvr = kvp.view(1, kvp.shape[1], KV, 2, D).permute(3, 0, 2, 1, 4)
            vk, vv = repeat_kv(kvr[0], H // KV), repeat_kv(kvr[1], H // KV)
            if impl.startswith("vanilla"):
                text_state = attn.permute(1, 0, 2)                 # L B D
                text_query = query_states.permute(1, 0, 2, 3)      # L B H D
                gate = gate_proj(text_state)
                if "tanh" in gating:
                    gate = torch.tanh(gate)
                if gating.endswith("warmup"):
                    gate = gate * w("self_attn.cross_attn_warm_up_gate")
                tq = text_query.permute(1, 2, 0, 3)                # B H L D
                m = cross_mask[:, None, :].repeat(1, text_state.shape[0], 1)
                ctx = core_cross_attention(tq, vk, vv, m).transpose(0, 1)
                ctx = all_text_mask[None, :, None] * ctx
                attn = (text_state + ctx * gate).permute(1, 0, 2)
            else:
                text_mask = ((tt - 2) <= 0).bool()
                picked = []
                if "masksystem" in impl:
                    masks = []
                    for b in range(1):
                        first = (tt[b] == 3).nonzero()
                        start = 0 if len(first) == 0 else first[0]
                        tm = text_mask[b].clone()
                        tm[:start] = False
                        picked.append(query_states[b][tm])
                        masks.append(tm)
                    text_mask = torch.stack(masks)
                else:
                    picked = [query_states[b][text_mask[b]] for b in range(1)]
                tq = torch.nn.utils.rnn.pad_sequence(picked, batch_first=True)
                pad_mask = torch.ones(tq.shape[:-2], dtype=torch.bool)
                for b, t_ in enumerate(picked):
                    pad_mask[b, len(t_):] = False
                gate = gate_proj(attn[text_mask])
                if "tanh" in gating:
                    gate = torch.tanh(gate)
                if gating.endswith("warmup"):
                    gate = gate * torch.tanh(w("self_attn.cross_attn_warm_up_gate"))
                tq = tq.transpose(1, 2)
                m = cross_mask[:, None, :].repeat(1, tq.shape[2], 1)
                ctx = core_cross_attention(tq, vk, vv, m)
                ctx = all_text_mask[:, None, None] * ctx
                ext = torch.zeros_like(attn)
                ext[text_mask] = ext[text_mask] + ctx[pad_mask] * gate
                attn = attn + ext
        x = resid + attn @ w("self_attn.o_proj.weight").t()
        hs = R.rms_norm(x, w("post_attention_layernorm.weight"), dec.eps)
        x = x + (F.silu(hs @ w("mlp.gate_proj.weight").t()) * (hs @ w("mlp.up_proj.weight").t())) @ w("mlp.down_proj.weight").t()
    x = R.rms_norm(x, ck["model.norm.weight"], dec.eps)
    return (x @ dec.lm_head().t())[0]


# ----------------------------------------------------------------------------- main

def main():
    torch.set_num_threads(2)
    G.ensure_cli()
    case = next(c for c in G.CASES if c["name"] == "video5_released")
    model_dir = G.checkpoint_dir(case)
    ref = R.SlowFastReference(model_dir, torch.float64)
    ck = ref.ckpt
    pixels = G.make_pixels(case["seed"], 3, ck.config["vision_config"]["image_size"]).double()

    check("ConvNeXt tower vs torch.nn modules", ref.tower.forward(pixels), tower_with_nn(ck, pixels), 1e-10)
    feats = ref.tower.forward(pixels)
    check("projector vs nn.Sequential", R.project(ck, feats), projector_with_nn(ck, feats), 1e-12)
    x = torch.randn(5, 64, dtype=torch.float64)
    w = torch.rand(64, dtype=torch.float64) + 0.5
    check("RMSNorm vs x / sqrt(mean(x^2)+eps)", R.rms_norm(x, w, 1e-6), w * x / torch.sqrt((x ** 2).mean(-1, keepdim=True) + 1e-6), 1e-12)
    check("GELU vs nn.GELU", R.gelu_exact(x), nn.GELU()(x), 1e-12)
    check("LayerNorm vs F.layer_norm", R.layer_norm(x, w, w - 1, 1e-5), F.layer_norm(x, (64,), w, w - 1, 1e-5), 1e-12)
    check_split()
    check_rope()
    check_attention()

    # Hybrid layers, every implementation x gating, against the literal transcription.
    ids = G.tokenize_prompt(model_dir, G.chat_prompt("What happens in this video?", True))
    visual = ref.encode_visual(pixels)
    embeds, types = R.build_sequence(ck, ids, visual["fast_tokens"])
    for impl in ("vanilla", "vanilla-flashattn", "text-only-vanilla", "text-only-vanilla-masksystem"):
        for gating in ("whole-dynamic", "whole-dynamic-tanh", "whole-dynamic-warmup", "whole-dynamic-tanh-warmup"):
            ref.decoder.impl, ref.decoder.gating = impl, gating
            ours, _ = ref.decoder.forward(embeds, torch.arange(embeds.shape[0]), types, visual["slow_tokens"], [None] * ref.decoder.layers)
            lit = literal_hybrid_forward(ref.decoder, embeds, types, visual["slow_tokens"], impl, gating)
            check(f"prefill logits vs literal hybrid code ({impl}, {gating})", ours, lit, 1e-10)
    # The branch must matter, or the checks above prove little.
    no_branch, _ = ref.decoder.forward(embeds, torch.arange(embeds.shape[0]), torch.ones_like(types), visual["slow_tokens"], [None] * ref.decoder.layers)
    effect = float((ours - no_branch).abs().max())
    print(f"{'ok  ' if effect > 1e-2 else 'FAIL'} the cross-attention branch changes the logits by up to {effect:.3f}")
    if effect <= 1e-2:
        failures.append("branch effect")

    # Decoding: KV cache vs recomputing everything, for both decode semantics and two implementations.
    for impl in ("text-only-vanilla-masksystem", "vanilla"):
        ref.decoder.impl, ref.decoder.gating = impl, "whole-dynamic-tanh-warmup"
        for attend in (False, True):
            gen, _, prompt_logits, step_logits = ref.generate_greedy(ids, visual, 6, attend_while_decoding=attend)
            # Recompute: prompt + generated[:-1] in one call; generated rows are type 2 rows that
            # attend (attend=True) or rows whose contribution is switched off (reference semantics).
            n_prompt = embeds.shape[0]
            all_embeds = torch.cat([embeds, ck["model.embed_tokens.weight"][torch.tensor(gen[:-1])]])
            all_types = torch.cat([types, torch.full((len(gen) - 1,), 2, dtype=torch.long)])
            enabled = torch.ones(all_embeds.shape[0], dtype=torch.bool)
            if not attend:
                enabled[n_prompt:] = False
            full, _ = ref.decoder.forward(all_embeds, torch.arange(all_embeds.shape[0]), all_types, visual["slow_tokens"],
                                          [None] * ref.decoder.layers, rows_enabled=enabled)
            check(f"decode KV cache vs recompute ({impl}, attend={attend})", step_logits, full[n_prompt - 1:], 1e-10)
            check(f"prefill logits of generate vs plain prefill ({impl}, attend={attend})", prompt_logits,
                  ref.prefill(ids, visual)[0], 0.0)

    print(f"\n{len(failures)} failure(s)" + (": " + ", ".join(failures) if failures else ""))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
