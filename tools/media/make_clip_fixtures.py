#!/usr/bin/python3
"""Golden fixtures for SlowFast.Media's CLIP preprocessing, made with PIL + NumPy.

The reference model preprocesses frames with Hugging Face's CLIPImageProcessor (size = crop = S,
resample = 3 = PIL BICUBIC). For a uint8 RGB frame that processor:
  1. resizes so the shorter side is S and the longer side is int(S * long / short), by handing the
     array to PIL (Image.resize(..., BICUBIC, reducing_gap=None)),
  2. center-crops S x S at offsets ((H - S) // 2, (W - S) // 2),
  3. rescales by 1/255 and normalises with the CLIP mean/std.
Steps 1-2 are reproduced here with PIL itself and stored as uint8; the C# tests compare their
output with these bytes (tolerance 1/255 before normalisation). 'pad' cases first expand the
image to a square filled with int(255 * mean) per channel, pasted at ((side - w) // 2, (side - h) // 2),
as the reference's expand2square does.

Run with Debian's Python:  /usr/bin/python3 tools/media/make_clip_fixtures.py
Writes tests/SlowFast.Media.Tests/Fixtures/clip/{manifest.json, *.rgb}. Deterministic.
"""
import json
import os

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "SlowFast.Media.Tests", "Fixtures", "clip")
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)

# (source width, source height, target size S, aspect mode)
CASES = [
    (64, 48, 32, "square"),   # landscape downscale by 1.5
    (48, 64, 32, "square"),   # portrait
    (37, 23, 32, "square"),   # odd sizes, short side upscaled
    (23, 37, 48, "square"),   # odd sizes, upscale both
    (101, 67, 48, "square"),  # odd sizes, mild downscale
    (50, 50, 48, "square"),   # square, tiny downscale
    (200, 30, 32, "square"),  # extreme aspect ratio
    (7, 5, 32, "square"),     # large upscale
    (96, 96, 32, "square"),   # exact 3x downscale
    (64, 48, 32, "pad"),      # pad to square, then resize
    (23, 37, 48, "pad"),
]


def source_image(w, h, seed):
    """Smooth colour ramps plus noise and a hard edge, so every filter tap matters."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 255 * x / max(w - 1, 1)
    g = 255 * y / max(h - 1, 1)
    b = 127.5 + 127.5 * np.sin((x + 2 * y) / 3.0)
    img = np.stack([r, g, b], axis=-1) + rng.normal(0, 40, size=(h, w, 3))
    img[:, w // 3: w // 3 + 1, :] = 255  # a one-pixel white line: ringing clips at 255
    img[h // 2, :, :] = 0                # and a black one: ringing clips at 0
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def expand_to_square(img):
    h, w, _ = img.shape
    side = max(w, h)
    fill = tuple(int(m * 255) for m in CLIP_MEAN)
    canvas = Image.new("RGB", (side, side), fill)
    canvas.paste(Image.fromarray(img), ((side - w) // 2, (side - h) // 2))
    return np.asarray(canvas)


def resize_and_crop(img, size):
    h, w, _ = img.shape
    short, long = (w, h) if w <= h else (h, w)
    new_long = int(size * long / short)
    new_w, new_h = (size, new_long) if w <= h else (new_long, size)
    resized = np.asarray(Image.fromarray(img).resize((new_w, new_h), resample=Image.BICUBIC, reducing_gap=None))
    top = (new_h - size) // 2
    left = (new_w - size) // 2
    return resized[top:top + size, left:left + size, :]


def main():
    os.makedirs(OUT, exist_ok=True)
    manifest = []
    for i, (w, h, size, mode) in enumerate(CASES):
        src = source_image(w, h, seed=1000 + i)
        src_name = f"src_{i:02d}_{w}x{h}.rgb"
        with open(os.path.join(OUT, src_name), "wb") as f:
            f.write(src.tobytes())
        squared = expand_to_square(src) if mode == "pad" else src
        out = resize_and_crop(squared, size)
        assert out.shape == (size, size, 3)
        out_name = f"out_{i:02d}_{mode}_{size}.rgb"
        with open(os.path.join(OUT, out_name), "wb") as f:
            f.write(np.ascontiguousarray(out).tobytes())
        manifest.append({"source": src_name, "width": w, "height": h, "size": size, "aspect": mode, "expected": out_name})
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump({"generator": "tools/media/make_clip_fixtures.py", "pil": Image.__version__, "cases": manifest}, f, indent=1)
    print(f"wrote {len(manifest)} cases to {OUT}")


if __name__ == "__main__":
    main()
