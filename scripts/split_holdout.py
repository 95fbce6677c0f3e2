#!/usr/bin/env python3
"""Split distillation text files into a training part and a held-out validation part.

For each input .txt file, the last --fraction of its lines (cut at a blank line when one is near,
so a paragraph is not split) go to OUT/valid/<name>, the rest to OUT/train/<name>. Recipe choices
(learning rate, loss weights, calibration on or off) are compared on the validation part, never
on the evaluation sets.

    scripts/split_holdout.py --out data/distill --fraction 0.05 \\
        ../shared/data/prose/tinyshakespeare.txt ../shared/data/prose/gutenberg_bodies.txt
"""
from __future__ import annotations

import argparse
import os
import sys


def split_point(lines: list[str], fraction: float) -> int:
    cut = max(1, min(len(lines) - 1, round(len(lines) * (1.0 - fraction))))
    for d in range(0, 200):  # the nearest blank line within 200 lines, if any
        for i in (cut - d, cut + d):
            if 0 < i < len(lines) and not lines[i - 1].strip():
                return i
    return cut


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+")
    ap.add_argument("--out", required=True)
    ap.add_argument("--fraction", type=float, default=0.05)
    a = ap.parse_args()
    if not 0.0 < a.fraction < 1.0:
        ap.error("--fraction must be in (0, 1)")
    for sub in ("train", "valid"):
        os.makedirs(os.path.join(a.out, sub), exist_ok=True)
    for path in a.files:
        with open(path, encoding="utf-8") as f:
            lines = f.readlines()
        if len(lines) < 2:
            print(f"split_holdout: {path}: fewer than 2 lines", file=sys.stderr)
            return 1
        cut = split_point(lines, a.fraction)
        name = os.path.basename(path)
        for sub, part in (("train", lines[:cut]), ("valid", lines[cut:])):
            with open(os.path.join(a.out, sub, name), "w", encoding="utf-8") as f:
                f.writelines(part)
        print(f"{name}: {cut} lines train, {len(lines) - cut} valid")
    return 0


if __name__ == "__main__":
    sys.exit(main())
