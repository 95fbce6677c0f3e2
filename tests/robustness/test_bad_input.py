#!/usr/bin/env python3
"""Bad input must give a clean, one-line error, never a crash.

For every case the CLI must: exit with a status in 1..127 (not killed by a signal, not 0), write
exactly one stderr line containing "error" (case-insensitive) that also names the problem
(a per-case keyword regex), and never leak a Python-style traceback or a sanitizer report.

Covers: missing / malformed model directories and config.json, corrupt safetensors (truncation,
header length, offsets, sizes, dtypes, shape vs config, missing tensor, missing shard), corrupt
GGUF (magic, version, truncation, absurd counts / lengths, offsets, type ids, alignment), a prompt
longer than the context, out-of-vocab token ids, malformed flags and an unknown subcommand; then
structured fuzzing (make_bad_files.build_fuzz: one header field of the tiny models set to a
boundary value, fixed seeds) where loading may succeed or fail but must never crash.

The valid tiny models the corrupt files derive from are checked to work first (score exits 0
with finite log-probs), so every failure below is caused by the one defect each case injects.

Env: SKV_BIN (the swiftkv binary; default build/swiftkv). Runs in the ASan+UBSan build too.
"""
from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli_checks import BIN, TRACEBACK_MARKERS, Checks, unprintable  # noqa: E402
from make_bad_files import VOCAB, build_all, build_fuzz  # noqa: E402

N_FUZZ_GGUF = int(os.environ.get("SKV_FUZZ_GGUF", "60"))
N_FUZZ_ST = int(os.environ.get("SKV_FUZZ_ST", "40"))

# Any status 1..127 passes unless a case names one (unknown_subcommand 2, context full 3), and
# stderr may hold notes besides the one error line; raw file bytes must not reach the message.
checks = Checks(BIN, exit_code=None, one_stderr_line=False, printable_stderr=True)


def expect_ok_score(name: str, model: str) -> bool:
    ids = [1, 5, 9, 17, 33, 60, 3]
    p = checks.run(["score", "--model", model, "--token-ids", ",".join(map(str, ids)), "--threads", "1"])
    problems = []
    if p.returncode != 0:
        problems.append(f"exit status {p.returncode}")
    else:
        try:
            lp = json.loads(p.stdout)["token_logprobs"]
            if len(lp) != len(ids) or lp[0] is not None:
                problems.append(f"token_logprobs has {len(lp)} entries / first {lp[0]!r}; want {len(ids)}, null")
            elif not all(isinstance(x, (int, float)) and math.isfinite(x) and x <= 1e-6 for x in lp[1:]):
                problems.append(f"log-probs not finite and <= 0: {lp}")
        except (ValueError, KeyError, TypeError) as e:
            problems.append(f"bad JSON on stdout ({e}): {p.stdout[:200]!r}")
    checks.record(name, problems, f"rc={p.returncode} {p.stdout.strip()[:160]} {p.stderr.strip()[:300]}")
    return not problems


def check_fuzz(fmt: str, mutants: list[tuple[str, str]]) -> None:
    """Structured fuzzing: each mutant may load (exit 0, valid JSON) or be rejected (exactly one
    error line, exit 1..127); it must never crash, hang, or trip a sanitizer."""
    bad, rejected, accepted = [], 0, 0
    for desc, path in mutants:
        try:
            p = checks.run(["score", "--model", path, "--token-ids", "1,2,3,4", "--threads", "1"])
        except subprocess.TimeoutExpired:
            bad.append(f"{desc}: timed out")
            continue
        rc = p.returncode
        why = []
        if rc < 0 or rc >= 128:
            why.append(f"crashed (returncode {rc})")
        for m in TRACEBACK_MARKERS:
            if m in p.stderr:
                why.append(f"stderr contains {m!r}")
        if rc == 0:
            try:
                json.loads(p.stdout)["token_logprobs"]
                accepted += 1
            except (ValueError, KeyError, TypeError):
                why.append("exit 0 without valid JSON")
        elif 0 < rc < 128:
            err = [ln for ln in p.stderr.splitlines() if "error" in ln.lower()]
            if len(err) != 1:
                why.append(f"{len(err)} error lines")
            if (u := unprintable(p.stderr)) is not None:
                why.append(f"error message contains unprintable {u} (raw file bytes echoed unescaped; "
                           f"a NUL cuts the message short)")
            rejected += 1
        if why:
            tail = p.stderr.strip().splitlines()[-3:] if p.stderr.strip() else []
            bad.append(f"{desc}: {'; '.join(why)} | {ascii(' | '.join(tail))[:400]}")
    name = f"fuzz_{fmt}_{len(mutants)}_mutants"
    problems = [f"{len(bad)} of {len(mutants)} mutants misbehaved:\n       " + "\n       ".join(bad[:8])] if bad else []
    checks.record(name, problems,
                  f"{rejected} rejected with one error line, {accepted} loaded fine, no crash / sanitizer report")


# Error output of a command whose message quotes an 8 MB metadata key: the key's prefix and its
# length, the whole stderr (one line) under this many bytes.
MAX_ERROR_BYTES = 1024


def check_bounded_quote(name: str, model: str) -> None:
    """A file whose metadata key is megabytes long: one short error line quoting a bounded prefix
    and the key's full length, non-zero exit, no crash (issue 20: it printed 188 MB)."""
    for cmd in (["score", "--model", model, "--token-ids", "1,2,3"],
                ["generate", "--model", model, "--prompt", "hello", "-n", "2"],
                ["info", "--model", model]):
        p = checks.run(cmd)
        problems = []
        if not 0 < p.returncode < 128:
            problems.append(f"exit status {p.returncode}")
        if len(p.stderr.encode()) > MAX_ERROR_BYTES:
            problems.append(f"{len(p.stderr.encode())} bytes of stderr (bound {MAX_ERROR_BYTES})")
        lines = [ln for ln in p.stderr.splitlines() if "error" in ln.lower()]
        if len(lines) != 1:
            problems.append(f"{len(lines)} error lines")
        if not re.search(r"metadata key '[^']*\.\.\.[^']*' \(\d{7,} bytes\) has unknown value type", p.stderr):
            problems.append("the key is not quoted as a bounded prefix with its length")
        checks.record(f"{name}_{cmd[0]}", problems, f"rc={p.returncode} stderr {len(p.stderr)} bytes: "
                      f"{ascii(p.stderr.strip()[:300])}")


def main() -> int:
    if not checks.have_binary():
        return checks.summary("robustness")
    expect_error = checks.expect_error
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="skv_rob_") as tmp:
        m = build_all(tmp)
        hf, gg = m["hf_valid"], m["gguf_valid"]

        # The valid models work, so each failure below is due to its one injected defect.
        ok_hf = expect_ok_score("valid_hf_dir_scores", hf)
        ok_gguf = expect_ok_score("valid_gguf_scores", gg)
        if not (ok_hf and ok_gguf):
            print("note: a valid tiny model does not load, so the corrupt-file cases below prove less")

        ids = "1,2,3,4"

        def score(model_key: str) -> list[str]:
            return ["score", "--model", m[model_key], "--token-ids", ids]

        # -- model path / config.json ---------------------------------------------------------
        expect_error("model_path_missing", score("missing_path"), r"nowhere/c99.*(exist|no such|not found)")
        expect_error("dir_without_config_json", score("no_config"), r"config\.json")
        expect_error("config_invalid_json", score("config_invalid_json"), r"config\.json.*(json|pars|syntax)|(json|pars|syntax).*config\.json")
        expect_error("config_unknown_architecture", score("config_unknown_arch"), r"gpt_neox|GPTNeoX")
        expect_error("config_heads_not_dividing", score("config_heads_not_dividing"), r"num_attention_heads|divis|head")

        # -- safetensors -----------------------------------------------------------------------
        expect_error("st_truncated_file", score("st_truncated"), r"truncat|exceeds|smaller|past|beyond|size")
        expect_error("st_header_length_past_eof", score("st_header_too_long"), r"header")
        expect_error("st_offsets_past_eof", score("st_offsets_past_end"), r"k_proj.*(exceed|past|beyond|range)")
        expect_error("st_offsets_end_before_begin", score("st_end_before_begin"), r"k_proj.*(data_offsets|end|<)")
        expect_error("st_size_vs_shape_dtype", score("st_size_mismatch"), r"k_proj.*(bytes|size|shape)")
        expect_error("st_unknown_dtype_c64", score("st_dtype_c64"), r"dtype.*C64|C64.*dtype")
        # F8_E4M3 is read (FP8 checkpoints); a 4-byte-per-value range under that tag is the wrong size.
        expect_error("st_f8_size_vs_shape", score("st_dtype_f8"), r"k_proj.*F8_E4M3")
        expect_error("st_shape_vs_config", score("st_shape_vs_config"), r"q_proj.*shape|shape.*q_proj")
        expect_error("st_missing_tensor", score("st_missing_tensor"), r"layers\.1\.mlp\.down_proj")
        expect_error("st_index_missing_shard", score("st_missing_shard"), r"model-00002-of-00002")

        # -- GGUF ------------------------------------------------------------------------------
        expect_error("gguf_bad_magic", score("gguf_bad_magic"), r"magic|not a gguf")
        expect_error("gguf_version_1", score("gguf_version1"), r"version")
        expect_error("gguf_truncated_header", score("gguf_truncated_header"), r"truncat")
        expect_error("gguf_truncated_metadata", score("gguf_truncated_metadata"), r"truncat|exceeds|left in the file")
        expect_error("gguf_truncated_tensor_info", score("gguf_truncated_tensor_info"), r"truncat|exceeds|left in the file")
        expect_error("gguf_absurd_tensor_count", score("gguf_absurd_tensor_count"), r"tensor count")
        expect_error("gguf_absurd_string_length", score("gguf_absurd_string_length"), r"string length")
        expect_error("gguf_tensor_offset_past_eof", score("gguf_offset_past_end"), r"exceeds|past|beyond|out of")
        expect_error("gguf_unknown_tensor_type", score("gguf_unknown_type"), r"type.*99|99.*type")
        expect_error("gguf_misaligned_offset", score("gguf_misaligned_offset"), r"align")
        check_bounded_quote("gguf_huge_key_length", m["gguf_huge_key_length"])

        # -- empty / wrong files ---------------------------------------------------------------
        expect_error("gguf_empty_file", score("gguf_empty"), r"empty|magic|truncat|not a gguf|too small")
        expect_error("st_empty_file", score("st_empty"), r"safetensors.*(empty|truncat|too small|header|size)")
        expect_error("model_is_plain_file", score("plain_file"), r"config\.json.*(gguf|director|format|magic)")
        expect_error("info_on_corrupt_gguf", ["info", "--model", m["gguf_unknown_type"]], r"type.*99|99.*type")
        expect_error("prompt_without_tokenizer", ["generate", "--model", hf, "--prompt", "hello", "--max-tokens", "2"],
                     r"tokenizer")

        # -- runtime input ---------------------------------------------------------------------
        long_ids = ",".join(str(3 + i % 50) for i in range(40))
        expect_error("prompt_longer_than_context",
                     ["generate", "--model", hf, "--token-ids", long_ids, "--ctx-size", "16", "--max-tokens", "4",
                      "--temperature", "0"], r"context", exit_code=3)
        expect_error("prompt_longer_than_context_gguf",
                     ["generate", "--model", gg, "--token-ids", long_ids, "--ctx-size", "16", "--max-tokens", "4",
                      "--temperature", "0"], r"context", exit_code=3)
        # A prompt that is too long is a resource limit (3); a token id no vocabulary has is bad input (1).
        expect_error("token_id_out_of_vocab_score", ["score", "--model", hf, "--token-ids", f"1,2,{VOCAB}"],
                     rf"{VOCAB}.*(vocab|range)|(vocab|range).*{VOCAB}", exit_code=1)
        expect_error("token_id_out_of_vocab_generate",
                     ["generate", "--model", gg, "--token-ids", f"1,{VOCAB + 1000}", "--max-tokens", "2"],
                     rf"{VOCAB + 1000}.*(vocab|range)|(vocab|range).*{VOCAB + 1000}")

        # -- flags -----------------------------------------------------------------------------
        gen = ["generate", "--model", hf]
        expect_error("flag_unknown", gen + ["--token-ids", ids, "--frobnicate", "3"], r"--frobnicate", exit_code=1)
        expect_error("flag_max_tokens_not_int", gen + ["--token-ids", ids, "--max-tokens", "abc"], r"--max-tokens.*abc")
        expect_error("flag_temperature_negative", gen + ["--token-ids", ids, "--temperature", "-1"], r"temperature")
        expect_error("flag_top_p_2", gen + ["--token-ids", ids, "--top-p", "2"], r"top[-_]p")
        expect_error("flag_threads_negative", gen + ["--token-ids", ids, "--threads", "-3"], r"threads")
        expect_error("flag_token_ids_empty_item", gen + ["--token-ids", "1,,2"], r"token-ids|token id")
        expect_error("flag_token_ids_not_numbers", gen + ["--token-ids", "a,b"], r"token-ids.*'a'|'a'.*token")
        expect_error("flag_prompt_and_token_ids", gen + ["--token-ids", ids, "--prompt", "hi"], r"--prompt.*--token-ids|--token-ids.*--prompt")
        expect_error("flag_neither_prompt_nor_ids", gen, r"--prompt.*--token-ids|--token-ids.*--prompt")
        expect_error("flag_missing_value", ["score", "--model", hf, "--token-ids"], r"--token-ids.*value")
        expect_error("flag_missing_model", ["score", "--token-ids", ids], r"--model")
        expect_error("unknown_subcommand", ["frobnicate", "--model", hf], r"frobnicate", exit_code=2)

        # -- structured fuzzing ----------------------------------------------------------------
        fuzz = build_fuzz(os.path.join(tmp, "fuzz"), n_gguf=N_FUZZ_GGUF, n_st=N_FUZZ_ST)
        check_fuzz("safetensors", [(d, p) for f, d, p in fuzz if f == "safetensors"])
        check_fuzz("gguf", [(d, p) for f, d, p in fuzz if f == "gguf"])

    print(f"\n({time.time() - t0:.1f}s)")
    return checks.summary("robustness")


if __name__ == "__main__":
    sys.exit(main())
