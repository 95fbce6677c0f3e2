"""Reference Llama / Qwen2 / Qwen3 / Mistral forward pass in plain numpy (float64), written from
the math.

Reads a Hugging Face model directory (config.json in transformers 4.x style -- `rope_theta` +
`rope_scaling` -- or 5.x style -- `rope_parameters`; model.safetensors or sharded
model-0000x-of-0000N.safetensors + model.safetensors.index.json; F32 / F16 / BF16 tensors).
Needs only numpy and safetensors (no torch), so CI can use it.

    from numpy_llama import forward_logprobs
    lp = forward_logprobs("tests/fixtures/models/llama_gqa", [5, 17, 3])   # [T, vocab] log-probs

Row t of the result is log p(. | ids[0..t]), i.e. the distribution of the token at position t+1.
The whole sequence is processed at once (no KV cache) with a causal mask.

SwiftKV checkpoints (`model_type: "llama_swiftkv"` or architectures ["LlamaSwiftKVForCausalLM"];
docs/swiftkv.md#the-transformation) are supported too: with M = `num_key_value_layers` and
G = `key_value_group_size`, layers j >= M take K/V from h = RMSNorm(x_M; model.norm_swiftkv.weight)
through the `k/v_proj_swiftkv` of their group leader g = M + G*floor((j-M)/G), and Q from their own
input norm through `q_proj_swiftkv`. `swiftkv=None` follows the config's `swiftkv` flag; False
runs the teacher (plain Llama with every layer's original q/k/v_proj) of the same checkpoint:

    lp_student = forward_logprobs(d, ids)                 # config says "swiftkv": true
    lp_teacher = forward_logprobs(d, ids, swiftkv=False)

The other architectures (transformers' modeling_*.py): Qwen2 biases q/k/v always and o_proj
never; Qwen3 applies an RMSNorm of weight `self_attn.q_norm` / `k_norm` [head_dim] to every head
of Q and K before RoPE; Mistral's `sliding_window` W lets the query at i see keys i - W < j <= i.
Their SwiftKV variants (`qwen2_swiftkv`, `qwen3_swiftkv`, `mistral_swiftkv`; docs/swiftkv.md#checkpoint-layout) work
as Llama's, and qwen3_swiftkv normalises Q_j with `q_norm_swiftkv` of layer j and the leader's
keys with its `k_norm_swiftkv`.
"""
from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Config", "load_config", "load_weights", "rope_inv_freq", "forward_logits", "forward_logprobs"]


# ----------------------------------------------------------------------------------------------
# config.json
# ----------------------------------------------------------------------------------------------
@dataclass
class Config:
    architecture: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    rms_norm_eps: float
    rope_theta: float
    rope_scaling: dict = field(default_factory=dict)  # {"rope_type": "default"|"linear"|"llama3", ...}
    tie_word_embeddings: bool = False
    sliding_window: int | None = None  # Mistral
    qk_norm: bool = False  # Qwen3
    # SwiftKV (only for llama_swiftkv checkpoints; defaults as in the reference LlamaSwiftKVConfig)
    is_swiftkv_model: bool = False
    swiftkv: bool = False  # the config's flag: run the SwiftKV path by default
    num_key_value_layers: int = 0  # M; = num_layers when absent
    key_value_group_size: int = 1  # G

    def swiftkv_group_leader(self, layer: int) -> int:
        """The layer whose k/v_proj_swiftkv produce the K/V of `layer` (>= M)."""
        m, g = self.num_key_value_layers, self.key_value_group_size
        return m + g * ((layer - m) // g)


def load_config(model_dir: str) -> Config:
    with open(os.path.join(model_dir, "config.json")) as f:
        c = json.load(f)
    archs = c.get("architectures") or []
    classes = {"LlamaForCausalLM": "llama", "Qwen2ForCausalLM": "qwen2", "Qwen3ForCausalLM": "qwen3",
               "MistralForCausalLM": "mistral"}
    arch, is_swiftkv = None, False
    for name, a in classes.items():
        if name in archs or name.replace("ForCausalLM", "SwiftKVForCausalLM") in archs:
            arch, is_swiftkv = a, name not in archs
    if arch is None:
        mt = c.get("model_type", "")
        is_swiftkv = mt.endswith("_swiftkv")
        arch = mt[: -len("_swiftkv")] if is_swiftkv else mt
    if arch not in classes.values():
        raise ValueError(f"{model_dir}: unsupported architecture {archs or c.get('model_type')!r}")
    heads = int(c["num_attention_heads"])
    hidden = int(c["hidden_size"])
    kv = c.get("num_key_value_heads")
    kv = heads if kv is None else int(kv)
    head_dim = c.get("head_dim")
    head_dim = hidden // heads if head_dim is None else int(head_dim)

    # RoPE: 5.x `rope_parameters` (holds rope_theta and the scaling) wins over 4.x fields.
    rp = c.get("rope_parameters")
    if rp is not None:
        scaling = dict(rp)
        theta = float(scaling.pop("rope_theta", c.get("rope_theta", 10000.0)))
    else:
        scaling = dict(c.get("rope_scaling") or {})
        theta = float(c.get("rope_theta", 10000.0))
    rtype = scaling.get("rope_type", scaling.get("type", "default")) if scaling else "default"
    scaling["rope_type"] = rtype
    scaling.pop("type", None)
    if rtype not in ("default", "linear", "llama3"):
        raise ValueError(f"{model_dir}: unsupported rope type {rtype!r}")

    layers = int(c["num_hidden_layers"])
    m = c.get("num_key_value_layers") if is_swiftkv else None
    m = layers if m is None else int(m)
    group = c.get("key_value_group_size") if is_swiftkv else None
    group = 1 if group is None else int(group)
    if not (0 <= m <= layers and group >= 1 and (layers - m) % group == 0):
        raise ValueError(f"{model_dir}: bad SwiftKV layout: {layers} layers, num_key_value_layers {m}, "
                         f"key_value_group_size {group}")

    return Config(
        architecture=arch,
        vocab_size=int(c["vocab_size"]),
        hidden_size=hidden,
        intermediate_size=int(c["intermediate_size"]),
        num_layers=layers,
        num_heads=heads,
        num_kv_heads=kv,
        head_dim=head_dim,
        rms_norm_eps=float(c.get("rms_norm_eps", 1e-6)),
        rope_theta=theta,
        rope_scaling=scaling,
        tie_word_embeddings=bool(c.get("tie_word_embeddings", False)),
        sliding_window=(int(c["sliding_window"]) if arch == "mistral" and c.get("sliding_window") is not None
                        else None),
        qk_norm=arch == "qwen3",
        is_swiftkv_model=is_swiftkv,
        swiftkv=is_swiftkv and bool(c.get("swiftkv", False)),
        num_key_value_layers=m,
        key_value_group_size=group,
    )


# ----------------------------------------------------------------------------------------------
# safetensors
# ----------------------------------------------------------------------------------------------
def _read_header(path: str) -> dict:
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(n))


def _load_file(path: str) -> dict[str, np.ndarray]:
    """All tensors of one .safetensors file as float64 arrays. numpy has no bfloat16, so BF16
    tensors are read from the raw bytes (upper half of a float32) instead of via safetensors."""
    from safetensors import safe_open

    header = _read_header(path)
    data_start = 8 + struct.unpack("<Q", open(path, "rb").read(8))[0]
    out = {}
    with safe_open(path, framework="np") as f:
        for name in f.keys():
            meta = header[name]
            if meta["dtype"] == "BF16":
                b, e = meta["data_offsets"]
                raw = np.fromfile(path, dtype="<u2", count=(e - b) // 2, offset=data_start + b)
                arr = (raw.astype(np.uint32) << 16).view(np.float32).reshape(meta["shape"])
            else:
                arr = f.get_tensor(name)
            out[name] = np.asarray(arr, dtype=np.float64)
    return out


def load_weights(model_dir: str) -> dict[str, np.ndarray]:
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    w: dict[str, np.ndarray] = {}
    for fn in files:
        w.update(_load_file(os.path.join(model_dir, fn)))
    return w


# ----------------------------------------------------------------------------------------------
# math
# ----------------------------------------------------------------------------------------------
def rope_inv_freq(cfg: Config) -> np.ndarray:
    d = cfg.head_dim
    inv = 1.0 / (cfg.rope_theta ** (np.arange(0, d, 2, dtype=np.float64) / d))
    s = cfg.rope_scaling
    t = s["rope_type"]
    if t == "linear":
        inv = inv / float(s["factor"])
    elif t == "llama3":
        factor = float(s["factor"])
        lo = float(s["low_freq_factor"])
        hi = float(s["high_freq_factor"])
        old_ctx = float(s["original_max_position_embeddings"])
        low_freq_wavelen = old_ctx / lo
        high_freq_wavelen = old_ctx / hi
        wavelen = 2 * math.pi / inv
        scaled = np.where(wavelen > low_freq_wavelen, inv / factor, inv)  # low frequencies: divide
        smooth = (old_ctx / wavelen - lo) / (hi - lo)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = (wavelen >= high_freq_wavelen) & (wavelen <= low_freq_wavelen)
        inv = np.where(medium, smoothed, scaled)
    return inv


def _rms_norm(x: np.ndarray, w: np.ndarray, eps: float) -> np.ndarray:
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def _rotate_half(x: np.ndarray) -> np.ndarray:
    h = x.shape[-1] // 2
    return np.concatenate([-x[..., h:], x[..., :h]], axis=-1)


def _head_norm(x: np.ndarray, w: np.ndarray, heads: int, eps: float) -> np.ndarray:
    """RMSNorm over each head's slice of [T, heads*D] (Qwen3's q_norm / k_norm)."""
    T = x.shape[0]
    return _rms_norm(x.reshape(T, heads, -1), w, eps).reshape(T, -1)


def _linear(x, w, b=None):
    y = x @ w.T
    return y if b is None else y + b


def _attention(q, k, v, cos, sin, mask, cfg: Config) -> np.ndarray:
    """Causal multi-head attention with RoPE: q [T, H*D], k/v [T, KV*D] -> [T, H*D]."""
    T = q.shape[0]
    H, KV, D = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
    q = q.reshape(T, H, D).transpose(1, 0, 2)  # [H, T, D]
    k = k.reshape(T, KV, D).transpose(1, 0, 2)  # [KV, T, D]
    v = v.reshape(T, KV, D).transpose(1, 0, 2)
    q = q * cos + _rotate_half(q) * sin
    k = k * cos + _rotate_half(k) * sin
    k = np.repeat(k, H // KV, axis=0)  # query head j uses kv head j // (H / KV)
    v = np.repeat(v, H // KV, axis=0)
    s = q @ k.transpose(0, 2, 1) / math.sqrt(D) + mask  # [H, T, T]
    s = s - s.max(axis=-1, keepdims=True)
    pr = np.exp(s)
    pr /= pr.sum(axis=-1, keepdims=True)
    return (pr @ v).transpose(1, 0, 2).reshape(T, H * D)


def forward_logits(model_dir: str, ids, cfg: Config | None = None, weights: dict | None = None,
                   swiftkv: bool | None = None, taps: dict | None = None) -> np.ndarray:
    """[T, vocab] float64 logits for token ids `ids` starting at position 0.

    swiftkv: None = as the config's `swiftkv` flag says; True = the SwiftKV path (SwiftKV
    checkpoints only); False = the teacher path (every layer's own q/k/v_proj).
    taps: a dict that receives, per layer i, taps["x", i] (the layer's input) and, for layers
    with their own K/V, taps["k", i] / taps["v", i] (k_proj / v_proj outputs, before any k_norm
    and RoPE)."""
    cfg = cfg or load_config(model_dir)
    W = weights if weights is not None else load_weights(model_dir)
    if swiftkv is None:
        swiftkv = cfg.swiftkv
    if swiftkv and not cfg.is_swiftkv_model:
        raise ValueError(f"{model_dir}: swiftkv=True needs a SwiftKV checkpoint")
    M = cfg.num_key_value_layers if swiftkv else cfg.num_layers
    ids = np.asarray(list(ids), dtype=np.int64)
    T = len(ids)

    pos = np.arange(T, dtype=np.float64)
    ang = np.outer(pos, rope_inv_freq(cfg))  # [T, D/2]
    ang = np.concatenate([ang, ang], axis=-1)  # [T, D]
    cos, sin = np.cos(ang)[None], np.sin(ang)[None]  # [1, T, D]
    mask = np.triu(np.full((T, T), -np.inf), k=1)
    if cfg.sliding_window is not None:  # key j is visible to query i iff i - W < j <= i
        mask = mask + np.tril(np.full((T, T), -np.inf), k=-cfg.sliding_window)
    eps = cfg.rms_norm_eps

    x = W["model.embed_tokens.weight"][ids]  # [T, hidden]
    h_kv = None  # SwiftKV: RMSNorm_swiftkv(x_M), the K/V source of every layer >= M
    for i in range(cfg.num_layers):
        p = f"model.layers.{i}."
        a = p + "self_attn."
        if taps is not None:
            taps["x", i] = x
        h = _rms_norm(x, W[p + "input_layernorm.weight"], cfg.rms_norm_eps)
        if i < M:
            q = _linear(h, W[a + "q_proj.weight"], W.get(a + "q_proj.bias"))
            k = _linear(h, W[a + "k_proj.weight"], W.get(a + "k_proj.bias"))
            v = _linear(h, W[a + "v_proj.weight"], W.get(a + "v_proj.bias"))
            if taps is not None:
                taps["k", i], taps["v", i] = k, v
            if cfg.qk_norm:
                q = _head_norm(q, W[a + "q_norm.weight"], cfg.num_heads, eps)
                k = _head_norm(k, W[a + "k_norm.weight"], cfg.num_kv_heads, eps)
        else:
            if i == M:
                h_kv = _rms_norm(x, W["model.norm_swiftkv.weight"], cfg.rms_norm_eps)
            lead = f"model.layers.{cfg.swiftkv_group_leader(i)}.self_attn."
            q = _linear(h, W[a + "q_proj_swiftkv.weight"], W.get(a + "q_proj_swiftkv.bias"))
            k = _linear(h_kv, W[lead + "k_proj_swiftkv.weight"], W.get(lead + "k_proj_swiftkv.bias"))
            v = _linear(h_kv, W[lead + "v_proj_swiftkv.weight"], W.get(lead + "v_proj_swiftkv.bias"))
            if cfg.qk_norm:
                q = _head_norm(q, W[a + "q_norm_swiftkv.weight"], cfg.num_heads, eps)
                k = _head_norm(k, W[lead + "k_norm_swiftkv.weight"], cfg.num_kv_heads, eps)
        o = _attention(q, k, v, cos, sin, mask, cfg)
        bo = None if cfg.architecture == "qwen2" else W.get(a + "o_proj.bias")  # Qwen2Attention: no o_proj bias
        x = x + _linear(o, W[a + "o_proj.weight"], bo)

        h = _rms_norm(x, W[p + "post_attention_layernorm.weight"], cfg.rms_norm_eps)
        m = p + "mlp."
        g = _linear(h, W[m + "gate_proj.weight"], W.get(m + "gate_proj.bias"))
        u = _linear(h, W[m + "up_proj.weight"], W.get(m + "up_proj.bias"))
        act = g / (1.0 + np.exp(-g)) * u  # SiLU(gate) * up
        x = x + _linear(act, W[m + "down_proj.weight"], W.get(m + "down_proj.bias"))

    x = _rms_norm(x, W["model.norm.weight"], cfg.rms_norm_eps)
    head = W.get("lm_head.weight")
    if head is None or cfg.tie_word_embeddings:
        head = W["model.embed_tokens.weight"]
    return x @ head.T


def log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def forward_logprobs(model_dir: str, ids, cfg: Config | None = None, weights: dict | None = None,
                     swiftkv: bool | None = None) -> np.ndarray:
    """[T, vocab] float64 log-probs; row t is the distribution of the token after ids[t]."""
    return log_softmax(forward_logits(model_dir, ids, cfg, weights, swiftkv))


def token_logprobs(model_dir: str, ids, cfg: Config | None = None, weights: dict | None = None,
                   swiftkv: bool | None = None) -> list:
    """[None, log p(ids[1] | ids[:1]), ..., log p(ids[T-1] | ids[:T-1])]."""
    lp = forward_logprobs(model_dir, ids, cfg, weights, swiftkv)
    ids = list(ids)
    return [None] + [float(lp[t, ids[t + 1]]) for t in range(len(ids) - 1)]


if __name__ == "__main__":
    import sys

    d = sys.argv[1]
    toks = [int(t) for t in sys.argv[2].split(",")]
    print(json.dumps({"token_logprobs": token_logprobs(d, toks)}))
