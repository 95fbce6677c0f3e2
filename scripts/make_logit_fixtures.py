#!/usr/bin/env python3
"""Build the tiny random checkpoints under tests/fixtures/models/ and their reference
log-probs, computed by transformers (eager attention, float32).

Run once, with a venv that has torch + transformers + safetensors + tokenizers + numpy:

    /tmp/tv/bin/python scripts/make_logit_fixtures.py [--out tests/fixtures/models]

Everything is seeded, so a rerun with the same torch / transformers versions rewrites the same
files. Per model directory:
  config.json, generation_config.json, model.safetensors (or shards + index),
  tokenizer.json + tokenizer_config.json (a byte-level BPE with exactly vocab_size tokens, so
  generated ids can be detokenized), expected.json:
  {"sequences": [{"ids", "token_logprobs": [null, lp1, ...], "last_top5": [[id, lp], ...]}],
   "greedy": {"prompt_ids", "token_ids", "top2_gaps"},   # 8 greedy tokens from sequences[0]
   "numpy_max_abs_err", "config_style", "transformers_version", "torch_version", ...}

The script also checks tests/oracle/numpy_llama.py against transformers (<= 1e-4 on every
token log-prob) and that hand-rewritten config.json files load identically in transformers.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import sys

import numpy as np
import torch
import transformers
from transformers import (LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM, Qwen2Config,
                          Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "oracle"))
import numpy_llama  # noqa: E402

VOCAB = 512
SEQ_LENS = (7, 40, 200)
GREEDY_PROMPT = 7
GREEDY_TOKENS = 8
NUMPY_TOL = 1e-4

COMMON = dict(vocab_size=VOCAB, hidden_size=64, bos_token_id=1, eos_token_id=2, rms_norm_eps=1e-5)

# name -> (class, config kwargs, seed, save dtype, config style to write, extra save kwargs)
#   style "v5": as transformers 5.x writes it (`rope_parameters`);
#   style "v4": rewritten by hand to 4.x (`rope_theta` + `rope_scaling`, `torch_dtype`).
FIXTURES = {
    "llama_gqa": (LlamaForCausalLM, dict(
        intermediate_size=172, num_hidden_layers=3, num_attention_heads=8, num_key_value_heads=2,
        rope_theta=10000.0, tie_word_embeddings=False), 1001, torch.float32, "v5", {}),
    "llama_mqa": (LlamaForCausalLM, dict(
        intermediate_size=176, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=1,
        head_dim=48, rope_theta=10000.0, tie_word_embeddings=True), 1002, torch.float32, "v4", {}),
    "llama_mha_llama3rope": (LlamaForCausalLM, dict(
        intermediate_size=160, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
        rope_theta=500000.0, max_position_embeddings=1024, tie_word_embeddings=False,
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                      "high_freq_factor": 4.0, "original_max_position_embeddings": 64}),
        1003, torch.float32, "v5", {}),
    "llama_linear_rope": (LlamaForCausalLM, dict(
        intermediate_size=160, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        rope_theta=10000.0, tie_word_embeddings=False, rms_norm_eps=1e-6,
        rope_scaling={"rope_type": "linear", "factor": 4.0}), 1004, torch.float32, "v4", {}),
    "llama_bf16": (LlamaForCausalLM, dict(
        intermediate_size=172, num_hidden_layers=3, num_attention_heads=8, num_key_value_heads=2,
        rope_theta=500000.0, max_position_embeddings=4096, tie_word_embeddings=False,
        rope_scaling={"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                      "high_freq_factor": 4.0, "original_max_position_embeddings": 128}),
        1005, torch.bfloat16, "v4", {}),
    "llama_sharded": (LlamaForCausalLM, dict(
        intermediate_size=160, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        rope_theta=10000.0, tie_word_embeddings=False), 1006, torch.float32, "v5",
        {"max_shard_size": "250KB"}),
    "qwen2_bias": (Qwen2ForCausalLM, dict(
        intermediate_size=160, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        rope_theta=1000000.0, tie_word_embeddings=False, rms_norm_eps=1e-6,
        max_position_embeddings=1024), 1007, torch.float32, "v5", {}),
    # A window shorter than the 40- and 200-token sequences (and than 7 + 8 greedy tokens + 2).
    "mistral_window": (MistralForCausalLM, dict(
        intermediate_size=160, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        rope_theta=10000.0, tie_word_embeddings=False, sliding_window=16,
        max_position_embeddings=1024), 1008, torch.float32, "v5", {}),
    # q_norm / k_norm, head_dim 24 != 64 / 4, tied embeddings.
    "qwen3": (Qwen3ForCausalLM, dict(
        intermediate_size=160, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        head_dim=24, rope_theta=1000000.0, tie_word_embeddings=True, rms_norm_eps=1e-6,
        max_position_embeddings=1024), 1009, torch.float32, "v5", {}),
    "qwen3_bf16": (Qwen3ForCausalLM, dict(
        intermediate_size=172, num_hidden_layers=3, num_attention_heads=8, num_key_value_heads=2,
        head_dim=16, rope_theta=1000000.0, tie_word_embeddings=True, rms_norm_eps=1e-6,
        max_position_embeddings=1024), 1010, torch.bfloat16, "v5", {}),
}
# How the v4 rewrite spells the rope type: real Llama-2-era configs use the legacy "type" key.
V4_LEGACY_TYPE_KEY = {"llama_linear_rope"}


def reinit_(model: torch.nn.Module, seed: int) -> None:
    """Larger-than-default random weights so logits are far from flat and bugs show up."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            elif name.endswith(".bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            elif "embed_tokens" in name or name == "lm_head.weight":
                p.copy_(0.3 * torch.randn(p.shape, generator=g))
            elif "q_proj" in name or "k_proj" in name:
                p.copy_(0.15 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))


def build_config(cls, kw):
    kw = {**COMMON, **kw}
    if cls is Qwen2ForCausalLM:
        return Qwen2Config(**kw)
    if cls is Qwen3ForCausalLM:
        return Qwen3Config(**kw)
    if cls is MistralForCausalLM:
        return MistralConfig(**kw)
    return LlamaConfig(**kw)


def rewrite_config_v4(path: str, legacy_type_key: bool) -> None:
    """transformers 5.x config.json -> the transformers 4.x spelling of the same model."""
    with open(path) as f:
        c = json.load(f)
    rp = c.pop("rope_parameters")
    out = {}
    for k, v in c.items():
        if k == "dtype":
            k = "torch_dtype"
        out[k] = v
    out["rope_theta"] = rp.pop("rope_theta")
    rtype = rp.pop("rope_type")
    if rtype == "default":
        out["rope_scaling"] = None
    else:
        out["rope_scaling"] = ({"type": rtype} if legacy_type_key else {"rope_type": rtype}) | rp
    # Old configs have no head_dim when it is hidden_size / num_attention_heads.
    if out.get("head_dim") == out["hidden_size"] // out["num_attention_heads"]:
        del out["head_dim"]
    out["transformers_version"] = "4.46.0"
    with open(path, "w") as f:
        json.dump(out, f, indent=2, sort_keys=True)
        f.write("\n")


def write_tokenizer(d: str) -> None:
    """Byte-level BPE with exactly VOCAB tokens: <unk>=0, <s>=1, </s>=2, 256 bytes, merges."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    rng = np.random.default_rng(7)
    syll = ["ka", "to", "ri", "ne", "su", "mo", "la", "pe", "chi", "an", "er", "th", "ing", "ou",
            "st", "be", "de", "qu", "zo", "wy", "x", "fl", "gr", "sh", "ion", "ed", " "]
    words = ["".join(rng.choice(syll, size=rng.integers(1, 5))) for _ in range(3000)]
    corpus = [" ".join(words[i:i + 12]) + rng.choice([".", ",", "!", "?", ";"]) for i in range(0, 3000, 12)]
    tok = Tokenizer(models.BPE(unk_token=None, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=["<unk>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  min_frequency=1, show_progress=False)
    tok.train_from_iterator(corpus, trainer=trainer)
    assert tok.get_vocab_size() == VOCAB, tok.get_vocab_size()
    assert [tok.token_to_id(t) for t in ("<unk>", "<s>", "</s>")] == [0, 1, 2]
    tok.save(os.path.join(d, "tokenizer.json"))
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>",
                   "unk_token": "<unk>", "add_bos_token": False, "model_max_length": 1024}, f, indent=2)
        f.write("\n")


@torch.no_grad()
def reference(model, ids):
    logits = model(torch.tensor([ids])).logits[0].to(torch.float64)  # computed in float32
    return torch.log_softmax(logits, dim=-1).numpy()


@torch.no_grad()
def greedy(model, prompt, n):
    """Greedy continuation by full re-forward each step; top-1 minus top-2 log-prob per step."""
    ids, gaps = list(prompt), []
    for _ in range(n):
        lp = reference(model, ids)[-1]
        top2 = np.argsort(-lp, kind="stable")[:2]
        gaps.append(float(lp[top2[0]] - lp[top2[1]]))
        ids.append(int(top2[0]))
    # Cross-check with transformers' own generate() (KV cache path), EOS disabled.
    # (attention_mask given explicitly: otherwise a prompt token equal to pad_token_id is masked.)
    inp = torch.tensor([prompt])
    out = model.generate(inp, attention_mask=torch.ones_like(inp), max_new_tokens=n, do_sample=False,
                         eos_token_id=None, pad_token_id=0)
    gen = out[0, len(prompt):].tolist()
    assert gen == ids[len(prompt):], f"generate() {gen} != manual greedy {ids[len(prompt):]} (gaps {gaps})"
    return ids[len(prompt):], gaps


def make_one(out_root: str, name: str, spec) -> dict:
    cls, kw, seed, dtype, style, save_kw = spec
    d = os.path.join(out_root, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)

    torch.manual_seed(seed)
    cfg = build_config(cls, kw)
    model = cls(cfg).eval()
    reinit_(model, seed)
    if cfg.tie_word_embeddings:
        assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    if dtype != torch.float32:
        # Round the weights (not the rotary inv_freq buffer: model.to(bf16) would round it too)
        # to the storage dtype in place, so the float32 model built above holds exactly what the
        # file holds and still has float32 RoPE frequencies.
        with torch.no_grad():
            for prm in model.parameters():
                prm.copy_(prm.to(dtype).to(torch.float32))
        assert all(b.dtype == torch.float32 for n, b in model.named_buffers() if "inv_freq" in n)
        saved = copy.deepcopy(model)
        for prm in saved.parameters():
            prm.data = prm.data.to(dtype)
        saved.config.dtype = dtype
        saved.save_pretrained(d, safe_serialization=True, **save_kw)
    else:
        model.save_pretrained(d, safe_serialization=True, **save_kw)
    if style == "v4":
        rewrite_config_v4(os.path.join(d, "config.json"), name in V4_LEGACY_TYPE_KEY)
    write_tokenizer(d)

    # Reference from the files on disk (checks the rewritten config loads identically too).
    ref = cls.from_pretrained(d, dtype=torch.float32, attn_implementation="eager").eval()
    mem = model.eval()
    mem.config._attn_implementation = "eager"

    rng = np.random.default_rng(seed)
    np_cfg = numpy_llama.load_config(d)
    np_w = numpy_llama.load_weights(d)
    seqs, np_err = [], 0.0
    for T in SEQ_LENS:
        ids = [int(x) for x in rng.integers(0, VOCAB, size=T)]
        lp = reference(ref, ids)
        lp_mem = reference(mem, ids)
        assert np.abs(lp - lp_mem).max() < 1e-5, f"{name}: reloaded model differs from in-memory one"
        tok_lp = [None] + [float(lp[t, ids[t + 1]]) for t in range(T - 1)]
        top = np.argsort(-lp[-1], kind="stable")[:5]
        seqs.append({"ids": ids, "token_logprobs": tok_lp,
                     "last_top5": [[int(i), float(lp[-1, i])] for i in top]})
        nlp = numpy_llama.forward_logprobs(d, ids, np_cfg, np_w)
        np_err = max(np_err, float(np.abs(nlp - lp).max()))
    assert np_err <= NUMPY_TOL, f"{name}: numpy_llama differs from transformers by {np_err:.3g}"

    prompt = seqs[0]["ids"][:GREEDY_PROMPT]
    gen, gaps = greedy(ref, prompt, GREEDY_TOKENS)

    with open(os.path.join(d, "config.json")) as f:
        written = json.load(f)
    expected = {
        "model": name,
        "config_style": ("transformers 4.x (rope_theta + rope_scaling)" if style == "v4"
                         else "transformers 5.x (rope_parameters)"),
        "weights_dtype": str(dtype).replace("torch.", ""),
        "reference": "transformers eager attention, float32 weights/activations, log_softmax in float64",
        "sequences": seqs,
        "greedy": {"prompt_ids": prompt, "token_ids": gen, "top2_gaps": gaps},
        "numpy_max_abs_err": np_err,
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
    }
    with open(os.path.join(d, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")
    size = sum(os.path.getsize(os.path.join(d, x)) for x in os.listdir(d))
    files = sorted(os.listdir(d))
    print(f"{name:24s} {size / 1e6:6.3f} MB  numpy-vs-transformers max |dlogprob| {np_err:.2e}  "
          f"min greedy gap {min(gaps):.3g}  rope {written.get('rope_parameters') or written.get('rope_scaling')}"
          f"  files {files}")
    return {"name": name, "size": size, "np_err": np_err}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures", "models"))
    ap.add_argument("--only", nargs="*", help="fixture names (default: all)")
    args = ap.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    print(f"torch {torch.__version__}, transformers {transformers.__version__}")
    res = [make_one(args.out, n, s) for n, s in FIXTURES.items() if not args.only or n in args.only]
    total = sum(r["size"] for r in res)
    print(f"total {total / 1e6:.3f} MB, numpy-vs-transformers max {max(r['np_err'] for r in res):.2e}")


if __name__ == "__main__":
    main()
