#!/usr/bin/env python3
"""Tiny random SwiftKV checkpoints (layout of docs/swiftkv.md#checkpoint-layout) for the oracle
test tests/oracle/test_swiftkv.py. Needs only numpy + safetensors.

    python tests/oracle/make_swiftkv_models.py OUT_DIR      # writes OUT_DIR/<name>/ for every spec

Every model has 9 layers, hidden 64, vocab 512, intermediate 128, float32 weights, a config.json
in transformers 4.x style (`rope_theta` + `rope_scaling`) and one model.safetensors holding the
teacher tensors of every layer (so the checkpoint is its own teacher) plus the SwiftKV tensors:
model.norm_swiftkv.weight, q_proj_swiftkv for layers >= M, k/v_proj_swiftkv for group leaders.
The SwiftKV tensors are drawn independently of the teacher's (not copies), so the SwiftKV and
teacher paths give clearly different logits. Weight scales as scripts/make_logit_fixtures.py:
linear std 0.1, q/k 0.15, embeddings / lm_head 0.3, norms 1 + 0.1 N(0,1), biases 0.1.
Seeded: the same spec always gives byte-identical files.

The other architectures' SwiftKV variants (docs/swiftkv.md#checkpoint-layout) use the same layout: qwen2_swiftkv
(q/k/v and SwiftKV biases always, o_proj none, no attention_bias field), qwen3_swiftkv (per-head
q_norm / k_norm [head_dim] in every layer, q_norm_swiftkv for layers >= M and k_norm_swiftkv for
group leaders, drawn independently like the projections) and mistral_swiftkv (a sliding_window
shorter than the test sequences).
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass

import numpy as np

VOCAB = 512
HIDDEN = 64
INTERMEDIATE = 128
LAYERS = 9
LLAMA3_ROPE = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 64}


@dataclass(frozen=True)
class Spec:
    name: str
    seed: int
    m: int  # num_key_value_layers
    g: int  # key_value_group_size
    heads: int
    kv_heads: int
    head_dim: int | None = None  # None: hidden / heads, and no head_dim in config.json
    tied: bool = False
    attention_bias: bool = False
    rope_theta: float = 10000.0
    rope_scaling: dict | None = None
    swiftkv_flag: bool = True  # config.json "swiftkv"
    arch: str = "llama"  # llama | qwen2 | qwen3 | mistral
    sliding_window: int | None = None  # mistral only

    @property
    def qkv_bias(self) -> bool:
        return self.attention_bias or self.arch == "qwen2"

    @property
    def o_bias(self) -> bool:
        return self.qkv_bias and self.arch != "qwen2"  # Qwen2Attention has no o_proj bias

    @property
    def d(self) -> int:
        return self.head_dim or HIDDEN // self.heads


SPECS = [
    Spec("m5g1_gqa", 2001, m=5, g=1, heads=8, kv_heads=2),
    Spec("m5g2_mha_tied", 2002, m=5, g=2, heads=4, kv_heads=4, tied=True),
    Spec("m1g4_mqa_hd32", 2003, m=1, g=4, heads=4, kv_heads=1, head_dim=32),
    Spec("m5g4_gqa_bias", 2004, m=5, g=4, heads=8, kv_heads=2, attention_bias=True),
    Spec("m8g1_llama3rope_tied", 2005, m=8, g=1, heads=4, kv_heads=2, tied=True, rope_theta=500000.0,
         rope_scaling=LLAMA3_ROPE),
    # "swiftkv": false in config.json: the engine must run the teacher path by default.
    Spec("m3g2_flag_off", 2006, m=3, g=2, heads=4, kv_heads=2, swiftkv_flag=False),
    Spec("qwen2_m5g2", 2007, m=5, g=2, heads=4, kv_heads=2, arch="qwen2", rope_theta=1000000.0),
    # head_dim 24 != 64 / 4
    Spec("qwen3_m3g2_hd24_tied", 2008, m=3, g=2, heads=4, kv_heads=2, head_dim=24, tied=True, arch="qwen3",
         rope_theta=1000000.0),
    Spec("qwen3_m5g1", 2009, m=5, g=1, heads=8, kv_heads=2, arch="qwen3"),
    # windows shorter than the 40 / 150-token test sequences, one shorter than a score chunk
    Spec("mistral_m4g1_w16", 2010, m=4, g=1, heads=8, kv_heads=2, arch="mistral", sliding_window=16),
    Spec("mistral_m5g2_w5", 2011, m=5, g=2, heads=4, kv_heads=1, arch="mistral", sliding_window=5),
]

CLASSES = {"llama": "LlamaSwiftKVForCausalLM", "qwen2": "Qwen2SwiftKVForCausalLM", "qwen3": "Qwen3SwiftKVForCausalLM",
           "mistral": "MistralSwiftKVForCausalLM"}


def config_json(s: Spec) -> dict:
    c = {
        "architectures": [CLASSES[s.arch]],
        "model_type": s.arch + "_swiftkv",
        "attention_bias": s.attention_bias,
        "attention_dropout": 0.0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "hidden_act": "silu",
        "hidden_size": HIDDEN,
        "initializer_range": 0.02,
        "intermediate_size": INTERMEDIATE,
        "key_value_group_size": s.g,
        "max_position_embeddings": 2048,
        "mlp_bias": False,
        "num_attention_heads": s.heads,
        "num_hidden_layers": LAYERS,
        "num_key_value_heads": s.kv_heads,
        "num_key_value_layers": s.m,
        "rms_norm_eps": 1e-5,
        "rope_scaling": s.rope_scaling,
        "rope_theta": s.rope_theta,
        "swiftkv": s.swiftkv_flag,
        "tie_word_embeddings": s.tied,
        "torch_dtype": "float32",
        "transformers_version": "4.46.0",
        "use_cache": True,
        "vocab_size": VOCAB,
    }
    if s.head_dim is not None:
        c["head_dim"] = s.head_dim
    if s.arch == "qwen2":
        del c["attention_bias"]  # Qwen2 configs have none: the q/k/v biases are implicit
    if s.arch == "mistral":
        c["sliding_window"] = s.sliding_window
    return c


def make_weights(s: Spec) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(s.seed)
    q_dim, kv_dim = s.heads * s.d, s.kv_heads * s.d
    w: dict[str, np.ndarray] = {}

    def normal(name: str, shape: tuple[int, ...], std: float, mean: float = 0.0) -> None:
        w[name] = (mean + std * rng.standard_normal(shape)).astype(np.float32)

    def linear(name: str, out_f: int, in_f: int, std: float = 0.1, bias: bool = False) -> None:
        normal(name + ".weight", (out_f, in_f), std)
        if bias:
            normal(name + ".bias", (out_f,), 0.1)

    normal("model.embed_tokens.weight", (VOCAB, HIDDEN), 0.3)
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        a = p + "self_attn."
        normal(p + "input_layernorm.weight", (HIDDEN,), 0.1, 1.0)
        linear(a + "q_proj", q_dim, HIDDEN, 0.15, s.qkv_bias)
        linear(a + "k_proj", kv_dim, HIDDEN, 0.15, s.qkv_bias)
        linear(a + "v_proj", kv_dim, HIDDEN, 0.1, s.qkv_bias)
        linear(a + "o_proj", HIDDEN, q_dim, 0.1, s.o_bias)  # Llama's attention_bias covers o_proj too
        if s.arch == "qwen3":
            normal(a + "q_norm.weight", (s.d,), 0.1, 1.0)
            normal(a + "k_norm.weight", (s.d,), 0.1, 1.0)
        if i >= s.m:
            linear(a + "q_proj_swiftkv", q_dim, HIDDEN, 0.15, s.qkv_bias)
            if s.arch == "qwen3":
                normal(a + "q_norm_swiftkv.weight", (s.d,), 0.1, 1.0)
            if (i - s.m) % s.g == 0:
                linear(a + "k_proj_swiftkv", kv_dim, HIDDEN, 0.15, s.qkv_bias)
                linear(a + "v_proj_swiftkv", kv_dim, HIDDEN, 0.1, s.qkv_bias)
                if s.arch == "qwen3":
                    normal(a + "k_norm_swiftkv.weight", (s.d,), 0.1, 1.0)
        normal(p + "post_attention_layernorm.weight", (HIDDEN,), 0.1, 1.0)
        linear(p + "mlp.gate_proj", INTERMEDIATE, HIDDEN)
        linear(p + "mlp.up_proj", INTERMEDIATE, HIDDEN)
        linear(p + "mlp.down_proj", HIDDEN, INTERMEDIATE)
    normal("model.norm.weight", (HIDDEN,), 0.1, 1.0)
    normal("model.norm_swiftkv.weight", (HIDDEN,), 0.1, 1.0)
    if not s.tied:
        normal("lm_head.weight", (VOCAB, HIDDEN), 0.3)
    return w


def write_model(s: Spec, out_dir: str) -> str:
    from safetensors.numpy import save_file

    d = os.path.join(out_dir, s.name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(config_json(s), f, indent=2, sort_keys=True)
        f.write("\n")
    save_file(make_weights(s), os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    return d


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__)
        return 2
    for s in SPECS:
        print(write_model(s, argv[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
