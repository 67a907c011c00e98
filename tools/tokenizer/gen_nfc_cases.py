#!/usr/bin/python3
"""Writes tests/SlowFast.Model.Tests/Fixtures/qwen-tokenizer/nfc-cases.jsonl: strings and their
NFC form according to Python's unicodedata, to check the C# normalizer against an independent
implementation. Deterministic (fixed seed). Run from the repository root with /usr/bin/python3.
"""
import json
import random
import unicodedata

rng = random.Random(20250607)

interesting = []  # characters NFC cares about: decomposable, combining, or composable
for cp in range(0x110000):
    if 0xD800 <= cp <= 0xDFFF:
        continue
    ch = chr(cp)
    decomposition = unicodedata.decomposition(ch)
    if unicodedata.combining(ch) or (decomposition and not decomposition.startswith("<")):
        interesting.append(ch)
hangul = [chr(c) for c in list(range(0x1100, 0x1113)) + list(range(0x1161, 0x1176)) + list(range(0x11A8, 0x11C3))]
hangul += [chr(rng.randrange(0xAC00, 0xD7A4)) for _ in range(40)]
plain = list("aeiouAEIOUnNcCsSzZ ,.") + ["中", "ά", "ω", "и", "\u0627", "😀", "\u0915", "\u093c"]

cases = []
# Every decomposable or combining character on its own and after a base letter.
for i in range(0, len(interesting), 7):
    cases.append("".join(interesting[i:i + 7]))
for ch in interesting[::8]:
    cases.append("a" + ch + "\u0301")
# Random mixtures that exercise reordering, blocking and Hangul composition.
pool = interesting + hangul + plain * 20
for _ in range(300):
    cases.append("".join(rng.choice(pool) for _ in range(rng.randrange(1, 12))))
cases += ["", "plain ascii", "e\u0301", "A\u030A", "\u1E9B\u0323", "\u0041\u0323\u0302\u0301",
          "\u1100\u1161\u11A8", "\uAC00\u11A8", "\u0F73", "\u0344", "ﬁ", "Å", "\u212B", "\u2126"]

with open("tests/SlowFast.Model.Tests/Fixtures/qwen-tokenizer/nfc-cases.jsonl", "w", encoding="utf-8", newline="\n") as f:
    for text in cases:
        f.write(json.dumps({"text": text, "nfc": unicodedata.normalize("NFC", text)}, ensure_ascii=False) + "\n")
print(f"{len(cases)} cases, Unicode {unicodedata.unidata_version}")
