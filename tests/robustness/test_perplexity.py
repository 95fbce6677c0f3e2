#!/usr/bin/env python3
"""`swiftkv perplexity`: bad flags and files fail cleanly; on the tiny fixture model its
perplexity is the one `swiftkv score` gives for the same chunks, the reference cache dtype has a
KL divergence of exactly 0 from itself and agrees on every top token, and a 16-bit cache moves
the distributions only slightly (KL > 0, < 1e-3).

Env: SKV_BIN, SKV_SOURCE_DIR. Runs in the ASan+UBSan build too.
"""
from __future__ import annotations

import json
import math
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli_checks import ROOT, TRACEBACK_MARKERS, Checks  # noqa: E402

TINY = os.path.join(ROOT, "tests", "fixtures", "models", "llama_gqa")
checks = Checks(subcommand="perplexity")
score = Checks(subcommand="score")
tokenize = Checks(subcommand="tokenize")

TEXT = ("The engine cuts the text into chunks and scores the second half of each one. " * 40)


def main() -> int:
    if not checks.have_binary():
        return checks.summary("perplexity")
    with tempfile.TemporaryDirectory(prefix="skv_ppl_") as tmp:
        text = os.path.join(tmp, "text.txt")
        with open(text, "w", encoding="utf-8") as f:
            f.write(TEXT)
        short = os.path.join(tmp, "short.txt")
        with open(short, "w", encoding="utf-8") as f:
            f.write("too short")
        base = ["--model", TINY, "-f", text]

        def case(name, args, keyword, exit_code=None):
            checks.expect_error(name, args, keyword, tmp, exit_code=exit_code)

        case("missing_file_flag", ["--model", TINY], r"missing required flag --file")
        case("file_not_found", ["--model", TINY, "-f", os.path.join(tmp, "nope.txt")], r"cannot open --file")
        case("too_short", ["--model", TINY, "-f", short, "-c", "64"], r"fewer than one chunk")
        case("bad_dtype", base + ["--kv-cache-dtype", "f32,int3"], r"'int3' is not one of")
        case("bad_reference", base + ["--kl-reference-kv-dtype", "zzz"], r"--kl-reference-kv-dtype 'zzz' is not one of")
        case("block_dtype_head_dim", base + ["--kv-cache-dtype", "q8_0"], r"multiple of 32")
        case("zero_chunks", base + ["--chunks", "0"], r"--chunks must be positive")
        case("tiny_ctx", base + ["-c", "2"], r"--ctx-size must be at least 4")
        case("ctx_beyond_model", base + ["-c", "100000"], r"exceeds the model's", exit_code=3)

        ctx, chunks = 64, 3
        p = checks.run(base + ["-c", str(ctx), "--chunks", str(chunks), "--kv-cache-dtype", "f32,f16,bf16",
                               "--json", "-t", "2"])
        bad = [m for m in TRACEBACK_MARKERS if m in p.stderr]
        if p.returncode != 0 or bad:
            checks.record("run", [f"exit {p.returncode} {bad}"], p.stderr.strip()[-600:])
            return checks.summary("perplexity")
        res = json.loads(p.stdout)
        rows = {r["kv_cache_dtype"]: r for r in res["rows"]}
        f32, f16 = rows["f32"], rows["f16"]
        problems = []
        if res["chunks"] != chunks or f32["scored_tokens"] != chunks * (ctx - ctx // 2):
            problems.append(f"chunks {res['chunks']}, scored {f32['scored_tokens']}")
        if f32["kl_mean"] != 0 or f32["kl_max"] != 0 or f32["same_top_token"] != 1:
            problems.append(f"f32 against itself: {f32}")
        if not (0 < f16["kl_mean"] < 1e-3) or not (0 < rows["bf16"]["kl_mean"] < 1e-2):
            problems.append(f"16-bit caches: f16 KL {f16['kl_mean']}, bf16 KL {rows['bf16']['kl_mean']}")
        if f16["kv_bytes_per_token"] * 2 != f32["kv_bytes_per_token"]:
            problems.append(f"bytes per token f32 {f32['kv_bytes_per_token']}, f16 {f16['kv_bytes_per_token']}")
        checks.record("kl_against_reference", problems)

        # The same chunks through `swiftkv score`: tokens of the text, BOS first in each chunk when
        # the tokenizer adds one, second halves scored.
        t = tokenize.run(["--model", TINY, "--text", TEXT, "--no-add-special", "--no-parse-special"])
        ids = json.loads(t.stdout)["ids"] if t.returncode == 0 else []
        w = tokenize.run(["--model", TINY, "--text", TEXT, "--no-parse-special"])
        with_special = json.loads(w.stdout)["ids"] if w.returncode == 0 else []
        bos = with_special[0] if len(with_special) == len(ids) + 1 else None
        nll, err = [], t.stderr
        for c in range(chunks):
            chunk = ids[c * ctx:(c + 1) * ctx]
            if len(chunk) < ctx:
                break
            if bos is not None:
                chunk[0] = bos
            s = score.run(["--model", TINY, "--token-ids", ",".join(map(str, chunk))])
            if s.returncode != 0:
                err = s.stderr
                break
            lps = json.loads(s.stdout)["token_logprobs"]
            nll += [-x for x in lps[ctx // 2:]]
        if len(nll) != chunks * (ctx - ctx // 2):
            checks.record("ppl_matches_score", [f"could not score the chunks ({len(ids)} ids)"],
                          err.strip()[-400:])
        else:
            ppl = math.exp(sum(nll) / len(nll))
            rel = abs(ppl - f32["ppl"]) / ppl
            checks.record("ppl_matches_score", [] if rel < 1e-5 else [f"score {ppl}, perplexity {f32['ppl']}"],
                          f"ppl {f32['ppl']:.4f}")
    return checks.summary("perplexity")


if __name__ == "__main__":
    sys.exit(main())
