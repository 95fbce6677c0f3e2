#!/usr/bin/env python3
"""Oracle: GGUF qwen2 / qwen3 files, checked against llama.cpp and transformers.

The transformers fixtures qwen2_bias, qwen3 and qwen3_bf16 (tests/fixtures/models/) are written
as F32 GGUF files into a temp dir with llama.cpp's `gguf` package, named as llama.cpp's
convert_hf_to_gguf.py names them (blk.N.attn_q / attn_q_norm / attn_k_norm ..., no q/k row
permutation for these architectures; the name map below is this test's own, not swiftkv's).
Then, per fixture:
  * llama.cpp (llama-cpp-python, F32 KV cache) scores the fixture's sequences on the GGUF within
    LLAMACPP_TOL of transformers' expected.json: the file is the model, as llama.cpp reads it;
  * `swiftkv score --model GGUF` is within 1e-3 of expected.json per token, and
    `swiftkv generate` (greedy, 8 tokens) gives expected.json's continuation;
  * `swiftkv convert` of the GGUF writes the architecture's SwiftKV variant (qwen3_swiftkv with
    q_norm_swiftkv / k_norm_swiftkv), whose teacher path (--no-swiftkv) scores like expected.json.
F32 only: llama-cpp-python's quantised kernels are not needed here.
Env: SKV_BIN, SKV_SOURCE_DIR. Prints "gguf archs oracle: N passed, M failed".
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import llamacpp_util as lu  # noqa: E402
import numpy_llama as nl  # noqa: E402
from test_logits import Results, compare_greedy, compare_logprobs, run_skv  # noqa: E402

FIXTURES = ("qwen2_bias", "qwen3", "qwen3_bf16")
LLAMACPP_TOL = 1e-3  # llama.cpp's own float32 arithmetic vs transformers' (measured: < 1e-5)

LAYER_NAMES = {
    "input_layernorm.weight": "attn_norm.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.q_proj.bias": "attn_q.bias",
    "self_attn.k_proj.bias": "attn_k.bias",
    "self_attn.v_proj.bias": "attn_v.bias",
    "self_attn.o_proj.weight": "attn_output.weight",
    "self_attn.q_norm.weight": "attn_q_norm.weight",
    "self_attn.k_norm.weight": "attn_k_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}
GLOBAL_NAMES = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
                "lm_head.weight": "output.weight"}


def gguf_name(hf: str) -> str:
    if hf in GLOBAL_NAMES:
        return GLOBAL_NAMES[hf]
    parts = hf.split(".", 3)  # model, layers, N, suffix
    if parts[:2] != ["model", "layers"] or parts[3] not in LAYER_NAMES:
        raise ValueError(f"no GGUF name for {hf}")
    return f"blk.{parts[2]}.{LAYER_NAMES[parts[3]]}"


def write_gguf(d: str, dst: str) -> None:
    from gguf import GGUFWriter

    with open(os.path.join(d, "config.json")) as f:
        c = json.load(f)
    arch = c["model_type"]
    cfg = nl.load_config(d)
    w = GGUFWriter(dst, arch)
    w.add_block_count(cfg.num_layers)
    w.add_context_length(int(c["max_position_embeddings"]))
    w.add_embedding_length(cfg.hidden_size)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_heads)
    w.add_head_count_kv(cfg.num_kv_heads)
    w.add_key_length(cfg.head_dim)
    w.add_value_length(cfg.head_dim)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_rope_freq_base(cfg.rope_theta)
    w.add_file_type(0)  # all F32
    with open(os.path.join(d, "tokenizer.json")) as f:
        tok = json.load(f)["model"]
    vocab = sorted(tok["vocab"].items(), key=lambda kv: kv[1])
    assert [i for _, i in vocab] == list(range(cfg.vocab_size))
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list([t for t, _ in vocab])
    w.add_token_types([3 if i < 3 else 1 for i in range(cfg.vocab_size)])  # control / normal
    w.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in tok["merges"]])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    weights = nl.load_weights(d)  # float64; exact for F32 and BF16 sources
    for name in sorted(weights):
        if name == "lm_head.weight" and cfg.tie_word_embeddings:
            continue
        w.add_tensor(gguf_name(name), weights[name].astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def llamacpp_token_logprobs(llm, ids: list[int]) -> list:
    lu.clear_kv(llm)
    llm.eval(ids)
    lp = lu.log_softmax(np.array(llm.scores[: len(ids)], dtype=np.float64))
    return [None] + [float(lp[t, ids[t + 1]]) for t in range(len(ids) - 1)]


def main() -> int:
    skv_bin = os.environ.get("SKV_BIN")
    src = os.environ.get("SKV_SOURCE_DIR", os.path.dirname(os.path.dirname(HERE)))
    res = Results()
    with tempfile.TemporaryDirectory(prefix="skv_gguf_archs_") as tmp:
        for name in FIXTURES:
            d = os.path.join(src, "tests", "fixtures", "models", name)
            with open(os.path.join(d, "expected.json")) as f:
                exp = json.load(f)
            with open(os.path.join(d, "config.json")) as f:
                src_type = json.load(f)["model_type"]
            path = os.path.join(tmp, name + ".gguf")
            write_gguf(d, path)

            llm = lu.load_llama(path, n_ctx=256, logits_all=True, kv_f32=True)
            worst = 0.0
            for seq in exp["sequences"]:
                got = llamacpp_token_logprobs(llm, seq["ids"])
                worst = max(worst, max(abs(a - b) for a, b in zip(got[1:], seq["token_logprobs"][1:])))
            del llm
            if worst <= LLAMACPP_TOL:
                res.ok()
            else:
                res.fail(f"{name}/llama.cpp", f"llama.cpp on the written GGUF differs from transformers by {worst:.3g}")

            skv_worst = 0.0
            for seq in exp["sequences"]:
                what = f"{name}/swiftkv score[len {len(seq['ids'])}]"
                try:
                    out, _ = run_skv(skv_bin, ["score", "--model", path, "--token-ids", ",".join(map(str, seq["ids"]))])
                    err, msg = compare_logprobs(out["token_logprobs"], seq["token_logprobs"])
                except Exception as e:  # noqa: BLE001 -- any failure of the binary is a test failure
                    err, msg = float("inf"), str(e)
                skv_worst = max(skv_worst, err)
                res.fail(what, msg) if msg else res.ok()

            g = exp["greedy"]
            try:
                out, _ = run_skv(skv_bin, ["generate", "--model", path, "--token-ids", ",".join(map(str, g["prompt_ids"])),
                                           "--max-tokens", str(len(g["token_ids"])), "--temperature", "0",
                                           "--ignore-eos", "--json"])
                msg, _ = compare_greedy(out["token_ids"], g["prompt_ids"], g["token_ids"], g["top2_gaps"])
            except Exception as e:  # noqa: BLE001
                msg = str(e)
            res.fail(f"{name}/swiftkv generate", msg) if msg else res.ok()
            greedy = "ok" if not msg else "FAIL"

            out_dir = os.path.join(tmp, name + "_swiftkv")
            what = f"{name}/convert"
            try:
                p = subprocess.run([skv_bin, "convert", "--model", path, "--out", out_dir, "--num-key-value-layers", "1"],
                                   capture_output=True, text=True, timeout=300)
                if p.returncode != 0:
                    raise RuntimeError(f"convert failed: {p.stderr.strip()}")
                with open(os.path.join(out_dir, "config.json")) as f:
                    written = json.load(f)
                names = set(nl.load_weights(out_dir))
                want_norms = {"model.layers.1.self_attn.q_norm_swiftkv.weight",
                              "model.layers.1.self_attn.k_norm_swiftkv.weight"}
                seq = exp["sequences"][1]
                out, _ = run_skv(skv_bin, ["score", "--model", out_dir, "--no-swiftkv",
                                           "--token-ids", ",".join(map(str, seq["ids"]))])
                _, msg = compare_logprobs(out["token_logprobs"], seq["token_logprobs"])
                if written["model_type"] != src_type + "_swiftkv":
                    msg = f"model_type {written['model_type']!r}, want {src_type}_swiftkv"
                elif src_type == "qwen3" and not want_norms <= names:
                    msg = f"missing {sorted(want_norms - names)}"
            except Exception as e:  # noqa: BLE001
                msg = str(e)
            res.fail(what, msg) if msg else res.ok()
            print(f"{name:12s} GGUF: llama.cpp vs transformers {worst:.2e}, swiftkv vs transformers {skv_worst:.2e}, "
                  f"greedy {greedy}, convert {'ok' if not msg else 'FAIL'}", flush=True)
    print(f"gguf archs oracle: {res.passed} passed, {len(res.failed)} failed")
    return 1 if res.failed else 0


if __name__ == "__main__":
    sys.exit(main())
