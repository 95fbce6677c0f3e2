#!/usr/bin/env python3
"""SwiftKV weights files (`convert --base BASE --out X.safetensors` writes one, `convert
--swiftkv-weights X.safetensors` applies one), checked with numpy, Python safetensors and gguf-py:

* Written: exactly the checkpoint's SwiftKV tensors, as bf16 (round to nearest even of the
  checkpoint's values, computed here), and metadata naming M, G, the architecture and a
  fingerprint of the base.
* Applied to the base (the SmolLM2 Q4_1 GGUF, whose q/k rows llama.cpp permuted; and a tiny HF
  llama with tied and untied variants): a Hugging Face output holds the written tensors exactly
  and every base tensor as a plain conversion writes it; a SwiftKV GGUF holds them in llama.cpp's
  row order (the permutation is written out here), within f16 rounding; both score.
* Refused with a message naming the problem: a base with another fingerprint (unless --any-base,
  which then fails on the shapes), a file that is not a weights file, extra or misshapen tensors,
  flags that conflict with the file's M and G, extraction without --base or against another
  model.
* Shipped: every file under weights/ applies to the fetched base, gives a GGUF with the file's M
  that scores, and has its section in weights/README.md.
Env: SKV_BIN, SKV_MODELS (a missing model is a failure unless SKV_ALLOW_SKIP=1).
"""
from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
import gguf
from safetensors.numpy import load_file, save_file

ROOT = os.environ.get("SKV_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BIN = os.environ.get("SKV_BIN", os.path.join(ROOT, "build", "swiftkv"))
MODELS = os.environ.get("SKV_MODELS", os.path.join(ROOT, "models"))
BASE = os.path.join(MODELS, "SmolLM2-135M-Instruct.Q4_1.gguf")
TINY = os.path.join(ROOT, "tests", "fixtures", "models", "llama_gqa")

failures: list[str] = []
passed = 0


def check(cond: bool, what: str) -> None:
    global passed
    print(("ok   " if cond else "FAIL ") + what)
    if cond:
        passed += 1
    else:
        failures.append(what)


def skv(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([BIN] + args, capture_output=True, text=True, timeout=900)


def bf16_round(x: np.ndarray) -> np.ndarray:
    u = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    return ((((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16).astype(np.uint32)).view(np.float32)


def read_bf16_safetensors(path: str) -> tuple[dict[str, np.ndarray], dict[str, str], dict[str, str]]:
    """Tensors (as float32), metadata and dtypes, parsed from the file's own header (numpy has no bf16)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", {})
    out, dtypes = {}, {}
    for name, h in header.items():
        a, b = h["data_offsets"]
        dtypes[name] = h["dtype"]
        raw = np.frombuffer(data[a:b], dtype=np.uint16 if h["dtype"] == "BF16" else np.float32)
        vals = (raw.astype(np.uint32) << 16).view(np.float32) if h["dtype"] == "BF16" else raw
        out[name] = vals.reshape(h["shape"])
    return out, meta, dtypes


def perturbed_checkpoint(tmp: str, base: str, name: str, extra: list[str]) -> str:
    """A SwiftKV checkpoint of `base` whose SwiftKV tensors differ from any initialisation (as a
    trained one does): convert, then add seeded noise to every *_swiftkv tensor."""
    out = os.path.join(tmp, name)
    r = skv(["convert", "--model", base, "--out", out, "--dtype", "f32"] + extra)
    if r.returncode != 0:
        raise RuntimeError(f"convert failed: {r.stderr[-500:]}")
    path = os.path.join(out, "model.safetensors")
    t = load_file(path)
    rng = np.random.default_rng(7)
    for k in t:
        if "_swiftkv" in k:
            t[k] = (t[k] + 0.05 * rng.standard_normal(t[k].shape) * (np.std(t[k]) + 1e-3)).astype(np.float32)
    save_file(t, path, metadata={"format": "pt"})
    return out


def gguf_permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's convert_hf_to_gguf.py permutation of q/k rows (HF order -> GGUF order)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def roundtrip(tmp: str, label: str, base: str, ckpt: str) -> str | None:
    """Extract, check the file, apply to the base as an HF directory, check the tensors."""
    w = os.path.join(tmp, label + ".safetensors")
    r = skv(["convert", "--model", ckpt, "--base", base, "--out", w, "--description", "test run " + label])
    check(r.returncode == 0, f"{label}: extraction runs ({r.stderr.strip()[-300:]})")
    if r.returncode != 0:
        return None
    src = load_file(os.path.join(ckpt, "model.safetensors"))
    cfg = json.load(open(os.path.join(ckpt, "config.json")))
    wt, meta, dtypes = read_bf16_safetensors(w)
    want = sorted(k for k in src if "_swiftkv" in k)
    check(sorted(wt) == want, f"{label}: the file holds exactly the {len(want)} SwiftKV tensors")
    check(set(dtypes.values()) == {"BF16"}, f"{label}: all bf16 ({set(dtypes.values())})")
    check(all(np.array_equal(wt[k], bf16_round(src[k])) for k in want),
          f"{label}: values are the checkpoint's rounded to bf16 (nearest even)")
    check(meta.get("format") == "swiftkv-weights" and meta.get("num_key_value_layers") ==
          str(cfg["num_key_value_layers"]) and meta.get("key_value_group_size") == str(cfg["key_value_group_size"])
          and meta.get("architecture") == cfg["model_type"].replace("_swiftkv", "")
          and len(meta.get("base_fingerprint", "")) == 16 and meta.get("description") == "test run " + label,
          f"{label}: metadata {meta}")
    out = os.path.join(tmp, label + "-applied")
    r = skv(["convert", "--model", base, "--swiftkv-weights", w, "--out", out, "--dtype", "f32"])
    check(r.returncode == 0, f"{label}: applying to the base runs ({r.stderr.strip()[-300:]})")
    if r.returncode != 0:
        return None
    got = load_file(os.path.join(out, "model.safetensors"))
    check(sorted(got) == sorted(src), f"{label}: the rebuilt model has the checkpoint's tensors")
    check(all(np.array_equal(got[k], wt[k]) for k in want), f"{label}: its SwiftKV tensors are the file's exactly")
    check(all(np.array_equal(got[k], src[k]) for k in src if k not in want),
          f"{label}: its base tensors are those a plain conversion writes, bit for bit")
    s = skv(["score", "--model", out, "--token-ids", "1,2,3,4,5,6"])
    check(s.returncode == 0, f"{label}: the rebuilt model scores ({s.stderr.strip()[-200:]})")
    return w


def main() -> int:
    if not os.path.exists(BASE):
        msg = f"{BASE} missing (scripts/fetch_model.sh)"
        if os.environ.get("SKV_ALLOW_SKIP") == "1":
            print("SKIP", msg)
            return 0
        print("FAIL", msg)
        return 1
    with tempfile.TemporaryDirectory(prefix="skv_weights_") as tmp:
        # A GGUF base with permuted q/k rows.
        ckpt = perturbed_checkpoint(tmp, BASE, "smol-skv", ["--swiftkv-fraction", "0.5"])
        w = roundtrip(tmp, "smollm2", BASE, ckpt)
        if w:
            out = os.path.join(tmp, "smol-applied.gguf")
            r = skv(["convert", "--model", BASE, "--swiftkv-weights", w, "--out", out])
            check(r.returncode == 0, f"a SwiftKV GGUF from the weights ({r.stderr.strip()[-300:]})")
            if r.returncode == 0:
                wt, _, _ = read_bf16_safetensors(w)
                rd = gguf.GGUFReader(out)
                cfg = json.load(open(os.path.join(ckpt, "config.json")))
                tensors = {t.name: t for t in rd.tensors}
                worst = 0.0
                for layer in range(cfg["num_key_value_layers"], cfg["num_hidden_layers"]):
                    for proj, heads in (("q", cfg["num_attention_heads"]), ("k", cfg["num_key_value_heads"])):
                        t = tensors[f"blk.{layer}.attn_{proj}_swiftkv.weight"]
                        g = np.array(t.data, dtype=np.float32).reshape(wt[f"model.layers.{layer}.self_attn.{proj}_proj_swiftkv.weight"].shape)
                        ref = gguf_permute(wt[f"model.layers.{layer}.self_attn.{proj}_proj_swiftkv.weight"], heads)
                        worst = max(worst, float(np.max(np.abs(g - ref)) / np.max(np.abs(ref))))
                check(worst < 1e-3, f"the GGUF's q/k_proj_swiftkv are the file's in llama.cpp's row order "
                      f"(max relative difference {worst:.1e}, f16 rounding)")
                s = skv(["score", "--model", out, "--token-ids", "1,2,3,4,5,6"])
                check(s.returncode == 0, f"the SwiftKV GGUF scores ({s.stderr.strip()[-200:]})")

        # An HF base (no permutation), AcrossKV G = 2.
        tiny_ckpt = perturbed_checkpoint(tmp, TINY, "tiny-skv", ["--num-key-value-layers", "1",
                                                                 "--key-value-group-size", "2"])
        tw = roundtrip(tmp, "tiny", TINY, tiny_ckpt)

        # Refusals.
        if w and tw:
            r = skv(["convert", "--model", TINY, "--swiftkv-weights", w, "--out", os.path.join(tmp, "x1")])
            check(r.returncode == 1 and "fingerprint" in r.stderr and "--any-base" in r.stderr,
                  f"another base is refused by its fingerprint: {r.stderr.strip()}")
            r = skv(["convert", "--model", TINY, "--swiftkv-weights", w, "--any-base", "--out", os.path.join(tmp, "x2")])
            check(r.returncode == 1 and ("num_key_value_layers" in r.stderr or "shape" in r.stderr or " is [" in r.stderr),
                  f"--any-base on a model of other shapes fails on them: {r.stderr.strip()}")
            r = skv(["convert", "--model", TINY, "--swiftkv-weights", os.path.join(TINY, "model.safetensors"),
                     "--out", os.path.join(tmp, "x3")])
            check(r.returncode == 1 and "not a SwiftKV weights file" in r.stderr, f"a plain safetensors file: {r.stderr.strip()}")
            r = skv(["convert", "--model", TINY, "--swiftkv-weights", tw, "--swiftkv-fraction", "0.5",
                     "--out", os.path.join(tmp, "x4")])
            check(r.returncode == 1 and "--swiftkv-fraction" in r.stderr, f"a conflicting flag: {r.stderr.strip()}")
            # Tampered copies of the tiny file: an extra tensor, a wrong shape (via its own header).
            tensors, meta, _ = read_bf16_safetensors(tw)
            for label, change in (("an extra", lambda t: t.update({"model.layers.0.mlp.up_proj.weight": np.zeros((2, 2), np.float32)})),
                                  ("a misshapen", lambda t: t.update({k: v[:-1] for k, v in list(t.items())[:1]}))):
                t = dict(tensors)
                change(t)
                bad = os.path.join(tmp, f"bad-{label.split()[1]}.safetensors")
                save_file({k: np.ascontiguousarray(v) for k, v in t.items()}, bad, metadata=meta)
                r = skv(["convert", "--model", TINY, "--swiftkv-weights", bad, "--out", os.path.join(tmp, "x-" + label.split()[1])])
                check(r.returncode == 1 and ("up_proj" in r.stderr if "extra" in label else "needs [" in r.stderr),
                      f"a weights file with {label} tensor: {r.stderr.strip()}")
            r = skv(["convert", "--model", tiny_ckpt, "--out", os.path.join(tmp, "x5.safetensors")])
            check(r.returncode == 1 and "--base" in r.stderr, f"extraction without --base: {r.stderr.strip()}")
            r = skv(["convert", "--model", ckpt, "--base", TINY, "--out", os.path.join(tmp, "x6.safetensors")])
            check(r.returncode == 1 and os.path.basename(TINY) in r.stderr, f"extraction against another model: {r.stderr.strip()}")
            check(not any(n.startswith("x") for n in os.listdir(tmp)), "no refused command left an output behind")

        # Every weights file the repository ships applies to the pinned base and is documented.
        shipped_dir = os.path.join(ROOT, "weights")
        shipped = sorted(f for f in os.listdir(shipped_dir) if f.endswith(".safetensors"))
        check(len(shipped) > 0, f"weights/ ships SwiftKV weights files ({shipped})")
        readme = open(os.path.join(shipped_dir, "README.md")).read()
        for name in shipped:
            _, meta, _ = read_bf16_safetensors(os.path.join(shipped_dir, name))
            check(meta.get("format") == "swiftkv-weights", f"weights/{name} is a SwiftKV weights file")
            check(f"## {name}" in readme, f"weights/README.md has a section on {name}")
            out = os.path.join(tmp, "shipped-" + name.replace(".safetensors", ".gguf"))
            r = skv(["convert", "--model", BASE, "--swiftkv-weights", os.path.join(shipped_dir, name), "--out", out])
            check(r.returncode == 0, f"weights/{name} applies to the fetched base ({r.stderr.strip()[-300:]})")
            if r.returncode == 0:
                m = gguf.GGUFReader(out).fields
                key = next((k for k in m if k.endswith(".num_key_value_layers")), None)
                got = int(m[key].parts[-1][0]) if key else None
                check(got is not None and str(got) == str(meta.get("num_key_value_layers")),
                      f"the GGUF built from weights/{name} has the file's M ({got} vs {meta.get('num_key_value_layers')})")
                s = skv(["score", "--model", out, "--token-ids", "1,2,3,4,5,6"])
                check(s.returncode == 0, f"the model built from weights/{name} scores ({s.stderr.strip()[-200:]})")
    print(f"{passed} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
