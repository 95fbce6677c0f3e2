#!/usr/bin/env python3
"""Oracle: the SwiftKV GGUF (`swiftkv convert --model base.gguf --out skv.gguf`) of SmolLM2-135M
Q4_1, read back by llama.cpp's own Python reader (gguf-py) and run by swiftkv.

* File (gguf-py): every metadata entry of the base is there with the same type and value, every
  base tensor with the same type, shape and bytes; swiftkv.num_key_value_layers and
  swiftkv.key_value_group_size hold M and G; the SwiftKV tensors are there with the asked type.
* Values (numpy on gguf-py's dequantisation of the base): norm_swiftkv = layer M's attn_norm,
  q_swiftkv = layer's attn_q, each group leader's k/v_swiftkv = the mean of its group's attn_k /
  attn_v; exact for --swiftkv-dtype f32, within the rounding of f16 and q8_0.
* Teacher path: `score --no-swiftkv` on the SwiftKV GGUF equals the base GGUF's exactly.
* SwiftKV path: the log-probs equal those of the F32 SwiftKV checkpoint `convert --dtype f32`
  makes from the same base (the same dequantised weights) within the gap that Q4_1's 8-bit
  activations open between the base GGUF and its F32 teacher path: the mean gap of the SwiftKV
  path may be at most 2x the base's (the undistilled SwiftKV model amplifies small differences
  more than the base: measured 1.0-1.45x), and the path must differ from the teacher's.
* It loads where models load: generate and info.
Env: SKV_BIN, SKV_MODELS (a missing model is a failure unless SKV_ALLOW_SKIP=1).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import gguf

ROOT = os.environ.get("SKV_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BIN = os.environ.get("SKV_BIN", os.path.join(ROOT, "build", "swiftkv"))
MODELS = os.environ.get("SKV_MODELS", os.path.join(ROOT, "models"))
BASE = os.path.join(MODELS, "SmolLM2-135M-Instruct.Q4_1.gguf")
PROMPT = ("The old lighthouse keeper climbed the spiral stairs every evening, counting each of the one hundred "
          "and twelve steps, and at the top he wound the great clockwork that turned the lamp. Ships passing "
          "in the night never saw him, but they trusted the light, and the light had not failed in forty years.")

failures: list[str] = []
passed = 0


def check(name: str, ok: bool, detail: str = "") -> None:
    global passed
    if ok:
        passed += 1
        print(f"ok   {name}" + (f": {detail}" if detail else ""))
    else:
        failures.append(name)
        print(f"FAIL {name}: {detail}")


def run(args: list[str]) -> str:
    p = subprocess.run([BIN] + args, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:4])}: exit {p.returncode}: {p.stderr[-600:]}")
    return p.stdout


def score(model: str, extra: list[str] = ()) -> np.ndarray:
    out = json.loads(run(["score", "--model", model, "--prompt", PROMPT, "-t", "2", *extra]))
    return np.array(out["token_logprobs"][1:], dtype=np.float64)


def dequant(t) -> np.ndarray:
    """gguf-py's dequantisation, in the file's row-major (out, in) layout."""
    return gguf.quants.dequantize(t.data, t.tensor_type).reshape([int(x) for x in reversed(t.shape)])


def check_file(path: str, m: int, g: int, dtype: str) -> None:
    base, skv = gguf.GGUFReader(BASE), gguf.GGUFReader(path)
    tag = f"{os.path.basename(path)}"
    bad = []
    for k, f in base.fields.items():
        o = skv.fields.get(k)
        if o is None or o.types != f.types or len(o.parts) != len(f.parts) or \
                any(not np.array_equal(a, b) for a, b in zip(o.parts[1:], f.parts[1:])):
            bad.append(k)
    check(f"{tag}: base metadata kept", not bad, f"{len(base.fields)} entries" if not bad else f"differ: {bad[:5]}")
    layers_key = skv.fields.get("swiftkv.num_key_value_layers")
    group_key = skv.fields.get("swiftkv.key_value_group_size")
    got = (int(layers_key.parts[-1][0]) if layers_key else None, int(group_key.parts[-1][0]) if group_key else None)
    check(f"{tag}: swiftkv keys", got == (m, g), f"M, G = {got}")

    st = {t.name: t for t in skv.tensors}
    bad = [t.name for t in base.tensors
           if t.name not in st or st[t.name].tensor_type != t.tensor_type or
           list(st[t.name].shape) != list(t.shape) or not np.array_equal(st[t.name].data, t.data)]
    check(f"{tag}: base tensors byte for byte", not bad, f"{len(base.tensors)} tensors" if not bad else str(bad[:5]))

    bt = {t.name: t for t in base.tensors}
    n_layers = int(base.fields["llama.block_count"].parts[-1][0])
    want_type = {"f32": gguf.GGMLQuantizationType.F32, "f16": gguf.GGMLQuantizationType.F16,
                 "q8_0": gguf.GGMLQuantizationType.Q8_0}[dtype]
    # Worst error the stored type may add to a value of magnitude |x| (q8_0: half a step of the
    # block's scale, amax/127).
    tol_rel = {"f32": 1e-6, "f16": 1e-3, "q8_0": 1.0 / 127}[dtype]
    worst, problems = 0.0, []

    def compare(name: str, want: np.ndarray, exact_type: bool = True) -> None:
        nonlocal worst
        t = st.get(name)
        if t is None:
            problems.append(f"{name} missing")
            return
        if exact_type and t.tensor_type != want_type:
            problems.append(f"{name} is {t.tensor_type.name}")
        have = dequant(t)
        scale = np.abs(want).max() if dtype != "q8_0" else np.abs(want).reshape(want.shape[0], -1, 32).max(-1).max()
        err = np.abs(have - want).max() / max(scale, 1e-12)
        worst = max(worst, err)
        if have.shape != want.shape or err > tol_rel:
            problems.append(f"{name}: error {err:.2e} of scale")

    norm = dequant(bt[f"blk.{m}.attn_norm.weight"])
    t = st.get("output_norm_swiftkv.weight")
    if t is None or t.tensor_type != gguf.GGMLQuantizationType.F32 or not np.array_equal(dequant(t), norm):
        problems.append("output_norm_swiftkv != layer M's attn_norm")
    for layer in range(m, n_layers):
        compare(f"blk.{layer}.attn_q_swiftkv.weight", dequant(bt[f"blk.{layer}.attn_q.weight"]))
    for leader in range(m, n_layers, g):
        for p in ("k", "v"):
            mean = np.mean([dequant(bt[f"blk.{j}.attn_{p}.weight"]).astype(np.float64)
                            for j in range(leader, leader + g)], axis=0)
            compare(f"blk.{leader}.attn_{p}_swiftkv.weight", mean)
    extra = sorted(set(st) - set(bt))
    n_want = 1 + (n_layers - m) + 2 * (n_layers - m) // g
    if len(extra) != n_want:
        problems.append(f"{len(extra)} added tensors, want {n_want}")
    check(f"{tag}: SwiftKV tensors", not problems, f"worst error {worst:.2e} of scale ({dtype})" if not problems
          else "; ".join(problems[:4]))


def main() -> int:
    if not os.path.exists(BASE):
        msg = f"model not found: {BASE} (run scripts/fetch_model.sh)"
        if os.environ.get("SKV_ALLOW_SKIP") == "1":
            print("SKIP " + msg)
            return 0
        print("FAIL " + msg)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        variants = [(15, 1, "f32"), (15, 1, "q8_0"), (15, 3, "f16")]
        files = {}
        for m, g, dtype in variants:
            out = os.path.join(tmp, f"skv-m{m}-g{g}-{dtype}.gguf")
            run(["convert", "--model", BASE, "--out", out, "--num-key-value-layers", str(m),
                 "--key-value-group-size", str(g), "--swiftkv-dtype", dtype])
            files[(m, g, dtype)] = out
            check_file(out, m, g, dtype)

        base_lp = score(BASE)
        for key, path in files.items():
            teacher = score(path, ["--no-swiftkv"])
            check(f"{os.path.basename(path)}: teacher path = base GGUF", np.array_equal(teacher, base_lp),
                  f"max |d| {np.abs(teacher - base_lp).max():.3g}")

        # The F32 SwiftKV checkpoint with the same dequantised weights (and F32 SwiftKV tensors).
        for (m, g) in [(15, 1), (15, 3)]:
            hf = os.path.join(tmp, f"hf-m{m}-g{g}")
            run(["convert", "--model", BASE, "--out", hf, "--num-key-value-layers", str(m),
                 "--key-value-group-size", str(g), "--dtype", "f32"])
            hf_teacher, hf_skv = score(hf, ["--no-swiftkv"]), score(hf)
            base_gap = np.abs(base_lp - hf_teacher)
            for (mm, gg, dtype), path in files.items():
                if (mm, gg) != (m, g):
                    continue
                lp = score(path)
                gap = np.abs(lp - hf_skv)
                moved = np.abs(lp - base_lp).max()
                check(f"{os.path.basename(path)}: SwiftKV path = F32 checkpoint's",
                      gap.mean() <= 2 * base_gap.mean() and gap.max() <= 2 * base_gap.max() + 0.1 and moved > 0.1,
                      f"mean |d| {gap.mean():.4f} max {gap.max():.3f}; Q4_1 base vs its F32: mean "
                      f"{base_gap.mean():.4f} max {base_gap.max():.3f}; vs teacher max {moved:.2f}")

        path = files[(15, 1, "q8_0")]
        gen = json.loads(run(["generate", "--model", path, "--prompt", "Hello", "--max-tokens", "8", "--temperature",
                              "0", "--ignore-eos", "--json", "-t", "2"]))
        check("generate runs the SwiftKV GGUF", gen.get("finish_reason") == "length" and gen.get("text"),
              str(gen)[:120])
        info = json.loads(run(["info", "--model", path, "--json"]))
        check("info reports SwiftKV", json.dumps(info).find("num_key_value_layers") >= 0, str(info)[:160])
    print(f"swiftkv gguf: {passed} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
