#!/usr/bin/env python3
"""Writes the fuzz harnesses' seed inputs into tests/fuzz/corpus/<harness>/seed-* (committed;
the regression inputs that crashed a harness once sit beside them as crash-*).

Seeds come from the test fixtures (config.json of every fixture model, the sharded index, the
evaluation files) or are built here small (a GGUF and safetensors files of a one-layer model of
hidden size 32, requests, batch lines, templates with contexts), so each harness starts from
inputs that parse all the way. Standard library only; rerun after changing a fixture:
    python3 tests/fuzz/make_seeds.py
"""
from __future__ import annotations

import json
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
FIX = os.path.join(ROOT, "tests", "fixtures")
CORPUS = os.path.join(HERE, "corpus")


def put(harness: str, name: str, data: bytes | str) -> None:
    d = os.path.join(CORPUS, harness)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)


def clear_seeds() -> None:
    if not os.path.isdir(CORPUS):
        return
    for h in os.listdir(CORPUS):
        for f in os.listdir(os.path.join(CORPUS, h)):
            if f.startswith("seed-"):
                os.remove(os.path.join(CORPUS, h, f))


# -- GGUF ------------------------------------------------------------------------------------------
def bytes_to_unicode() -> dict[int, str]:
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def gguf_str(s: str) -> bytes:
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def gguf_kv(key: str, vtype: int, payload: bytes) -> bytes:
    return gguf_str(key) + struct.pack("<I", vtype) + payload


def u32(key, v):
    return gguf_kv(key, 4, struct.pack("<I", v))


def f32(key, v):
    return gguf_kv(key, 6, struct.pack("<f", v))


def string(key, v):
    return gguf_kv(key, 8, gguf_str(v))


def str_array(key, items):
    return gguf_kv(key, 9, struct.pack("<IQ", 8, len(items)) + b"".join(gguf_str(s) for s in items))


def i32_array(key, items):
    return gguf_kv(key, 9, struct.pack("<IQ", 5, len(items)) + b"".join(struct.pack("<i", v) for v in items))


def q8_0(n: int, seed: int) -> bytes:
    out = b""
    for blk in range(n // 32):
        out += struct.pack("<e", 0.01) + bytes(((seed * 7 + blk * 13 + i * 5) % 31) - 15 & 0xFF for i in range(32))
    return out


def f32_data(n: int, v: float = 1.0) -> bytes:
    return struct.pack(f"<{n}f", *([v] * n))


def make_gguf(with_tensors: bool, ggml_proj_type: int = 8, version: int = 3) -> bytes:
    b2u = bytes_to_unicode()
    tokens = [b2u[b] for b in range(256)] + ["Ġt", "he", "Ġthe", "<|im_end|>"]
    merges = ["Ġ t", "h e", "Ġt he"]
    hidden, ffn, heads, kv_heads, vocab = 32, 32, 2, 1, len(tokens)
    kvs = [
        string("general.architecture", "llama"), string("general.name", "fuzz seed"),
        u32("general.alignment", 32),
        u32("llama.context_length", 64), u32("llama.embedding_length", hidden), u32("llama.block_count", 1),
        u32("llama.feed_forward_length", ffn), u32("llama.attention.head_count", heads),
        u32("llama.attention.head_count_kv", kv_heads), f32("llama.attention.layer_norm_rms_epsilon", 1e-5),
        f32("llama.rope.freq_base", 10000.0), u32("llama.rope.dimension_count", hidden // heads),
        string("tokenizer.ggml.model", "gpt2"), string("tokenizer.ggml.pre", "smollm"),
        str_array("tokenizer.ggml.tokens", tokens), i32_array("tokenizer.ggml.token_type", [1] * 259 + [3]),
        str_array("tokenizer.ggml.merges", merges), u32("tokenizer.ggml.bos_token_id", 259),
        u32("tokenizer.ggml.eos_token_id", 259),
        string("tokenizer.chat_template", "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}"
                                          "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>"
                                          "assistant\n{% endif %}"),
    ]
    tensors = []  # (name, ne, type, data)
    if with_tensors:
        def proj(name, rows, cols, seed):
            if ggml_proj_type == 8:
                tensors.append((name, [cols, rows], 8, q8_0(rows * cols, seed)))
            elif ggml_proj_type == 1:
                tensors.append((name, [cols, rows], 1, struct.pack(f"<{rows * cols}e", *([0.01] * (rows * cols)))))
            else:
                tensors.append((name, [cols, rows], 0, f32_data(rows * cols, 0.01)))
        proj("token_embd.weight", vocab, hidden, 1)
        tensors.append(("output_norm.weight", [hidden], 0, f32_data(hidden)))
        tensors.append(("blk.0.attn_norm.weight", [hidden], 0, f32_data(hidden)))
        tensors.append(("blk.0.ffn_norm.weight", [hidden], 0, f32_data(hidden)))
        hd = hidden // heads
        proj("blk.0.attn_q.weight", heads * hd, hidden, 2)
        proj("blk.0.attn_k.weight", kv_heads * hd, hidden, 3)
        proj("blk.0.attn_v.weight", kv_heads * hd, hidden, 4)
        proj("blk.0.attn_output.weight", hidden, heads * hd, 5)
        proj("blk.0.ffn_gate.weight", ffn, hidden, 6)
        proj("blk.0.ffn_up.weight", ffn, hidden, 7)
        proj("blk.0.ffn_down.weight", hidden, ffn, 8)
    out = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kvs)) + b"".join(kvs)
    offset, data = 0, b""
    for name, ne, t, payload in tensors:
        out += gguf_str(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<q", n) for n in ne)
        out += struct.pack("<IQ", t, offset)
        pad = (-len(payload)) % 32
        data += payload + b"\0" * pad
        offset += len(payload) + pad
    out += b"\0" * ((-len(out)) % 32)
    return out + data


# -- safetensors -----------------------------------------------------------------------------------
def safetensors(tensors: dict[str, tuple[str, list[int], bytes]], metadata: dict | None = None) -> bytes:
    header, data = {}, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, (dtype, shape, payload) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(payload)]}
        data += payload
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((-len(h)) % 8)
    return struct.pack("<Q", len(h)) + h + data


# The config the safetensors harness's mode 1 puts beside the file (fuzz_safetensors.cpp).
TINY = dict(vocab=16, hidden=8, ffn=16, heads=2, kv_heads=1)


def tiny_model_safetensors(dtype: str = "F32") -> bytes:
    v, h, f, nh, nkv = TINY["vocab"], TINY["hidden"], TINY["ffn"], TINY["heads"], TINY["kv_heads"]
    hd = h // nh
    size = {"F32": 4, "F16": 2, "BF16": 2}[dtype]

    def t(*shape):
        n = 1
        for s in shape:
            n *= s
        return (dtype, list(shape), b"\x3c" * (n * size) if dtype != "F32" else f32_data(n, 0.01))
    ts = {
        "model.embed_tokens.weight": t(v, h), "model.norm.weight": t(h), "lm_head.weight": t(v, h),
        "model.layers.0.input_layernorm.weight": t(h), "model.layers.0.post_attention_layernorm.weight": t(h),
        "model.layers.0.self_attn.q_proj.weight": t(nh * hd, h), "model.layers.0.self_attn.k_proj.weight": t(nkv * hd, h),
        "model.layers.0.self_attn.v_proj.weight": t(nkv * hd, h), "model.layers.0.self_attn.o_proj.weight": t(h, nh * hd),
        "model.layers.0.mlp.gate_proj.weight": t(f, h), "model.layers.0.mlp.up_proj.weight": t(f, h),
        "model.layers.0.mlp.down_proj.weight": t(h, f),
    }
    return safetensors(ts, {"format": "pt"})


def main() -> None:
    clear_seeds()
    # GGUF
    put("fuzz_gguf", "q8_0.gguf", make_gguf(True, 8))
    put("fuzz_gguf", "metadata-only.gguf", make_gguf(False))
    put("fuzz_gguf", "metadata-only-v2.gguf", make_gguf(False, version=2))

    # safetensors: mode byte 0 (a file), 1 (a model directory's only file), 2 (a sharded index)
    put("fuzz_safetensors", "file-f32.st", b"\x00" + safetensors(
        {"a": ("F32", [2, 3], f32_data(6)), "b": ("F32", [4], f32_data(4))}, {"format": "pt", "note": "x"}))
    put("fuzz_safetensors", "file-mixed.st", b"\x00" + safetensors(
        {"h": ("F16", [4], b"\0\x3c" * 4), "g": ("BF16", [2, 2], b"\x80\x3f" * 4), "e": ("F32", [0], b""),
         "s": ("F32", [], f32_data(1))}))
    put("fuzz_safetensors", "file-fp8.st", b"\x00" + safetensors(
        {"w": ("F8_E4M3", [2, 16], bytes(range(32))), "w_scale_inv": ("F32", [1, 1], f32_data(1))}))
    put("fuzz_safetensors", "dir-f32.st", b"\x01" + tiny_model_safetensors("F32"))
    put("fuzz_safetensors", "dir-bf16.st", b"\x01" + tiny_model_safetensors("BF16"))
    with open(os.path.join(FIX, "models", "llama_sharded", "model.safetensors.index.json"), "rb") as f:
        put("fuzz_safetensors", "index.json", b"\x02" + f.read())

    # config.json: every fixture's, plus FP8 and rope variants
    configs = []
    for base in ("models", "distill"):
        for d in sorted(os.listdir(os.path.join(FIX, base))):
            p = os.path.join(FIX, base, d, "config.json") if base == "models" else \
                os.path.join(FIX, base, d, "model", "config.json")
            if os.path.exists(p):
                with open(p) as f:
                    text = f.read()
                configs.append(json.loads(text))
                put("fuzz_config", f"{base}-{d}.json", text)
    c = dict(configs[0])
    c["quantization_config"] = {"quant_method": "fp8", "activation_scheme": "dynamic", "fmt": "e4m3",
                                "weight_block_size": [128, 128], "modules_to_not_convert": ["lm_head"]}
    put("fuzz_config", "fp8-block.json", json.dumps(c, indent=1))
    c = dict(configs[0])
    c["rope_scaling"] = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                         "original_max_position_embeddings": 8192}
    put("fuzz_config", "llama3-rope.json", json.dumps(c, indent=1))
    c = dict(configs[0])
    c["rope_scaling"] = {"type": "linear", "factor": 2.0}
    c["model_type"] = "mistral"
    c["architectures"] = ["MistralForCausalLM"]
    c["sliding_window"] = 16
    put("fuzz_config", "mistral-linear.json", json.dumps(c, indent=1))

    # tokenizer: texts for the fixture tokenizers (tokenizer.json seeds are the fixtures themselves)
    for i, text in enumerate(["Hello world", "The capital of France is Paris.\n\n  x  ",
                              "héllo wörld ☃ 日本語 😀", "<|endoftext|> xyzzy [MASK] 12345 67",
                              "\t\r\n  \u00a0 'll 've n't"]):
        put("fuzz_tokenizer", f"text-{i}.txt", text)

    # jinja: small templates with and without a context (the fixture templates are seeds too)
    templates = [
        "{% for m in messages %}{{ m.role | upper }}: {{ m.content | trim }}\n{% endfor %}",
        "{% set ns = namespace(n=0) %}{% for m in messages if m.role != 'system' %}{% set ns.n = ns.n + 1 %}"
        "{{ loop.index }}/{{ loop.length }} {{ m['content'][:5] }}{% endfor %}{{ ns.n }}",
        "{% macro f(a, b=2) %}{{ a * b }}{% endmacro %}{{ f(3) }} {{ f('x', b=3) }} {{ [1,2,3] | join(',') }}"
        " {{ {'a': 1} | tojson }} {{ '%s-%d' % ('a', 4) }} {{ 'x'.split('y') }} {{ range(3) | list }}",
        "{%- if messages[0]['role'] == 'system' %}{{ raise_exception('no system') }}{% endif -%}"
        "{{ bos_token }}{% for m in messages %}{% if loop.first %}[{% endif %}{{ m.content }}{% endfor %}",
    ]
    for i, t in enumerate(templates):
        put("fuzz_jinja", f"template-{i}.jinja", t)
    put("fuzz_jinja", "with-context.jinja",
        "{{ x.y[0] }} {{ x | length }} {% for k, v in x.items() %}{{ k }}={{ v }};{% endfor %}"
        "\n#context#\n" + json.dumps({"x": {"y": [1, "a"], "z": None}, "messages": [{"role": "user", "content": "hi"}]}))

    # OpenAI request bodies
    reqs = [
        {"model": "fuzz-model", "prompt": "Hello", "max_tokens": 8, "temperature": 0},
        {"prompt": ["a", "b"], "n": 2, "top_p": 0.9, "top_k": 5, "stop": ["\n", "x"], "seed": 3, "logprobs": 2,
         "echo": True},
        {"prompt": [1, 2, 3], "max_tokens": 1, "logit_bias": {"5": -100}, "stop_token_ids": [7], "ignore_eos": True},
        {"prompt": [[1, 2], [3]], "min_tokens": 1, "presence_penalty": 0.5, "frequency_penalty": 0.5,
         "repetition_penalty": 1.1, "stream": True, "stream_options": {"include_usage": True}},
        {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
         "max_completion_tokens": 4, "logprobs": True, "top_logprobs": 3},
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}], "add_generation_prompt": False,
         "continue_final_message": True, "chat_template_kwargs": {"enable_thinking": False}},
        {"messages": [{"role": "user", "content": "x"}], "tools": [], "response_format": {"type": "text"}},
    ]
    for i, r in enumerate(reqs):
        put("fuzz_openai_request", f"request-{i}.json", json.dumps(r))

    # run-batch files
    lines = [{"custom_id": f"r{i}", "method": "POST",
              "url": "/v1/chat/completions" if "messages" in r else "/v1/completions", "body": r}
             for i, r in enumerate(reqs)]
    put("fuzz_batch_lines", "batch.jsonl", "\n".join(json.dumps(x) for x in lines) + "\n")
    put("fuzz_batch_lines", "bad-lines.jsonl", '{"custom_id": "a", "method": "GET", "url": "/v1/completions", "body": {}}\n'
        '{"custom_id": "b", "method": "POST", "url": "/v1/embeddings", "body": {}}\n\n   \nnot json\n[1]\n'
        '{"custom_id": "c", "method": "POST", "url": "/v1/completions"}\n')

    # training data (mode 0), mc files (1), built-in tasks (2..9), in fuzz_jsonl.cpp's order
    put("fuzz_jsonl", "train.jsonl", b"\x00" + json.dumps({"text": "Hello world, the end."}).encode() + b"\n" +
        json.dumps({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}).encode()
        + b"\n\n" + json.dumps({"token_ids": [1, 2, 3, 4, 5], "finish_reason": "length"}).encode() + b"\n")
    with open(os.path.join(FIX, "eval", "mc_small.jsonl"), "rb") as f:
        put("fuzz_jsonl", "mc.jsonl", b"\x01" + f.read())
    task_lines = {
        2: [{"question": {"stem": "Which is hot?", "choices": [{"text": "sun", "label": "A"},
                                                                {"text": "ice", "label": "B"}]}, "answerKey": "A"}],
        3: [{"goal": "Open a jar", "sol1": "twist the lid", "sol2": "freeze it", "label": 0}],
        4: [{"passage": "Water is wet.", "question": "is water wet", "label": "true"},
            {"passage": "p", "question": "q", "label": False}],
        7: [{"context": "The cat sat on the", "continuation": "mat"}],
        8: [{"question": "What is 2 + 3?", "answer": "2 + 3 = 5\n#### 5"}],
    }
    for mode, rows in task_lines.items():
        put("fuzz_jsonl", f"task{mode}.jsonl", bytes([mode]) + "\n".join(json.dumps(r) for r in rows).encode() + b"\n")
    tqa = json.dumps([{"question": "Is the earth flat?", "mc1_targets": {"No.": 1, "Yes.": 0},
                       "mc2_targets": {"No.": 1, "It is round.": 1, "Yes.": 0}}])
    put("fuzz_jsonl", "task5.json", b"\x05" + tqa.encode())
    put("fuzz_jsonl", "task6.json", b"\x06" + tqa.encode())
    put("fuzz_jsonl", "task9.csv", b"\x09" + b'question,A,B,C,D,answer\n"What, if anything?",a,b,"c ""q""",d,C\n'
        b"Second?,1,2,3,4,0\n")


if __name__ == "__main__":
    main()
