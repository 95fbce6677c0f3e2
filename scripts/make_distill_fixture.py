#!/usr/bin/env python3
"""Fixtures for tests/unit/test_distill_model.cpp: tiny random SwiftKV checkpoints, one packed
batch each, and the distillation loss and the gradient of every trainable tensor computed by
PyTorch autograd in float64, from a forward written here straight from the math (Llama layers,
per-document causal masking and positions, SwiftKV K/V from norm_swiftkv(x_M), KL at
temperature tau plus the hidden-state MSE at the last layer's input, docs/swiftkv.md#distillation).

Generated once and committed (a few hundred KB); needs torch + safetensors + numpy, e.g. the
lm-eval venv:

    scripts/setup_lm_eval_venv.sh
    .venv-lmeval/bin/python scripts/make_distill_fixture.py tests/fixtures/distill [CASE ...]

(naming cases regenerates only those). Beyond Llama: `qwen3` cases add per-head q_norm / k_norm
and the trainable q_norm_swiftkv / k_norm_swiftkv (docs/swiftkv.md#checkpoint-layout), `window` cases
Mistral's sliding window (row i sees rows i - W < j <= i of its document).

Each case directory holds model/ (config.json, model.safetensors: every teacher tensor plus the
SwiftKV tensors, drawn independently so teacher and student differ clearly), batch.json (ids,
positions, doc_start, temperature, kl_scale, mse_scale) and expected.json (float64 values as JSON
numbers: kl, mse and the flattened gradient of every trainable tensor, by name).
"""
import json
import os
import sys

import numpy as np
import torch
from safetensors.numpy import save_file

CASES = [
    # name, seed, layers, M, G, heads, kv_heads, head_dim, hidden, ffn, vocab, bias, tied[, extra]
    ("m2g1_gqa", 11, 4, 2, 1, 4, 2, 8, 32, 48, 97, False, True),
    ("m1g2_bias_untied", 12, 5, 1, 2, 2, 2, 8, 16, 40, 61, True, False),
    # head_dim 12 != 32 / 4
    ("m1g2_qwen3", 13, 5, 1, 2, 4, 2, 12, 32, 48, 89, False, True, {"arch": "qwen3"}),
    ("m2g1_mistral_window", 14, 4, 2, 1, 4, 2, 8, 32, 48, 83, False, False, {"arch": "mistral", "window": 3}),
]


def rms_norm(x, w, eps):
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps) * w


def rope(x, pos, heads, hd, inv_freq):
    # Hugging Face rotate_half layout: pairs (j, j + hd/2).
    n = x.shape[0]
    x = x.view(n, heads, hd)
    ang = pos[:, None].double() * inv_freq[None, :]  # [n, hd/2]
    cos = torch.cat([ang.cos(), ang.cos()], -1)[:, None, :]
    sin = torch.cat([ang.sin(), ang.sin()], -1)[:, None, :]
    x1, x2 = x[..., : hd // 2], x[..., hd // 2:]
    rot = torch.cat([-x2, x1], -1)
    return (x * cos + rot * sin).reshape(n, heads * hd)


def attention(q, k, v, heads, kv_heads, hd, doc_start, window=None):
    n = q.shape[0]
    q = q.view(n, heads, hd).transpose(0, 1)  # [H, n, hd]
    rep = heads // kv_heads
    k = k.view(n, kv_heads, hd).transpose(0, 1).repeat_interleave(rep, 0)
    v = v.view(n, kv_heads, hd).transpose(0, 1).repeat_interleave(rep, 0)
    s = q @ k.transpose(1, 2) / (hd ** 0.5)
    i = torch.arange(n)[:, None]
    j = torch.arange(n)[None, :]
    allowed = (j <= i) & (j >= torch.tensor(doc_start)[:, None])
    if window is not None:
        allowed &= j > i - window
    s = s.masked_fill(~allowed, float("-inf"))
    return (s.softmax(-1) @ v).transpose(0, 1).reshape(n, heads * hd)


def linear(x, w, b=None):
    y = x @ w.T
    return y + b if b is not None else y


def head_norm(x, w, heads, eps):
    n = x.shape[0]
    return rms_norm(x.view(n, heads, -1), w, eps).reshape(n, -1)


def main():
    out_root = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/distill"
    only = set(sys.argv[2:])
    for (name, seed, L, M, G, H, KV, hd, d, ffn, vocab, bias, tied, *extra) in CASES:
        if only and name not in only:
            continue
        extra = extra[0] if extra else {}
        arch, window = extra.get("arch", "llama"), extra.get("window")
        qk_norm = arch == "qwen3"
        rng = np.random.default_rng(seed)
        T = {}

        def put(key, shape, std, mean=0.0):
            T[key] = (mean + std * rng.standard_normal(shape)).astype(np.float32)

        put("model.embed_tokens.weight", (vocab, d), 0.3)
        if not tied:
            put("lm_head.weight", (vocab, d), 0.3)
        put("model.norm.weight", (d,), 0.1, 1.0)
        for l in range(L):
            p = f"model.layers.{l}."
            put(p + "input_layernorm.weight", (d,), 0.1, 1.0)
            put(p + "post_attention_layernorm.weight", (d,), 0.1, 1.0)
            put(p + "self_attn.q_proj.weight", (H * hd, d), 0.15)
            put(p + "self_attn.k_proj.weight", (KV * hd, d), 0.15)
            put(p + "self_attn.v_proj.weight", (KV * hd, d), 0.1)
            put(p + "self_attn.o_proj.weight", (d, H * hd), 0.1)
            if bias:
                put(p + "self_attn.q_proj.bias", (H * hd,), 0.1)
                put(p + "self_attn.k_proj.bias", (KV * hd,), 0.1)
                put(p + "self_attn.v_proj.bias", (KV * hd,), 0.1)
                put(p + "self_attn.o_proj.bias", (d,), 0.1)
            put(p + "mlp.gate_proj.weight", (ffn, d), 0.1)
            put(p + "mlp.up_proj.weight", (ffn, d), 0.1)
            put(p + "mlp.down_proj.weight", (d, ffn), 0.1)
            if qk_norm:
                put(p + "self_attn.q_norm.weight", (hd,), 0.1, 1.0)
                put(p + "self_attn.k_norm.weight", (hd,), 0.1, 1.0)
        put("model.norm_swiftkv.weight", (d,), 0.1, 1.0)
        trainable = ["model.norm_swiftkv.weight"]
        for l in range(M, L):
            p = f"model.layers.{l}.self_attn."
            put(p + "q_proj_swiftkv.weight", (H * hd, d), 0.15)
            trainable.append(p + "q_proj_swiftkv.weight")
            if bias:
                put(p + "q_proj_swiftkv.bias", (H * hd,), 0.1)
                trainable.append(p + "q_proj_swiftkv.bias")
            if qk_norm:
                put(p + "q_norm_swiftkv.weight", (hd,), 0.1, 1.0)
                trainable.append(p + "q_norm_swiftkv.weight")
        for l in range(M, L, G):
            p = f"model.layers.{l}.self_attn."
            for proj, std in (("k", 0.15), ("v", 0.1)):
                put(p + f"{proj}_proj_swiftkv.weight", (KV * hd, d), std)
                trainable.append(p + f"{proj}_proj_swiftkv.weight")
                if bias:
                    put(p + f"{proj}_proj_swiftkv.bias", (KV * hd,), 0.1)
                    trainable.append(p + f"{proj}_proj_swiftkv.bias")
            if qk_norm:
                put(p + "k_norm_swiftkv.weight", (hd,), 0.1, 1.0)
                trainable.append(p + "k_norm_swiftkv.weight")

        # A packed row block: three documents, the last of length 1.
        lens = [7, 5, 1]
        n = sum(lens)
        ids = rng.integers(0, vocab, n).tolist()
        positions, doc_start = [], []
        start = 0
        for ln in lens:
            positions += list(range(ln))
            doc_start += [start] * ln
            start += ln
        tau, kl_scale, mse_scale, eps, theta = 2.0, 4.0 / n, 0.5 / (n * d), 1e-5, 10000.0

        W = {k: torch.tensor(v, dtype=torch.float64) for k, v in T.items()}
        for k in trainable:
            W[k].requires_grad_(True)
        inv_freq = 1.0 / theta ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd)
        pos = torch.tensor(positions)
        head = W["model.embed_tokens.weight"] if tied else W["lm_head.weight"]

        def layer(l, x, wq, bq, qn, k=None, v=None):
            p = f"model.layers.{l}."
            xn = rms_norm(x, W[p + "input_layernorm.weight"], eps)
            q = linear(xn, wq, bq)
            if qn is not None:
                q = head_norm(q, qn, H, eps)
            q = rope(q, pos, H, hd, inv_freq)
            if k is None:
                k = linear(xn, W[p + "self_attn.k_proj.weight"], W.get(p + "self_attn.k_proj.bias"))
                if qk_norm:
                    k = head_norm(k, W[p + "self_attn.k_norm.weight"], KV, eps)
                k = rope(k, pos, KV, hd, inv_freq)
                v = linear(xn, W[p + "self_attn.v_proj.weight"], W.get(p + "self_attn.v_proj.bias"))
            a = attention(q, k, v, H, KV, hd, doc_start, window)
            x = x + linear(a, W[p + "self_attn.o_proj.weight"], W.get(p + "self_attn.o_proj.bias"))
            xn = rms_norm(x, W[p + "post_attention_layernorm.weight"], eps)
            g = linear(xn, W[p + "mlp.gate_proj.weight"])
            u = linear(xn, W[p + "mlp.up_proj.weight"])
            return x + linear(torch.nn.functional.silu(g) * u, W[p + "mlp.down_proj.weight"])

        def teacher_q(l):
            p = f"model.layers.{l}.self_attn."
            return W[p + "q_proj.weight"], W.get(p + "q_proj.bias"), W.get(p + "q_norm.weight")

        x = W["model.embed_tokens.weight"][torch.tensor(ids)]
        for l in range(M):
            x = layer(l, x, *teacher_q(l))
        x_m = x
        with torch.no_grad():
            xt = x_m.clone()
            for l in range(M, L):
                if l == L - 1:
                    ht = xt.clone()
                xt = layer(l, xt, *teacher_q(l))
            zt = linear(rms_norm(xt, W["model.norm.weight"], eps), head)
        h = rms_norm(x_m.detach(), W["model.norm_swiftkv.weight"], eps)
        kv = {}
        for l in range(M, L, G):
            p = f"model.layers.{l}.self_attn."
            k = linear(h, W[p + "k_proj_swiftkv.weight"], W.get(p + "k_proj_swiftkv.bias"))
            if qk_norm:
                k = head_norm(k, W[p + "k_norm_swiftkv.weight"], KV, eps)
            k = rope(k, pos, KV, hd, inv_freq)
            v = linear(h, W[p + "v_proj_swiftkv.weight"], W.get(p + "v_proj_swiftkv.bias"))
            kv[l] = (k, v)
        xs = x_m.detach()
        for l in range(M, L):
            if l == L - 1:
                hs = xs
            p = f"model.layers.{l}.self_attn."
            leader = M + (l - M) // G * G
            xs = layer(l, xs, W[p + "q_proj_swiftkv.weight"], W.get(p + "q_proj_swiftkv.bias"),
                       W.get(p + "q_norm_swiftkv.weight"), *kv[leader])
        zs = linear(rms_norm(xs, W["model.norm.weight"], eps), head)
        pt = (zt / tau).softmax(-1)
        kl = kl_scale * (pt * ((zt / tau).log_softmax(-1) - (zs / tau).log_softmax(-1))).sum()
        mse = mse_scale * ((hs - ht) ** 2).sum()
        (kl + mse).backward()

        case = os.path.join(out_root, name)
        os.makedirs(os.path.join(case, "model"), exist_ok=True)
        cls = {"llama": "LlamaSwiftKVForCausalLM", "qwen3": "Qwen3SwiftKVForCausalLM",
               "mistral": "MistralSwiftKVForCausalLM"}[arch]
        config = {
            "architectures": [cls], "model_type": arch + "_swiftkv", "vocab_size": vocab,
            "hidden_size": d, "intermediate_size": ffn, "num_hidden_layers": L, "num_attention_heads": H,
            "num_key_value_heads": KV, "head_dim": hd, "rms_norm_eps": eps, "rope_theta": theta,
            "max_position_embeddings": 64, "tie_word_embeddings": tied, "attention_bias": bias,
            "torch_dtype": "float32", "hidden_act": "silu", "swiftkv": True, "num_key_value_layers": M,
            "key_value_group_size": G,
        }
        if arch == "mistral":
            config["sliding_window"] = window
        with open(os.path.join(case, "model", "config.json"), "w") as f:
            json.dump(config, f, indent=2)
        save_file(T, os.path.join(case, "model", "model.safetensors"))
        with open(os.path.join(case, "batch.json"), "w") as f:
            json.dump({"ids": ids, "positions": positions, "doc_start": doc_start, "temperature": tau,
                       "kl_scale": kl_scale, "mse_scale": mse_scale}, f)
        expected = {"kl": kl.item(), "mse": mse.item(),
                    "grads": {k: [float(g) for g in W[k].grad.numpy().ravel()] for k in trainable}}
        with open(os.path.join(case, "expected.json"), "w") as f:
            json.dump(expected, f)
        print(f"{case}: kl {kl.item():.6g} mse {mse.item():.6g}, {len(trainable)} trainable tensors")


if __name__ == "__main__":
    main()
