#!/usr/bin/env python3
"""`swiftkv convert` with bad arguments: each case must exit 1 with exactly one stderr line that
contains "error" and names the problem (a per-case regex), never crash or print a traceback or
sanitizer report, and leave nothing behind: no output directory, no temporary sibling, and an
existing output directory untouched.

Cases: M >= L, M < 1, G < 1, (L - M) % G != 0, fraction outside (0, 1) or rounding to M = 0 / L,
both / neither of M and F, malformed numbers, unknown dtype, a model that is already SwiftKV, a
non-empty output directory without --force, --force on a directory that is not a model, output
over the input, missing parent, missing flags, unknown flags, a missing model. SwiftKV GGUF
output (--out X.gguf): from a Hugging Face base, --dtype with it, --swiftkv-dtype without it or
unknown, an existing file without --force, a SwiftKV GGUF converted again, and a GGUF whose
swiftkv.* keys are impossible (refused on load, naming the key). Calibration flags without
--calibrate, bad values, missing or empty data, an out-of-range token id.

Env: SKV_BIN (default build/swiftkv), SKV_SOURCE_DIR. Runs in the ASan+UBSan build too.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli_checks import BIN, ROOT, Checks  # noqa: E402

BASE = os.path.join(ROOT, "tests", "fixtures", "models", "llama_gqa")  # 3 layers


def main() -> int:
    checks = Checks(BIN, "convert")
    if not checks.have_binary():
        return checks.summary("convert args")
    tmp = tempfile.mkdtemp(prefix="skv_convert_args_")
    fixtures_before = sorted(os.listdir(os.path.dirname(BASE)))
    try:
        out = os.path.join(tmp, "out")
        m1 = ["--model", BASE, "--out", out]

        def case(name, extra, keyword, model_args=m1):
            checks.expect_error(name, model_args + extra, keyword, tmp)

        case("m_equals_layers", ["--num-key-value-layers", "3"], r"num_key_value_layers.*\[1, 2\].*3 layers")
        case("m_above_layers", ["--num-key-value-layers", "40"], r"num_key_value_layers.*\[1, 2\]")
        case("m_zero", ["--num-key-value-layers", "0"], r"--num-key-value-layers must be at least 1, got 0")
        case("m_negative", ["--num-key-value-layers", "-2"], r"--num-key-value-layers must be at least 1")
        case("m_not_integer", ["--num-key-value-layers", "1.5"], r"--num-key-value-layers expects an integer")
        case("g_zero", ["--num-key-value-layers", "1", "--key-value-group-size", "0"],
             r"--key-value-group-size must be at least 1")
        case("g_not_dividing", ["--num-key-value-layers", "1", "--key-value-group-size", "3"],
             r"key_value_group_size 3 must divide the 2 layers")
        case("g_too_big", ["--num-key-value-layers", "2", "--key-value-group-size", "2"],
             r"key_value_group_size 2 must divide the 1 layers")
        for frac in ("0", "1", "1.5", "-0.25", "nan", "inf"):
            case(f"fraction_{frac}", ["--swiftkv-fraction", frac],
                 r"--swiftkv-fraction must be strictly between 0 and 1")
        case("fraction_not_number", ["--swiftkv-fraction", "half"], r"--swiftkv-fraction expects a number")
        case("fraction_rounds_to_m0", ["--swiftkv-fraction", "0.9"], r"num_key_value_layers = 0")
        case("fraction_rounds_to_mL", ["--swiftkv-fraction", "0.1"], r"num_key_value_layers = 3")
        case("both_m_and_f", ["--num-key-value-layers", "1", "--swiftkv-fraction", "0.5"],
             r"exactly one of --num-key-value-layers and --swiftkv-fraction")
        case("neither_m_nor_f", [], r"exactly one of --num-key-value-layers and --swiftkv-fraction")
        case("unknown_dtype", ["--num-key-value-layers", "1", "--dtype", "q4_1"], r"unknown dtype 'q4_1'.*f32")
        case("missing_model", ["--out", out, "--num-key-value-layers", "1"], r"--model", model_args=[])
        case("missing_out", ["--model", BASE, "--num-key-value-layers", "1"], r"--out", model_args=[])
        case("model_not_found", ["--model", os.path.join(tmp, "nope"), "--out", out, "--num-key-value-layers", "1"],
             r"nope.*does not exist", model_args=[])
        case("unknown_flag", ["--num-key-value-layers", "1", "--layers", "2"], r"unknown flag --layers")
        case("positional", ["--num-key-value-layers", "1", "extra"], r"unexpected argument 'extra'")
        case("out_parent_missing", ["--num-key-value-layers", "1"], r"parent directory.*does not exist",
             model_args=["--model", BASE, "--out", os.path.join(tmp, "no", "such", "out")])
        case("out_is_input", ["--num-key-value-layers", "1", "--force"], r"holds the input model",
             model_args=["--model", BASE, "--out", BASE])

        # An output directory that exists and is not empty.
        os.makedirs(out)
        with open(os.path.join(out, "notes.txt"), "w") as f:
            f.write("keep me\n")
        case("out_not_empty", ["--num-key-value-layers", "1"], r"out.*is not empty.*--force")
        case("force_on_non_model_dir", ["--num-key-value-layers", "1", "--force"], r"not a model directory")
        with open(os.path.join(tmp, "file"), "w") as f:
            f.write("x")
        case("out_is_file", ["--num-key-value-layers", "1", "--force"], r"not a directory",
             model_args=["--model", BASE, "--out", os.path.join(tmp, "file")])

        # A SwiftKV checkpoint cannot be converted again.
        skv_dir = os.path.join(tmp, "swiftkv_model")
        p = checks.run(["--model", BASE, "--out", skv_dir, "--num-key-value-layers", "1"])
        if p.returncode != 0:
            checks.record("setup_valid_convert", [f"exit status {p.returncode}"], p.stderr.strip()[:500])
        else:
            checks.record("setup_valid_convert", [])
            case("already_swiftkv", ["--num-key-value-layers", "1"], r"already a SwiftKV model",
                 model_args=["--model", skv_dir, "--out", os.path.join(tmp, "again")])
        # SwiftKV GGUF output.
        import make_bad_files as mbf
        base_gguf = mbf.write_gguf(os.path.join(tmp, "base.gguf"))
        g_out = os.path.join(tmp, "skv.gguf")
        case("gguf_from_hf", ["--num-key-value-layers", "1"], r"made from a GGUF base model",
             model_args=["--model", BASE, "--out", g_out])
        case("gguf_with_dtype", ["--num-key-value-layers", "1", "--dtype", "f16"], r"--dtype applies to a directory",
             model_args=["--model", base_gguf, "--out", g_out])
        case("swiftkv_dtype_for_dir", ["--num-key-value-layers", "1", "--swiftkv-dtype", "f16"],
             r"--swiftkv-dtype applies to a SwiftKV GGUF", model_args=["--model", base_gguf, "--out", out + "2"])
        case("swiftkv_dtype_unknown", ["--num-key-value-layers", "1", "--swiftkv-dtype", "q4_1"],
             r"--swiftkv-dtype must be f32, f16 or q8_0", model_args=["--model", base_gguf, "--out", g_out])
        p = checks.run(["--model", base_gguf, "--out", g_out, "--num-key-value-layers", "1", "--swiftkv-dtype", "f16"])
        checks.record("gguf_valid_convert", [] if p.returncode == 0 and os.path.exists(g_out) else
                      [f"exit status {p.returncode}"], p.stderr.strip()[:300])
        case("gguf_out_exists", ["--num-key-value-layers", "1"], r"already exists.*--force",
             model_args=["--model", base_gguf, "--out", g_out])
        case("gguf_already_swiftkv", ["--num-key-value-layers", "1"], r"already a SwiftKV model",
             model_args=["--model", g_out, "--out", os.path.join(tmp, "again.gguf")])
        # Calibration: its flags without --calibrate, bad values, unreadable or empty data, a
        # token id the model does not have. Each fails before anything is written.
        one = ["--num-key-value-layers", "1"]
        c_args = ["--model", BASE, "--out", os.path.join(tmp, "calib_out")]
        case("calib_tokens_alone", one + ["--calibration-tokens", "100"], r"--calibration-tokens needs --calibrate")
        case("calib_ridge_alone", one + ["--calibration-ridge", "0.1"], r"--calibration-ridge needs --calibrate")
        case("calib_q_alone", one + ["--calibrate-q"], r"--calibrate-q needs --calibrate")
        calib = os.path.join(tmp, "calib.jsonl")
        with open(calib, "w") as f:
            f.write('{"token_ids": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]}\n')
        case("calib_missing_file", one + ["--calibrate", os.path.join(tmp, "nope.txt")],
             r"--calibrate: .*nope.txt is not a readable file")
        case("calib_empty_name", one + ["--calibrate", calib + ","], r"--calibrate: empty file name")
        case("calib_tokens_zero", one + ["--calibrate", calib, "--calibration-tokens", "0"],
             r"--calibration-tokens must be at least 1, got 0")
        case("calib_seq_len_bad", one + ["--calibrate", calib, "--calibration-seq-len", "x"],
             r"--calibration-seq-len expects an integer")
        case("calib_ridge_negative", one + ["--calibrate", calib, "--calibration-ridge", "-1"],
             r"--calibration-ridge must be a finite number >= 0")
        empty = os.path.join(tmp, "empty.jsonl")
        open(empty, "w").close()
        case("calib_no_tokens", one + ["--calibrate", empty], r"calibration data holds no tokens|no documents", model_args=c_args)
        big_id = os.path.join(tmp, "big_id.jsonl")
        with open(big_id, "w") as f:
            f.write('{"token_ids": [1, 2, 99999]}\n')
        case("calib_id_out_of_range", one + ["--calibrate", big_id], r"99999.*vocabulary size 512|out of range", model_args=c_args)
        case("calib_gguf_no_tokens", one + ["--calibrate", empty], r"calibration data holds no tokens|no documents",
             model_args=["--model", base_gguf, "--out", os.path.join(tmp, "c.gguf")])
        left = [f for f in os.listdir(tmp) if ".tmp." in f]
        checks.record("gguf_no_temporaries", [f"left behind {left}"] if left else [])

        import gguf
        bad_keys = os.path.join(tmp, "bad_keys.gguf")
        w = gguf.GGUFWriter(bad_keys, "llama")
        r = gguf.GGUFReader(base_gguf)
        w.add_uint32("swiftkv.num_key_value_layers", 99)
        for field in r.fields.values():
            if field.name.startswith("GGUF.") or field.name == "general.architecture":
                continue
            w.add_key_value(field.name, field.contents(), field.types[0],
                            sub_type=field.types[-1] if field.types[0] == gguf.GGUFValueType.ARRAY else None)
        for t in r.tensors:
            w.add_tensor(t.name, t.data, raw_shape=list(reversed([int(x) for x in t.shape])), raw_dtype=t.tensor_type)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        checks.expect_error("gguf_bad_swiftkv_keys", ["--model", bad_keys, "--out", os.path.join(tmp, "x"),
                                                      "--num-key-value-layers", "1"], r"num_key_value_layers", tmp)

        # Nothing (e.g. a temporary sibling of --out) was left next to the input model.
        left = sorted(set(os.listdir(os.path.dirname(BASE))) - set(fixtures_before))
        checks.record("fixtures_dir_untouched", [f"left behind {left}"] if left else [])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return checks.summary("convert args")


if __name__ == "__main__":
    sys.exit(main())
