#!/usr/bin/python3
"""Writes the golden fixtures the C# model tests compare against.

For every case: create a tiny random checkpoint with the C# CLI (`slowfast create-model`, deterministic
for a given preset/seed/dtype/overrides), build the qwen_1_5 chat prompt, tokenize it with the C# CLI
(`slowfast tokenize`), make deterministic pixel values, run the independent PyTorch reference
(slowfast_reference.py) and write tests/SlowFast.Model.Tests/Fixtures/golden/<case>.safetensors.

Usage (from anywhere; needs /usr/bin/python3 with torch and numpy, and dotnet):
    /usr/bin/python3 tools/reference/make_golden.py            # all cases
    /usr/bin/python3 tools/reference/make_golden.py image_released video5_released
    /usr/bin/python3 tools/reference/make_golden.py --list
See tools/reference/README.md for the tensors and tolerances.
"""

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import slowfast_reference as R  # noqa: E402

REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
OUT_DIR = os.path.join(REPO, "tests", "SlowFast.Model.Tests", "Fixtures", "golden")
CLI_DLL = os.path.join(REPO, "src", "SlowFast.Cli", "bin", "Release", "net10.0", "slowfast.dll")
WORK_DIR = os.path.join(tempfile.gettempdir(), "slowfast-golden-checkpoints")

SYSTEM = "You are a helpful assistant."
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
GENERATE_STEPS = 8
# Greedy choices whose top-1/top-2 gap is below this are too close to call across implementations;
# such a case is redone with another seed (seed + 1000, + 2000, ...), recorded in the metadata.
MIN_MARGIN = 1e-3
SEED_TRIES = 4
LOGIT_COLUMNS = 128

# The preset's ConvNeXt at 64 px with a patch-2 stem: the same 4×4 tokens a frame as the preset's
# 128 px tower, at a quarter of the pixel bytes, so video cases stay small on disk.
SMALL_TOWER = ('vision_config={"architecture":"convnext","depths":[1,1,2,1],"dims":[16,24,32,48],'
               '"image_size":64,"patch_size":2,"kernel_size":7,"norm_eps":1e-05,"num_classes":10}')
# 80 px, patch 2: 5×5 tokens a frame, so video pooling (stride 2) drops the last row and column.
ODD_TOWER = ('vision_config={"architecture":"convnext","depths":[1,1,2,1],"dims":[16,24,32,48],'
             '"image_size":80,"patch_size":2,"kernel_size":7,"norm_eps":1e-05,"num_classes":10}')
# Tower width 64 = hidden size, for the identity projector.
IDENTITY_TOWER = ('vision_config={"architecture":"convnext","depths":[1,1,2,1],"dims":[16,24,32,64],'
                  '"image_size":64,"patch_size":2,"kernel_size":7,"norm_eps":1e-05,"num_classes":10}')


def case(name, seed, input, frames, question, overrides=(), dtype="f32", last_logits=False, notes="", bf16_math=False,
         design="slowfast", quantize=None, vision_int8=False):
    return {"name": name, "preset": "tiny", "seed": seed, "dtype": dtype, "overrides": list(overrides),
            "input": input, "frames": frames, "question": question, "last_logits": last_logits, "notes": notes,
            "bf16_math": bf16_math, "design": design, "quantize": quantize, "vision_int8": vision_int8}


# Quantized cases: hidden 128 and MLP 256, so that rows are whole steps of the generated kernels
# (64 elements for q8, 128 for q4); one fast frame, so that the prompt (and every product) stays under
# the 32 rows from which products with quantized weights take the bfloat16 GEMM: the block arithmetic
# alone, the same on every CPU.
QUANT_SHAPES = ["hidden_size=128", "intermediate_size=256", "min_fast_frames=1"]


CASES = [
    # --- the released settings (text-only-vanilla-flashattn, whole-dynamic-tanh-warmup, s1t4, min_fast_frames 2)
    case("image_released", 11, "image", 1, "Describe this image.", last_logits=True,
         notes="image path: no video pooling, fast = slow = 16 tokens"),
    case("video5_released", 12, "video", 5, "What happens in this video?",
         notes="5 frames: 5//4 < min_fast_frames 2, so adaptive temporal pooling to 2 frames (windows [0,3) [2,5))"),
    # --- temporal pooling paths (64 px tower: 4x4 tokens a frame)
    case("video9_avgpool", 13, "video", 9, "What is moving?", [SMALL_TOWER],
         notes="9//4 = 2 >= 2: avg_pool3d by 4, frame 8 dropped"),
    case("video7_adaptive", 14, "video", 7, "Summarize the clip.", [SMALL_TOWER],
         notes="adaptive pooling 7 -> 2 frames, windows [0,4) [3,7)"),
    case("video6_minfast1", 15, "video", 6, "What color is it?", [SMALL_TOWER, "min_fast_frames=1"],
         notes="min_fast_frames 1: 6//4 = 1 frame from frames 0-3, frames 4-5 dropped"),
    case("video7_sampling2", 16, "video", 7, "Count the objects.", [SMALL_TOWER, "fast_token_temporal_sampling_stride=2"],
         notes="temporal sampling stride 2: frames [0,2,4] (zero padding to 8 never selected), then adaptive 3 -> 2"),
    case("video10_sampling2_minfast3", 17, "video", 10, "Where is the camera?",
         [SMALL_TOWER, "fast_token_temporal_sampling_stride=2", "min_fast_frames=3"],
         notes="sampling [0,2,4,6,8], then adaptive 5 -> 3 frames (windows [0,2) [1,4) [3,5))"),
    case("video3_sampling2_minfast4", 18, "video", 3, "Is it day or night?",
         [SMALL_TOWER, "fast_token_temporal_sampling_stride=2", "min_fast_frames=4"],
         notes="fewer frames than min_fast_frames: every frame sampled, adaptive 3 -> 3 (identity)"),
    case("video5_tstride1", 19, "video", 5, "Describe the motion.",
         [SMALL_TOWER, "fast_token_temporal_sampling_stride=2", "fast_token_temporal_stride=1"],
         notes="no temporal pooling; sampling 5 -> frames [0,2]"),
    case("video4_spatial2", 20, "video", 4, "What is in the corner?", [SMALL_TOWER, "fast_token_spatial_stride=2"],
         notes="fast tokens spatially pooled by 2 after video pooling: 1 token a fast frame"),
    case("image_spatial2", 21, "image", 1, "What is in the center?", ["fast_token_spatial_stride=2"],
         notes="image: fast tokens 2x2 (spatial stride 2), slow tokens 4x4"),
    case("video3_oddside_mlp3", 22, "video", 3, "What shape is it?",
         [ODD_TOWER, "fast_token_spatial_stride=2", "mm_projector_type=mlp3x_gelu"],
         notes="5x5 tokens a frame: video pooling floors to 2x2; mlp3x_gelu projector"),
    case("video3_nopool", 23, "video", 3, "Is there text?", [SMALL_TOWER, "mm_video_pooling_stride=1"],
         notes="mm_video_pooling_stride 1: slow tokens 16 a frame"),
    # --- gating types x cross-attention implementations
    case("video3_vanilla_dynamic", 24, "video", 3, "Who is there?",
         [SMALL_TOWER, "cross_attn_implementation=vanilla", "cross_attn_gating_type=whole-dynamic"]),
    case("video3_vanilla_tanh", 25, "video", 3, "What is the weather?",
         [SMALL_TOWER, "cross_attn_implementation=vanilla", "cross_attn_gating_type=whole-dynamic-tanh"]),
    case("video3_vanilla_warmup", 26, "video", 3, "Which animal is it?",
         [SMALL_TOWER, "cross_attn_implementation=vanilla-flashattn", "cross_attn_gating_type=whole-dynamic-warmup"],
         notes="vanilla multiplies the gate by the raw warm-up parameter"),
    case("video3_vanilla_tanh_warmup", 27, "video", 3, "What sound would it make?",
         [SMALL_TOWER, "cross_attn_implementation=vanilla", "cross_attn_gating_type=whole-dynamic-tanh-warmup",
          "cross_attn_min_layer_depth=1", "cross_attn_every_n_layers=2"],
         notes="hybrid layers 1 and 3"),
    case("video3_textonly_dynamic", 28, "video", 3, "How many people?",
         [SMALL_TOWER, "cross_attn_implementation=text-only-vanilla", "cross_attn_gating_type=whole-dynamic"]),
    case("video3_textonly_warmup", 29, "video", 3, "What is the person doing?",
         [SMALL_TOWER, "cross_attn_implementation=text-only-vanilla", "cross_attn_gating_type=whole-dynamic-warmup"],
         notes="text-only multiplies the gate by tanh(warm-up parameter)"),
    case("video3_masksystem", 30, "video", 3, "Why is it red?",
         [SMALL_TOWER, "cross_attn_implementation=text-only-vanilla-masksystem", "cross_attn_gating_type=whole-dynamic-tanh-warmup"],
         notes="text rows before the first visual token do not attend to the slow tokens"),
    case("image_vanilla_every1", 31, "image", 1, "What is this?",
         ["cross_attn_implementation=vanilla", "cross_attn_gating_type=whole-dynamic-tanh", "cross_attn_every_n_layers=1"],
         notes="every layer hybrid; the vanilla branch also runs for the image rows"),
    # --- projector / head variants
    case("image_linear_projector", 32, "image", 1, "Describe the scene.", [SMALL_TOWER, "mm_projector_type=linear"]),
    case("image_identity_projector", 33, "image", 1, "Describe the scene.", [IDENTITY_TOWER, "mm_hidden_size=64", "mm_projector_type=identity"]),
    case("video3_tied", 34, "video", 3, "What happens next?", [SMALL_TOWER, "tie_word_embeddings=true"],
         notes="no lm_head.weight: logits from the embedding matrix"),
    # --- no visual input
    case("text_only", 35, "none", 0, "Tell me a joke about cats.",
         notes="no visual input: the hybrid layers' cross branch is skipped"),
    # --- BF16 checkpoint (computed in float32 from the BF16 weights, upcast exactly)
    case("video4_bf16", 36, "video", 4, "What is happening here?", [SMALL_TOWER], dtype="bf16",
         notes="bf16 weights upcast to float32"),
    # --- bf16 math (SlowFastModel.Precision = BFloat16): every product's input rounded to bfloat16
    case("video4_bf16math", 37, "video", 4, "What is happening here?", [SMALL_TOWER], dtype="bf16", bf16_math=True,
         notes="bf16 weights, activations rounded to bfloat16 before each product (not the gate)"),
    # --- the self-attention-only baseline on the same weights: every frame's pooled tokens in the sequence
    case("video5_baseline", 38, "video", 5, "What happens in this video?", [SMALL_TOWER], design="baseline",
         notes="baseline design: the 20 slow tokens (5 frames x 4) in the sequence, no cross-attention"),
    case("video9_baseline_masksystem", 39, "video", 9, "What is moving?",
         [SMALL_TOWER, "cross_attn_implementation=text-only-vanilla-masksystem", "cross_attn_every_n_layers=1"], design="baseline",
         notes="baseline design with every layer hybrid: the hybrid weights are never used"),
    case("image_baseline", 40, "image", 1, "Describe this image.", ["fast_token_spatial_stride=2"], design="baseline",
         notes="baseline design for an image: its 16 tokens in the sequence (not the 4 spatially pooled fast tokens)"),
    # --- quantized decoder (`slowfast quantize`): block integers and scales, products in the block arithmetic
    case("video4_q8", 41, "video", 4, "What is happening?", [SMALL_TOWER, *QUANT_SHAPES], quantize="q8",
         notes="q8_0 decoder projections, cross_attn_kv_proj and lm_head; the rest as stored"),
    case("video4_q4", 43, "video", 4, "What is happening?", [SMALL_TOWER, *QUANT_SHAPES], quantize="q4",
         notes="q4_0 decoder projections, cross_attn_kv_proj and lm_head; the rest as stored"),
    # --- the vision tower's MLPs in int8 (`--vision-int8`): one scale per row and per output channel
    case("video4_vision_int8", 45, "video", 4, "What is happening?", [SMALL_TOWER], vision_int8=True,
         notes="fc1/fc2 of every tower block in int8, one scale per input row and per output channel"),
]


# ----------------------------------------------------------------------------- helpers

def ensure_cli(rebuild=False):
    if rebuild or not os.path.exists(CLI_DLL):
        print("building the C# CLI ...", file=sys.stderr)
        subprocess.run(["dotnet", "build", os.path.join(REPO, "src", "SlowFast.Cli"), "-c", "Release", "-nologo", "-v", "q"],
                       check=True, cwd=REPO)


def cli(*args, stdin=None):
    r = subprocess.run(["dotnet", CLI_DLL, *args], input=stdin, capture_output=True, text=True, cwd=REPO)
    if r.returncode != 0:
        raise RuntimeError(f"slowfast {' '.join(args)} failed:\n{r.stderr}")
    return r.stdout


def checkpoint_dir(c):
    key = json.dumps([c["preset"], c["seed"], c["dtype"], c["overrides"]])
    path = os.path.join(WORK_DIR, c["name"] + "-" + hashlib.sha1(key.encode()).hexdigest()[:10])
    if not os.path.exists(os.path.join(path, "config.json")):
        if os.path.exists(path):
            shutil.rmtree(path)
        args = ["create-model", "--preset", c["preset"], "--seed", str(c["seed"]), "--dtype", c["dtype"], "--out", path]
        for o in c["overrides"]:
            args += ["--set", o]
        cli(*args)
    if c.get("quantize"):
        quantized = path + "-" + c["quantize"]
        if not os.path.exists(os.path.join(quantized, "config.json")):
            if os.path.exists(quantized):
                shutil.rmtree(quantized)
            cli("quantize", "--model", path, "--to", c["quantize"], "--out", quantized)
        return quantized
    return path


def chat_prompt(question, has_visual):
    """The reference's qwen_1_5 conversation (CHATML): system turn, user turn ("<image>\\n" + question
    for visual input), then the assistant role header."""
    user = ("<image>\n" + question) if has_visual else question
    return (f"<|im_start|>system\n{SYSTEM}<|im_end|>\n"
            f"<|im_start|>user\n{user}<|im_end|>\n"
            f"<|im_start|>assistant\n")


def tokenize_prompt(model_dir, prompt):
    """tokenizer_image_token: tokenize the chunks around "<image>" separately, join with -200."""
    chunks = prompt.split("<image>")
    lines = "".join(json.dumps({"text": ch}) + "\n" for ch in chunks)
    out = [json.loads(line)["ids"] for line in cli("tokenize", "--model", model_dir, stdin=lines).splitlines() if line.strip()]
    ids = []
    for i, chunk_ids in enumerate(out):
        if i > 0:
            ids.append(R.IMAGE_TOKEN_INDEX)
        ids.extend(chunk_ids)
    return ids


def make_pixels(seed, frames, size):
    """Deterministic CLIP-normalized pixels ([0,1] uniform per channel, then (x-mean)/std), rounded
    to float16 (the fixtures store F16; the reference computes from the rounded values)."""
    g = torch.Generator().manual_seed(1000 + seed)
    raw = torch.rand(frames, 3, size, size, generator=g, dtype=torch.float32)
    # Smooth a little (2x2 box) so neighbouring pixels correlate like an image does.
    raw = 0.5 * raw + 0.5 * torch.roll(raw, shifts=(1, 1), dims=(2, 3))
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    return ((raw - mean) / std).half()


def fingerprint(ckpt):
    names = ["model.embed_tokens.weight",
             "lm_head.weight" if ckpt.has("lm_head.weight") else "model.embed_tokens.weight",
             "model.vision_tower.vision_tower.stem.0.weight",
             "model.layers.0.self_attn.q_proj.weight"]
    names = [n for n in names if n not in ckpt.quantized]   # a quantized matrix is checked through its products
    values = torch.cat([ckpt[n].reshape(-1)[:8].float() for n in names])
    return values, names


def logit_columns(seed, must, vocab):
    g = torch.Generator().manual_seed(5000 + seed)
    cols = set(int(x) for x in must)
    cols |= {151643, 151644, 151645, 0, vocab - 1}
    for x in torch.randperm(vocab, generator=g).tolist():
        if len(cols) >= LOGIT_COLUMNS:
            break
        cols.add(x)
    return sorted(cols)


# ----------------------------------------------------------------------------- one case

def run_case(c):
    best = None
    for attempt in range(SEED_TRIES):
        tried = dict(c, seed=c["seed"] + 1000 * attempt)
        computed = compute_case(tried)
        margin = computed[1]["min_generated_margin"]
        if best is None or margin > best[1]["min_generated_margin"]:
            best = computed
        if margin >= MIN_MARGIN:
            break
        print(f"  {c['name']} seed {tried['seed']}: a greedy step has margin {margin:.1e} < {MIN_MARGIN:.0e}, trying another seed",
              file=sys.stderr)
    tensors, meta, started = best
    if meta["min_generated_margin"] < MIN_MARGIN:
        print(f"  WARNING {c['name']}: no seed gave margins >= {MIN_MARGIN:.0e}; keeping seed {meta['seed']}", file=sys.stderr)
    os.makedirs(OUT_DIR, exist_ok=True)
    path = os.path.join(OUT_DIR, c["name"] + ".safetensors")
    R.write_safetensors(path, tensors, {"case": json.dumps(meta, sort_keys=True)})
    print(f"{c['name']}: seed={meta['seed']} P={meta['positions']} fast={meta['fast_tokens']} slow={meta['slow_tokens']} "
          f"gen={tensors['generated_ids'].tolist()} min-margin={meta['min_generated_margin']:.2e} "
          f"fp64-diff={meta['fp64_logits_max_abs_diff']:.1e} {os.path.getsize(path) / 1024:.0f} KB {time.time() - started:.0f} s",
          file=sys.stderr)


def compute_case(c):
    """Runs the reference for case `c` (float32, and float64 for the error estimate); returns
    (tensors, metadata, start time)."""
    started = time.time()
    model_dir = checkpoint_dir(c)
    has_visual = c["input"] != "none"
    prompt = chat_prompt(c["question"], has_visual)
    ids = tokenize_prompt(model_dir, prompt)

    results = {}
    for dtype in (torch.float32, torch.float64):
        ref = R.SlowFastReference(model_dir, dtype, bf16_math=c.get("bf16_math", False), vision_int8=c.get("vision_int8", False))
        cfg = ref.config
        size = (cfg.get("vision_config") or {}).get("image_size", 576)
        pixels = make_pixels(c["seed"], c["frames"], size) if has_visual else None
        visual = ref.encode_visual(pixels.float()) if has_visual else None
        # What the language model gets: the slow-fast tokens, or the baseline's (the stored fast/slow
        # tensors stay the slow-fast ones, so the vision tests read every case alike).
        llm_visual = R.baseline_visual(visual) if has_visual and c.get("design") == "baseline" else visual
        generated, margins, logits, step_logits = ref.generate_greedy(ids, llm_visual, GENERATE_STEPS)
        _, types, _ = ref.prefill(ids, llm_visual)
        attend = margins_attend = step_logits_attend = None
        if has_visual:
            attend, margins_attend, _, step_logits_attend = ref.generate_greedy(ids, llm_visual, GENERATE_STEPS, attend_while_decoding=True)
        results[dtype] = dict(ref=ref, pixels=pixels, visual=visual, generated=generated, margins=margins,
                              logits=logits, types=types, attend=attend, margins_attend=margins_attend,
                              step_logits=step_logits, step_logits_attend=step_logits_attend)

    r32, r64 = results[torch.float32], results[torch.float64]
    logits = r32["logits"]
    argmax = logits.argmax(dim=-1)
    cols = logit_columns(c["seed"], argmax.tolist() + r32["generated"] + (r32["attend"] or []), logits.shape[1])
    lse = torch.logsumexp(logits, dim=-1)
    fp, fp_names = fingerprint(r32["ref"].ckpt)
    fp64_logit_diff = float((r32["logits"].double() - r64["logits"]).abs().max())
    if r32["generated"] != r64["generated"]:
        print(f"  WARNING {c['name']}: float32 and float64 greedy tokens differ", file=sys.stderr)

    tensors = {
        "input_ids": np.array(ids, dtype=np.int64),
        "token_types": r32["types"].numpy().astype(np.int64),
        "logits_lse": lse.numpy().astype(np.float32),
        "logits_argmax": argmax.numpy().astype(np.int64),
        "logits_cols": np.array(cols, dtype=np.int64),
        "logits_sub": logits[:, cols].numpy().astype(np.float32),
        "generated_ids": np.array(r32["generated"], dtype=np.int64),
        "generated_margin": np.array(r32["margins"], dtype=np.float32),
        "generated_lse": torch.logsumexp(r32["step_logits"], dim=-1).numpy().astype(np.float32),
        "generated_logits_sub": r32["step_logits"][:, cols].numpy().astype(np.float32),
        "fingerprint": fp.numpy().astype(np.float32),
    }
    if c["last_logits"]:
        tensors["last_logits"] = logits[-1].numpy().astype(np.float32)
    meta_extra = {}
    if has_visual:
        v = r32["visual"]
        tensors["pixel_values"] = r32["pixels"].numpy()
        tensors["vision_features"] = v["vision_features"].numpy().astype(np.float32)
        tensors["projected"] = v["projected"].numpy().astype(np.float32)
        tensors["fast_tokens"] = v["fast_tokens"].numpy().astype(np.float32)
        tensors["slow_tokens"] = v["slow_tokens"].numpy().astype(np.float32)
        tensors["generated_ids_attend"] = np.array(r32["attend"], dtype=np.int64)
        tensors["generated_margin_attend"] = np.array(r32["margins_attend"], dtype=np.float32)
        tensors["generated_logits_sub_attend"] = r32["step_logits_attend"][:, cols].numpy().astype(np.float32)
        v64 = r64["visual"]
        meta_extra["fp64_max_abs_diff"] = {k: float((v[k].double() - v64[k]).abs().max()) for k in v}
        meta_extra["fast_frame_indices"] = R.fast_frame_plan(r32["ref"].config, c["frames"])

    meta = {
        "preset": c["preset"], "seed": c["seed"], "dtype": c["dtype"], "overrides": c["overrides"], "bf16_math": c["bf16_math"],
        "quantize": c.get("quantize"),
        "vision_int8": c.get("vision_int8", False),
        "design": c.get("design", "slowfast"),
        "input": c["input"], "frames": c["frames"], "question": c["question"], "prompt": prompt,
        "image_size": (r32["ref"].config.get("vision_config") or {}).get("image_size") if has_visual else None,
        "generate_steps": GENERATE_STEPS, "fingerprint_names": fp_names,
        "fast_tokens": int(tensors["fast_tokens"].shape[0]) if has_visual else 0,
        "slow_tokens": int(tensors["slow_tokens"].shape[0]) if has_visual else 0,
        "positions": int(logits.shape[0]),
        "fp64_logits_max_abs_diff": fp64_logit_diff,
        "fp64_generated_equal": r32["generated"] == r64["generated"],
        "min_generated_margin": min(r32["margins"] + (r32["margins_attend"] or [])),
        "notes": c["notes"],
        **meta_extra,
    }
    return tensors, meta, started


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cases", nargs="*", help="case names (default: all)")
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    ap.add_argument("--rebuild", action="store_true", help="rebuild the C# CLI first")
    args = ap.parse_args()
    if args.list:
        for c in CASES:
            print(f"{c['name']:32s} {c['input']:5s} T={c['frames']:<2d} {c['dtype']} {' '.join(c['overrides'])}")
        return
    wanted = [c for c in CASES if not args.cases or c["name"] in args.cases]
    unknown = set(args.cases) - {c["name"] for c in CASES}
    if unknown:
        sys.exit(f"unknown case(s): {', '.join(sorted(unknown))}")
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    ensure_cli(args.rebuild)
    for c in wanted:
        run_case(c)


if __name__ == "__main__":
    main()
