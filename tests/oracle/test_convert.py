#!/usr/bin/env python3
"""Oracle: `swiftkv convert` output read back independently with numpy (own safetensors reader,
gguf's dequantisation, HF `tokenizers`), never through swiftkv's own loader.

A. Tiny HF fixtures (tests/fixtures/models/): config.json fields; norm_swiftkv == layer M's
   input_layernorm; q_proj_swiftkv == q_proj; each leader's k/v_proj_swiftkv (and biases) ==
   the mean over its group (G = 1, 2; qwen2_bias has biases); Qwen3's q_norm_swiftkv == q_norm and
   each leader's k_norm_swiftkv == the mean of its group's k_norm (docs/swiftkv.md#checkpoint-layout); the written
   model_type is the source architecture's SwiftKV variant (llama_swiftkv, qwen2_swiftkv,
   qwen3_swiftkv, mistral_swiftkv), Mistral's sliding_window kept; every source tensor unchanged;
   teacher round trip: `score --model OUT --no-swiftkv` == `score --model BASE` within 1e-5 per
   token; the SwiftKV path of the output runs.
B. SmolLM2-135M-Instruct Q4_1 GGUF -> f32 HF directory (--swiftkv-fraction 0.5, G = 3): every
   written tensor equals gguf.quants.dequantize of its source with q/k rows un-permuted (numpy
   here: llama.cpp permuted with reshape(n_head, 2, D/2, in).swapaxes(1, 2)); the SwiftKV tensors
   are the copies / group means of those; teacher scores equal those of the same GGUF dequantised
   to F32 (rope on permuted rows vs rotate_half on un-permuted ones: the same math); the
   tokenizer.json loaded by HF `tokenizers` encodes a few hundred strings exactly like
   `swiftkv tokenize --model GGUF`; the chat template, special tokens and ids carry over.

Env: SKV_BIN, SKV_SOURCE_DIR, SKV_MODELS (holding SmolLM2-135M-Instruct.Q4_1.gguf), SKV_DATA.
A missing model is a failure unless SKV_ALLOW_SKIP=1. Prints "convert oracle: N passed, M failed".
"""
from __future__ import annotations

import json
import math
import os
import random
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("SKV_SOURCE_DIR", os.path.dirname(os.path.dirname(HERE)))
BIN = os.environ.get("SKV_BIN", os.path.join(SRC, "build", "swiftkv"))
MODELS = os.environ.get("SKV_MODELS", os.path.join(SRC, "models"))
DATA = os.environ.get("SKV_DATA", os.path.join(SRC, "..", "shared", "data"))
FIXTURES = os.path.join(SRC, "tests", "fixtures", "models")
GGUF = os.path.join(MODELS, "SmolLM2-135M-Instruct.Q4_1.gguf")
TEACHER_TOL = 1e-5  # same weights, same engine, same math
F32_GGUF_TOL = 1e-4  # rope on permuted rows vs un-permuted rows: summation order differs
TIMEOUT_S = 600

sys.path.insert(0, HERE)


# ----------------------------------------------------------------------------------------------
# helpers


class Results:
    def __init__(self):
        self.passed = 0
        self.failed: list[str] = []

    def check(self, what: str, ok: bool, detail: str = ""):
        if ok:
            self.passed += 1
        else:
            self.failed.append(what)
            print(f"FAIL {what}: {detail}", flush=True)


def run_skv(args: list[str]) -> subprocess.CompletedProcess:
    p = subprocess.run([BIN] + args, capture_output=True, text=True, timeout=TIMEOUT_S)
    if p.returncode != 0:
        raise RuntimeError(f"exit {p.returncode}: swiftkv {' '.join(args)[:300]}\n{p.stderr.strip()[-1500:]}")
    return p


def score(model: str, ids: list[int], extra: list[str] = ()) -> list[float]:
    out = json.loads(run_skv(["score", "--model", model, "--token-ids", ",".join(map(str, ids)), *extra])
                     .stdout.strip().splitlines()[-1])
    return out["token_logprobs"]


def max_score_diff(a: list, b: list) -> float:
    if len(a) != len(b) or a[0] is not None or b[0] is not None:
        return math.inf
    return max((abs(x - y) for x, y in zip(a[1:], b[1:])), default=0.0)


def read_safetensors(path: str) -> dict[str, tuple[str, np.ndarray]]:
    """name -> (dtype tag, float32 array); F32 stays a view of the file."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    raw = np.memmap(path, dtype=np.uint8, mode="r")
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        buf = raw[8 + n + a: 8 + n + b]
        tag = info["dtype"]
        if tag == "F32":
            arr = buf.view("<f4")
        elif tag == "F16":
            arr = buf.view("<f2").astype(np.float32)
        elif tag == "BF16":
            arr = (buf.view("<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            raise ValueError(f"{path}: unexpected dtype {tag} for {name}")
        out[name] = (tag, arr.reshape(info["shape"]))
    return out


def read_hf_tensors(d: str) -> dict[str, tuple[str, np.ndarray]]:
    index = os.path.join(d, "model.safetensors.index.json")
    if not os.path.exists(index):
        return read_safetensors(os.path.join(d, "model.safetensors"))
    with open(index) as f:
        shards = sorted(set(json.load(f)["weight_map"].values()))
    out = {}
    for s in shards:
        out.update(read_safetensors(os.path.join(d, s)))
    return out


def bf16_round(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 (round to nearest even) -> float32."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return (u.astype(np.uint32) << 16).view(np.float32)


def group_mean(arrays: list[np.ndarray]) -> np.ndarray:
    """Sequential float32 sum times 1/G (the order the converter uses), compared with a tolerance anyway."""
    acc = np.zeros_like(arrays[0], dtype=np.float32)
    for a in arrays:
        acc += a.astype(np.float32)
    return acc * np.float32(1.0 / len(arrays))


def swiftkv_names(layers: int, m: int, g: int, bias: bool, qk_norm: bool = False) -> dict[str, tuple[str, list[str]]]:
    """SwiftKV tensor -> (rule, source names): 'copy' of one tensor or 'mean' of a group."""
    want = {"model.norm_swiftkv.weight": ("copy", [f"model.layers.{m}.input_layernorm.weight"])}
    if qk_norm:
        for i in range(m, layers):
            a = f"model.layers.{i}.self_attn."
            want[a + "q_norm_swiftkv.weight"] = ("copy", [a + "q_norm.weight"])
            if (i - m) % g == 0:
                srcs = [f"model.layers.{j}.self_attn.k_norm.weight" for j in range(i, i + g)]
                want[a + "k_norm_swiftkv.weight"] = ("copy" if g == 1 else "mean", srcs)
    kinds = ["weight", "bias"] if bias else ["weight"]
    for i in range(m, layers):
        for kind in kinds:
            want[f"model.layers.{i}.self_attn.q_proj_swiftkv.{kind}"] = (
                "copy", [f"model.layers.{i}.self_attn.q_proj.{kind}"])
            if (i - m) % g:
                continue
            for p in "kv":
                srcs = [f"model.layers.{j}.self_attn.{p}_proj.{kind}" for j in range(i, i + g)]
                want[f"model.layers.{i}.self_attn.{p}_proj_swiftkv.{kind}"] = ("copy" if g == 1 else "mean", srcs)
    return want


def check_swiftkv_tensors(res: Results, what: str, written: dict, source: dict, layers: int, m: int, g: int,
                          bias: bool, rounding=lambda x: x, qk_norm: bool = False):
    """source: HF name -> float32 array of the base model, as the converter should have read it."""
    want = swiftkv_names(layers, m, g, bias, qk_norm)
    extra = sorted(set(written) - set(source) - set(want))
    missing = sorted((set(source) | set(want)) - set(written))
    res.check(f"{what}/tensor set", not extra and not missing, f"extra {extra[:5]}, missing {missing[:5]}")
    worst_copy, worst_mean, worst_base = 0.0, 0.0, 0.0
    for name, (rule, srcs) in want.items():
        if name not in written:
            continue
        got = written[name][1]
        if rule == "copy":
            ref = rounding(source[srcs[0]])
            worst_copy = max(worst_copy, float(np.max(np.abs(got - ref))) if got.shape == ref.shape else math.inf)
        else:
            ref = rounding(group_mean([source[s] for s in srcs]))
            scale = float(np.max(np.abs(ref))) or 1.0
            worst_mean = max(worst_mean, float(np.max(np.abs(got - ref))) / scale if got.shape == ref.shape
                             else math.inf)
    for name, ref in source.items():
        if name in written:
            got = written[name][1]
            worst_base = max(worst_base, float(np.max(np.abs(got - rounding(ref)))) if got.shape == ref.shape
                             else math.inf)
    res.check(f"{what}/norm+q copies", worst_copy == 0.0, f"max |diff| {worst_copy:.3g}")
    if g > 1:
        res.check(f"{what}/k,v group means", worst_mean <= 1e-6, f"max relative |diff| {worst_mean:.3g}")
    res.check(f"{what}/base tensors unchanged", worst_base == 0.0, f"max |diff| {worst_base:.3g}")
    return worst_copy, worst_mean, worst_base


def check_config(res: Results, what: str, cfg: dict, expect: dict):
    bad = {k: (cfg.get(k, "<absent>"), v) for k, v in expect.items() if cfg.get(k, "<absent>") != v}
    res.check(f"{what}/config.json", not bad, f"(got, want): {bad}")


def convert(base: str, out: str, args: list[str]) -> tuple[str, float]:
    t0 = time.time()
    p = run_skv(["convert", "--model", base, "--out", out, *args])
    return p.stderr.strip(), time.time() - t0


# ----------------------------------------------------------------------------------------------
# A. HF fixtures

HF_CASES = [
    # fixture, convert flags, M, G, dtype written
    ("llama_gqa", ["--num-key-value-layers", "1"], 1, 1, "F32"),
    ("llama_gqa", ["--num-key-value-layers", "1", "--key-value-group-size", "2"], 1, 2, "F32"),
    ("llama_gqa", ["--swiftkv-fraction", "0.3"], 2, 1, "F32"),  # skip round(0.9) = 1 of 3 layers
    ("llama_gqa", ["--num-key-value-layers", "1", "--key-value-group-size", "2", "--dtype", "bf16"], 1, 2, "BF16"),
    ("qwen2_bias", ["--num-key-value-layers", "1"], 1, 1, "F32"),
    ("llama_bf16", ["--num-key-value-layers", "1", "--key-value-group-size", "2"], 1, 2, "BF16"),
    ("llama_sharded", ["--num-key-value-layers", "1"], 1, 1, "F32"),
    ("llama_mha_llama3rope", ["--num-key-value-layers", "1"], 1, 1, "F32"),
    ("llama_mqa", ["--num-key-value-layers", "1"], 1, 1, "F32"),
    ("qwen3", ["--num-key-value-layers", "1"], 1, 1, "F32"),
    ("qwen3_bf16", ["--num-key-value-layers", "1", "--key-value-group-size", "2"], 1, 2, "BF16"),
    ("mistral_window", ["--num-key-value-layers", "1"], 1, 1, "F32"),
]

SWIFTKV_CLASSES = {"llama": "LlamaSwiftKVForCausalLM", "qwen2": "Qwen2SwiftKVForCausalLM",
                   "qwen3": "Qwen3SwiftKVForCausalLM", "mistral": "MistralSwiftKVForCausalLM"}


def check_hf_fixture(res: Results, tmp: str, k: int, name: str, flags: list[str], m: int, g: int, dtype: str):
    base = os.path.join(FIXTURES, name)
    out = os.path.join(tmp, f"{name}_{k}")
    what = f"{name} {' '.join(flags)}"
    try:
        summary, secs = convert(base, out, flags)
    except Exception as e:  # noqa: BLE001 -- any failure of the binary is a test failure
        res.check(f"{what}/convert", False, str(e))
        return
    with open(os.path.join(base, "config.json")) as f:
        src_cfg = json.load(f)
    with open(os.path.join(out, "config.json")) as f:
        cfg = json.load(f)
    layers = src_cfg["num_hidden_layers"]
    arch = src_cfg["model_type"]
    bias = arch == "qwen2" or bool(src_cfg.get("attention_bias"))
    torch_dtype = {"F32": "float32", "BF16": "bfloat16", "F16": "float16"}[dtype]
    expect = {"architectures": [SWIFTKV_CLASSES[arch]], "model_type": arch + "_swiftkv", "swiftkv": True,
              "num_key_value_layers": m, "key_value_group_size": g, "attention_bias": bias,
              "hidden_size": src_cfg["hidden_size"], "num_hidden_layers": layers,
              "tie_word_embeddings": src_cfg.get("tie_word_embeddings", False)}
    # The source's other fields survive, its rope style included.
    for key in ("rope_parameters", "rope_scaling", "rope_theta", "hidden_act", "vocab_size", "eos_token_id",
                "sliding_window", "head_dim"):
        if key in src_cfg:
            expect[key] = src_cfg[key]
    check_config(res, what, cfg, expect)
    res.check(f"{what}/dtype field", cfg.get("dtype", cfg.get("torch_dtype")) == torch_dtype,
              f"dtype {cfg.get('dtype')!r}, torch_dtype {cfg.get('torch_dtype')!r}, want {torch_dtype}")
    for f in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        same = open(os.path.join(base, f), "rb").read() == open(os.path.join(out, f), "rb").read()
        res.check(f"{what}/{f} copied", same, "differs from the source's")

    written = read_hf_tensors(out)
    source = {n: a for n, (_, a) in read_hf_tensors(base).items()}
    tags = {t for t, _ in written.values()}
    res.check(f"{what}/stored dtype", tags == {dtype}, f"tensor dtypes {tags}, want {dtype}")
    rounding = bf16_round if dtype == "BF16" else (lambda x: x)
    check_swiftkv_tensors(res, what, written, source, layers, m, g, bias, rounding, qk_norm=arch == "qwen3")

    # Teacher round trip (weights unchanged unless the dtype changed).
    with open(os.path.join(base, "expected.json")) as f:
        seqs = [s["ids"] for s in json.load(f)["sequences"]][:2]
    if dtype == "BF16" and not name.endswith("_bf16"):
        print(f"{what:70s} ok ({secs:.2f}s convert; weights rounded, no teacher round trip)", flush=True)
        return
    worst = 0.0
    try:
        for ids in seqs:
            worst = max(worst, max_score_diff(score(out, ids, ["--no-swiftkv"]), score(base, ids)))
        swiftkv_lp = score(out, seqs[-1])
        runs = all(v is None or math.isfinite(v) for v in swiftkv_lp)
    except Exception as e:  # noqa: BLE001
        res.check(f"{what}/teacher round trip", False, str(e))
        return
    res.check(f"{what}/teacher round trip", worst <= TEACHER_TOL, f"max |dlogprob| {worst:.3g} > {TEACHER_TOL}")
    res.check(f"{what}/SwiftKV path runs", runs, f"non-finite log-probs {swiftkv_lp}")
    print(f"{what:70s} ok ({secs:.2f}s convert, teacher max |d| {worst:.1e})", flush=True)


# ----------------------------------------------------------------------------------------------
# B. SmolLM2 GGUF

GGUF_NAMES = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight",
              "output.weight": "lm_head.weight"}
GGUF_LAYER = {"attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm", "attn_q": "self_attn.q_proj",
              "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj",
              "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}


def hf_name(gguf_name: str) -> str:
    if gguf_name in GGUF_NAMES:
        return GGUF_NAMES[gguf_name]
    m = re.fullmatch(r"blk\.(\d+)\.(\w+)\.(weight|bias)", gguf_name)
    if not m or m.group(2) not in GGUF_LAYER:
        raise ValueError(f"unexpected GGUF tensor {gguf_name}")
    return f"model.layers.{m.group(1)}.{GGUF_LAYER[m.group(2)]}.{m.group(3)}"


def unpermute(w: np.ndarray, n_head: int) -> np.ndarray:
    """Inverse of convert_hf_to_gguf.py's permute: reshape(n_head, 2, D/2, ...).swapaxes(1, 2)."""
    rest = w.shape[1:]
    return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *rest).swapaxes(1, 2).reshape(w.shape)


def gguf_meta(reader, key):
    return reader.fields[key].contents()


def tokenizer_corpus(n: int = 400) -> list[str]:
    rng = random.Random(1234)
    texts = ["", " ", "Hello world", "Hello, world!", "I'm you'LL we'VE", "1234567890", "a1b22c333", "$12.50",
             "日本語のテキストです。", "Привет, мир!", "😀 👍🏽 👨‍👩‍👧‍👦", "e\u0301 a\u0300", "\n\n\n", "\t x \r\n y",
             "hi<|im_start|>user\nyo<|im_end|>", "<|endoftext|>", "<repo_name>swiftkv<file_sep>", "<|im_start",
             "def f(x):\n    return x**2\n", "  leading and trailing   ", "a" * 500]
    prose = os.path.join(DATA, "prose", "tinyshakespeare.txt")
    wiki = os.path.join(DATA, "wikitext2", "wiki.test.raw")
    for path, split in ((prose, "\n\n"), (wiki, "\n")):
        if os.path.exists(path):
            with open(path, encoding="utf-8", errors="replace") as f:
                parts = [p for p in f.read().split(split) if p.strip()]
            texts += rng.sample(parts, min(n // 2, len(parts)))
    return texts


def tokenize_skv(model: str, texts: list[str]) -> list[list[int]]:
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False, encoding="utf-8") as f:
        for t in texts:
            f.write(json.dumps(t) + "\n")
        name = f.name
    try:
        # Empty lines are skipped by --input-jsonl, and json.dumps never writes one.
        p = run_skv(["tokenize", "--model", model, "--input-jsonl", name])
    finally:
        os.unlink(name)
    return [json.loads(line)["ids"] for line in p.stdout.splitlines() if line.strip()]


def check_gguf(res: Results, tmp: str):
    from gguf import GGUFReader
    from gguf.quants import dequantize

    out = os.path.join(tmp, "smollm2_swiftkv")
    what = "SmolLM2 GGUF"
    m_expected, g = 15, 3
    try:
        summary, secs = convert(GGUF, out, ["--swiftkv-fraction", "0.5", "--key-value-group-size", str(g)])
    except Exception as e:  # noqa: BLE001
        res.check(f"{what}/convert", False, str(e))
        return
    size = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
    print(f"{what}: convert {secs:.1f}s, {size / 1e6:.1f} MB; {summary}", flush=True)
    res.check(f"{what}/summary", "M = 15 of 30" in summary and "KV cache holds 20 layers" in summary
              and summary.count("\n") == 0, summary)

    r = GGUFReader(GGUF)
    n_head = int(gguf_meta(r, "llama.attention.head_count"))
    n_kv = int(gguf_meta(r, "llama.attention.head_count_kv"))
    layers = int(gguf_meta(r, "llama.block_count"))
    with open(os.path.join(out, "config.json")) as f:
        cfg = json.load(f)
    check_config(res, what, cfg, {
        "architectures": ["LlamaSwiftKVForCausalLM"], "model_type": "llama_swiftkv", "swiftkv": True,
        "num_key_value_layers": m_expected, "key_value_group_size": g, "torch_dtype": "float32",
        "num_hidden_layers": layers, "num_attention_heads": n_head, "num_key_value_heads": n_kv,
        "hidden_size": int(gguf_meta(r, "llama.embedding_length")), "head_dim": 64, "vocab_size": 49152,
        "rope_theta": float(gguf_meta(r, "llama.rope.freq_base")), "rope_scaling": None,
        "tie_word_embeddings": True, "attention_bias": False, "bos_token_id": 1, "eos_token_id": 2,
        "max_position_embeddings": int(gguf_meta(r, "llama.context_length"))})
    res.check(f"{what}/rms_norm_eps", np.float32(cfg.get("rms_norm_eps", 0)) ==
              np.float32(gguf_meta(r, "llama.attention.layer_norm_rms_epsilon")), str(cfg.get("rms_norm_eps")))

    # Weights: the gguf package's dequantisation, q/k rows put back in HF order.
    t0 = time.time()
    source = {}
    for t in r.tensors:
        w = dequantize(t.data, t.tensor_type).astype(np.float32).reshape([int(x) for x in reversed(t.shape)])
        name = hf_name(t.name)
        if ".self_attn.q_proj." in name:
            w = unpermute(w, n_head)
        elif ".self_attn.k_proj." in name:
            w = unpermute(w, n_kv)
        source[name] = w
    written = read_hf_tensors(out)
    tags = {tag for tag, _ in written.values()}
    res.check(f"{what}/stored dtype", tags == {"F32"}, f"tensor dtypes {tags}")
    res.check(f"{what}/no lm_head (tied)", "lm_head.weight" not in written, "lm_head.weight written")
    copy, mean, base = check_swiftkv_tensors(res, what, written, source, layers, m_expected, g, False)
    print(f"{what}: {len(written)} tensors vs dequantised GGUF: base max |d| {base:.1e}, copies {copy:.1e}, "
          f"group means rel {mean:.1e} ({time.time() - t0:.1f}s)", flush=True)
    del written, source

    # Teacher path == the same GGUF dequantised to F32 (no 8-bit activation rounding either side).
    from llamacpp_util import write_f32_gguf

    f32 = os.path.join(tmp, "smollm2_f32.gguf")
    write_f32_gguf(GGUF, f32)
    ids = tokenize_skv(GGUF, ["<|im_start|>user\nWhat is the capital of France? Answer in one word, please."
                              "<|im_end|>\n<|im_start|>assistant\nThe capital of France is Paris."])[0]
    try:
        teacher, ref = score(out, ids, ["--no-swiftkv"]), score(f32, ids)
        d = max_score_diff(teacher, ref)
        res.check(f"{what}/teacher == dequantised F32 GGUF", d <= F32_GGUF_TOL, f"max |dlogprob| {d:.3g}")
        print(f"{what}: teacher vs F32 GGUF over {len(ids)} tokens: max |dlogprob| {d:.1e}", flush=True)
        swift = score(out, ids)
        res.check(f"{what}/SwiftKV path runs", all(v is None or math.isfinite(v) for v in swift), str(swift[:5]))
    except Exception as e:  # noqa: BLE001
        res.check(f"{what}/teacher == dequantised F32 GGUF", False, str(e))
    os.unlink(f32)

    # Tokenizer: HF tokenizers on the written tokenizer.json vs swiftkv on the GGUF.
    from tokenizers import Tokenizer

    texts = tokenizer_corpus()
    hf = Tokenizer.from_file(os.path.join(out, "tokenizer.json"))
    want = tokenize_skv(GGUF, texts)
    got_hf = [e.ids for e in hf.encode_batch(texts)]
    got_dir = tokenize_skv(out, texts)
    bad = [i for i in range(len(texts)) if got_hf[i] != want[i]]
    res.check(f"{what}/HF tokenizers == swiftkv GGUF tokenizer", len(want) == len(texts) and not bad,
              f"{len(bad)} of {len(texts)} differ, first {texts[bad[0]][:80]!r}: {got_hf[bad[0]][:20]} vs "
              f"{want[bad[0]][:20]}" if bad else f"{len(want)} results for {len(texts)} texts")
    bad_dir = [i for i in range(len(texts)) if got_dir[i] != want[i]]
    res.check(f"{what}/swiftkv on the written dir == GGUF", not bad_dir, f"{len(bad_dir)} differ")
    print(f"{what}: tokenizer.json encodes {len(texts)} strings like the GGUF tokenizer "
          f"({sum(map(len, want))} tokens)", flush=True)

    # Chat template and special tokens.
    with open(os.path.join(out, "tokenizer_config.json")) as f:
        tc = json.load(f)
    gguf_template = gguf_meta(r, "tokenizer.chat_template")
    res.check(f"{what}/chat_template carried over", tc.get("chat_template") == gguf_template, "differs")
    res.check(f"{what}/special tokens", (tc.get("bos_token"), tc.get("eos_token"), tc.get("add_bos_token"))
              == ("<|im_start|>", "<|im_end|>", False), str(tc)[:300])
    with open(os.path.join(out, "generation_config.json")) as f:
        gen = json.load(f)
    res.check(f"{what}/generation_config", gen.get("bos_token_id") == 1 and gen.get("eos_token_id") == 2, str(gen))
    rendered = []
    msgs = os.path.join(tmp, "messages.json")
    with open(msgs, "w") as f:
        json.dump([{"role": "user", "content": "Hi there"}, {"role": "assistant", "content": "Hello!"},
                   {"role": "user", "content": "Name a colour."}], f)
    for label, text in (("gguf", gguf_template), ("written", tc.get("chat_template", ""))):
        path = os.path.join(tmp, f"template_{label}.jinja")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        rendered.append(run_skv(["chat-template", "--template", path, "--messages-json", msgs,
                                 "--add-generation-prompt"]).stdout)
    res.check(f"{what}/chat-template renders the same", rendered[0] == rendered[1] and rendered[0], repr(rendered))


def main() -> int:
    if not os.access(BIN, os.X_OK):
        print(f"convert oracle: SKV_BIN={BIN!r} is not an executable swiftkv binary")
        print("convert oracle: 0 passed, 1 failed")
        return 1
    res = Results()
    tmp = tempfile.mkdtemp(prefix="skv_convert_")
    try:
        for k, (name, flags, m, g, dtype) in enumerate(HF_CASES):
            check_hf_fixture(res, tmp, k, name, flags, m, g, dtype)
        if os.path.exists(GGUF):
            check_gguf(res, tmp)
        elif os.environ.get("SKV_ALLOW_SKIP") == "1":
            print(f"note: {GGUF} not found; GGUF checks skipped (SKV_ALLOW_SKIP=1)")
        else:
            res.check("SmolLM2 GGUF", False, f"{GGUF} not found (scripts/fetch_model.sh)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"convert oracle: {res.passed} passed, {len(res.failed)} failed")
    if res.failed:
        print("failed: " + ", ".join(res.failed))
    return 1 if res.failed else 0


if __name__ == "__main__":
    sys.exit(main())
