#!/usr/bin/env python3
"""Builds a prompt file for self-distillation (`swiftkv generate-data --prompts`).

Why this data:
  * Public-domain prose. ../shared/data/prose holds Shakespeare (tinyshakespeare.txt) and six
    19th / early-20th-century Project Gutenberg books (gutenberg_bodies.txt); see SOURCE.txt
    there. Nothing here has a license that restricts training on it.
  * No evaluation items. None of the benchmark sets (ARC, PIQA, BoolQ, MMLU, TruthfulQA,
    GSM8K, LAMBADA, WikiText-2) is read, so no benchmark question or answer can reach the
    prompts; the distillation loader's 13-gram check (src/train/decontam.h) is a second net.
  * Self-generated answers keep the teacher's distribution. The prompts only set a task; the
    training targets are the teacher's own sampled answers, so the student learns to match
    what the teacher would say in the teacher's own chat format, rather than a third party's
    text, which would pull both away from the model being compressed.
  * Varied tasks (summarise, explain, continue, answer a question, rewrite, list, title, ...)
    cover short and long answers, quoting and paraphrasing, so the answers exercise the
    model's general instruction-following and not one narrow habit.

Passages: Gutenberg paragraphs (line breaks unwrapped) and Shakespeare speeches (verse lines
kept) are merged in order into passages of --min-words to --max-words words (80 to 200); a
longer paragraph or speech is cut at sentence or line ends. Each passage gets one prompt from a
randomly chosen template. Passages and templates are drawn with random.Random(--seed) (an
integer seed, shuffle and randrange only, which Python keeps stable across versions), so a seed
gives the same file wherever it runs.

Output: JSON Lines {"prompt": "..."}; --max-prompts caps the count (default: all passages).

  python3 scripts/make_distill_prompts.py --out prompts.jsonl --max-prompts 2000 --seed 1

Standard library only. The data is read from where it lies and never copied into the repo.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import random
import re
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
DEFAULT_PROSE = os.path.join(os.environ.get("SKV_DATA") or os.path.join(ROOT, "..", "shared", "data"), "prose")

# (kind, template). {passage} is the passage; the instruction sits before or after it so that
# the teacher sees both layouts.
TEMPLATES: list[tuple[str, str]] = [
    ("summarise", "Summarise the following passage in two or three sentences.\n\n{passage}"),
    ("summarise", "{passage}\n\nWhat is this passage about? Give a short summary."),
    ("summarise", "Write a one-paragraph summary of this text for someone who has not read it:\n\n{passage}"),
    ("explain", "Explain the following passage in simple words, as you would to a twelve-year-old.\n\n{passage}"),
    ("explain", "{passage}\n\nExplain what is happening here in plain, everyday language."),
    ("continue", "Continue the following text for one more paragraph, keeping its style and voice.\n\n{passage}"),
    ("continue", "{passage}\n\nWhat do you think happens next? Write the next few sentences."),
    ("question", "Read the passage and answer: who is speaking or acting here, and what do they want?\n\n{passage}"),
    ("question", "{passage}\n\nWhat is the mood or tone of this passage? Point to words that create it."),
    ("question", "{passage}\n\nWhy do you think the characters behave as they do in this passage?"),
    ("question", "What is the most important idea in the following passage, and why?\n\n{passage}"),
    ("rewrite", "Rewrite the following passage in modern English, keeping its meaning.\n\n{passage}"),
    ("rewrite", "{passage}\n\nRewrite this as a short modern news report."),
    ("list", "List the characters, places and objects mentioned in this passage.\n\n{passage}"),
    ("list", "{passage}\n\nMake a bulleted list of the main events or points in the text above."),
    ("title", "Suggest a good title for this passage and explain your choice in one sentence.\n\n{passage}"),
    ("title", "{passage}\n\nGive this passage three possible titles."),
    ("vocabulary", "Pick three difficult or old-fashioned words from this passage and explain what they mean."
                   "\n\n{passage}"),
    ("teacher", "{passage}\n\nWrite three questions a teacher could ask students about this passage, with short "
                "answers."),
    ("setting", "Describe the setting of this passage: where and when it seems to take place, and how you can "
                "tell.\n\n{passage}"),
]


def words(s: str) -> int:
    return len(s.split())


def split_long(text: str, max_words: int, sep: str) -> list[str]:
    """Cuts text longer than max_words at sentence ends (sep=" ") or line ends (sep="\n")."""
    if words(text) <= max_words:
        return [text]
    units = re.split(r"(?<=[.!?;])\s+", text) if sep == " " else text.split("\n")
    out, cur = [], []
    for u in units:
        if cur and words(sep.join(cur + [u])) > max_words:
            out.append(sep.join(cur))
            cur = []
        cur.append(u)
    if cur:
        out.append(sep.join(cur))
    # A single sentence / line over the limit is cut at word boundaries.
    final = []
    for piece in out:
        w = piece.split(" ")
        while len(w) > max_words:
            final.append(" ".join(w[:max_words]))
            w = w[max_words:]
        final.append(" ".join(w))
    return [p for p in final if p.strip()]


def merge(blocks: list[str], min_words: int, max_words: int, sep: str) -> list[str]:
    """Joins consecutive blocks into passages of min_words .. max_words; a short tail is dropped."""
    passages, cur, n = [], [], 0
    for block in blocks:
        for piece in split_long(block, max_words, "\n" if sep == "\n\n" and "\n" in block else " "):
            w = words(piece)
            if cur and n + w > max_words:
                if n >= min_words:
                    passages.append(sep.join(cur))
                cur, n = [], 0
            cur.append(piece)
            n += w
            if n >= min_words and n >= max_words * 0.6:
                passages.append(sep.join(cur))
                cur, n = [], 0
    if cur and n >= min_words:
        passages.append(sep.join(cur))
    return passages


def gutenberg_passages(text: str, min_words: int, max_words: int) -> list[str]:
    passages = []
    # Books are separated by three newlines; a passage never spans two books.
    for book in re.split(r"\n\s*\n\s*\n", text):
        blocks = []
        for para in re.split(r"\n\s*\n", book):
            para = " ".join(para.split())
            # Headings, title pages and tables of contents are not prose: short or mostly capitals.
            letters = [c for c in para if c.isalpha()]
            if words(para) < 8 or not letters or sum(c.isupper() for c in letters) > 0.5 * len(letters):
                continue
            blocks.append(para)
        passages += merge(blocks, min_words, max_words, " ")
    return passages


def shakespeare_passages(text: str, min_words: int, max_words: int) -> list[str]:
    speeches = [s.strip() for s in re.split(r"\n\s*\n", text) if s.strip()]
    return merge(speeches, min_words, max_words, "\n\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="output .jsonl")
    ap.add_argument("--max-prompts", type=int, default=0, help="at most this many prompts (0 = every passage)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--prose-dir", default=DEFAULT_PROSE, help="folder with tinyshakespeare.txt and "
                    "gutenberg_bodies.txt (default: $SKV_DATA/prose, else ../shared/data/prose)")
    ap.add_argument("--min-words", type=int, default=80)
    ap.add_argument("--max-words", type=int, default=200)
    a = ap.parse_args()
    if a.max_prompts < 0:
        ap.error("--max-prompts must be >= 0")
    if not 0 < a.min_words <= a.max_words:
        ap.error("need 0 < --min-words <= --max-words")

    sources = {}
    for name, fn in (("gutenberg_bodies.txt", gutenberg_passages), ("tinyshakespeare.txt", shakespeare_passages)):
        path = os.path.join(a.prose_dir, name)
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read().replace("\r\n", "\n")
        except OSError as e:
            print(f"make_distill_prompts: error: cannot read {path}: {e.strerror}", file=sys.stderr)
            return 1
        sources[name] = fn(text, a.min_words, a.max_words)

    rng = random.Random(a.seed)
    pool = [(name, p) for name, ps in sources.items() for p in ps]
    rng.shuffle(pool)
    if a.max_prompts:
        pool = pool[:a.max_prompts]
    kinds, used = collections.Counter(), collections.Counter()
    with open(a.out, "w", encoding="utf-8") as out:
        for name, passage in pool:
            kind, template = TEMPLATES[rng.randrange(len(TEMPLATES))]
            out.write(json.dumps({"prompt": template.format(passage=passage)}, ensure_ascii=False) + "\n")
            kinds[kind] += 1
            used[name] += 1
    avail = ", ".join(f"{n}: {len(p)}" for n, p in sources.items())
    print(f"make_distill_prompts: {len(pool)} prompts to {a.out} (passages available: {avail}; used: "
          + ", ".join(f"{n} {c}" for n, c in used.items()) + "; tasks: "
          + ", ".join(f"{k} {c}" for k, c in sorted(kinds.items())) + ")", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
