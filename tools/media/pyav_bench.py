#!/usr/bin/python3
"""PyAV baseline for bench/SlowFast.Bench/MediaBench.cs: decode, sample and preprocess N frames the
way the reference's Python does, and time it.

Decoding follows the reference's PyAV reader (lmms_eval/models/model_utils/load_video.py,
record_video_length_stream): decode the stream in order with threading on, keep the frames whose
index is sampled, stop after the last one, convert with frame.to_ndarray(format="rgb24").
Sampling is the uniform floor(linspace(0, total - 1, N)) with total = stream.frames.
Preprocessing restates Hugging Face's CLIPImageProcessor (size = crop = S, PIL BICUBIC): resize the
shorter side to S with PIL, centre-crop, rescale 1/255, normalise with the CLIP mean/std.

Prints one JSON line: frames, indices, decode_s, preprocess_s, total_s.
With --dump FILE, also writes the uint8 centre crops [N, S, S, 3] for a pixel comparison.

Usage: /usr/bin/python3 tools/media/pyav_bench.py VIDEO [--frames 64] [--size 576] [--dump FILE]
"""
import argparse
import json
import time

import av
import numpy as np
from PIL import Image

MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)


def crop_uint8(rgb, size):
    h, w, _ = rgb.shape
    short, long = (w, h) if w <= h else (h, w)
    new_long = int(size * long / short)
    new_w, new_h = (size, new_long) if w <= h else (new_long, size)
    resized = np.asarray(Image.fromarray(rgb).resize((new_w, new_h), resample=Image.BICUBIC, reducing_gap=None))
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return resized[top:top + size, left:left + size]


def normalise(crop):
    x = (crop.astype(np.float64) * (1 / 255)).astype(np.float32)
    return ((x - MEAN) / STD).transpose(2, 0, 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("video")
    ap.add_argument("--frames", type=int, default=64)
    ap.add_argument("--size", type=int, default=576)
    ap.add_argument("--dump")
    args = ap.parse_args()

    start = time.perf_counter()
    container = av.open(args.video)
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    total = stream.frames
    indices = np.linspace(0, total - 1, args.frames, dtype=int).tolist()
    wanted = set(indices)
    last = indices[-1]
    decoded = {}
    for i, frame in enumerate(container.decode(video=0)):
        if i > last:
            break
        if i in wanted:
            decoded[i] = frame.to_ndarray(format="rgb24")
    container.close()
    decode_done = time.perf_counter()

    crops = [crop_uint8(decoded[i], args.size) for i in indices]
    pixels = np.stack([normalise(c) for c in crops])
    done = time.perf_counter()
    assert pixels.shape == (args.frames, 3, args.size, args.size)
    if args.dump:
        np.stack(crops).astype(np.uint8).tofile(args.dump)
    print(json.dumps({"frames": len(indices), "total_frames": total, "indices": indices, "decode_s": decode_done - start,
                      "preprocess_s": done - decode_done, "total_s": done - start}))


if __name__ == "__main__":
    main()
