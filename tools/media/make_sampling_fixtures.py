#!/usr/bin/python3
"""Golden frame indices and time strings for SlowFast.Media's sampling, computed the reference's way.

- uniform: numpy.linspace(0, total - 1, n, dtype=int) (the inference demo's and lmms-eval's decord
  loaders; n may exceed total, giving repeats).
- fps: the reference's get_frame_indices(total, fps, target, n) (lmms-eval load_video.py, with
  the decord reader's cap of the target rate at the video rate); fps may be a Fraction, as PyAV's
  average_rate is.
- time strings: the f-string both readers build from round(total_time, 2) and round(total_time / k, 3).

Run with Debian's Python:  /usr/bin/python3 tools/media/make_sampling_fixtures.py
Writes tests/SlowFast.Media.Tests/Fixtures/sampling/sampling.json. Deterministic.
"""
import json
import os
from fractions import Fraction

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "SlowFast.Media.Tests", "Fixtures", "sampling", "sampling.json")


def get_frame_indices(total_frames, original_fps, target_fps, num_frm):
    target_fps = min(target_fps, original_fps)
    sample_fps = max(round(original_fps / target_fps), 1)
    frame_idx = [i for i in range(0, total_frames, sample_fps)]
    if len(frame_idx) < num_frm:
        return frame_idx
    scale = 1.0 * len(frame_idx) / num_frm
    uniform_idx = [round((i + 1) * scale - 1) for i in range(num_frm)]
    return [frame_idx[i] for i in uniform_idx]


def time_string(total_time, k):
    return f"Time: {round(total_time, 2)}s; Time interval between frame {round(total_time / k, 3)}s; video tokens:"


def main():
    uniform = []
    for total in [1, 2, 3, 5, 7, 10, 16, 31, 50, 64, 100, 257, 1000, 4097, 18000, 99991]:
        for n in [1, 2, 3, 7, 8, 16, 32, 63, 64, 96, 128]:
            idx = np.linspace(0, total - 1, n, dtype=int).tolist()
            uniform.append({"total": total, "n": n, "indices": idx})
    fps_cases = []
    rates = [("24000/1001", Fraction(24000, 1001)), ("25", Fraction(25)), ("30000/1001", Fraction(30000, 1001)),
             ("30", Fraction(30)), ("60", Fraction(60)), ("12.5", Fraction(25, 2)), ("5", Fraction(5))]
    for total in [1, 10, 37, 100, 1000, 18000]:
        for rate_text, rate in rates:
            for target in [0.5, 1, 2, 3, 10]:
                for n in [8, 32, 64]:
                    idx = get_frame_indices(total, rate, target, n)
                    fps_cases.append({"total": total, "fps_num": rate.numerator, "fps_den": rate.denominator,
                                      "target": target, "n": n, "indices": idx})
    times = []
    for total_time, k in [(10.0, 64), (600.0, 64), (2.0, 50), (1.0 / 3.0, 7), (2.675, 1), (123.456789, 32),
                          (0.005, 3), (59.994, 64), (17.125, 8), (3.14159, 96), (1000 / 29.97, 16), (0.1, 100)]:
        times.append({"total_time": total_time, "k": k, "text": time_string(total_time, k)})
    with open(OUT, "w") as f:
        json.dump({"generator": "tools/media/make_sampling_fixtures.py", "uniform": uniform, "fps": fps_cases, "time_strings": times}, f,
                  separators=(",", ":"))
    print(f"wrote {len(uniform)} uniform, {len(fps_cases)} fps and {len(times)} time-string cases to {OUT}")


if __name__ == "__main__":
    main()
