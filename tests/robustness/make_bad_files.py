"""Builds tiny valid models and corrupt variants of them for tests/robustness/test_bad_input.py.

Everything is generated at test time into a temporary directory; no weights are committed.

    from make_bad_files import build_all
    cases = build_all("/tmp/x")   # {"name": path, ...}; "hf_valid" and "gguf_valid" are good models

Valid models (random F32 weights, a Llama with vocab 64, hidden 32, 2 layers, 4 heads, 2 KV
heads, intermediate 64):
  * hf_valid:   config.json + model.safetensors (safetensors.numpy.save_file)
  * gguf_valid: a llama GGUF (gguf.GGUFWriter) with a minimal gpt2-style tokenizer

Every corrupt variant is a copy of one of them with exactly one defect, so the CLI's error has
exactly one thing to name. Paths are neutral (c00, c01, ...) so that a test matching a keyword in
the error message cannot be fooled by the case name appearing in the path.
"""
from __future__ import annotations

import json
import os
import shutil
import struct

import numpy as np

VOCAB, HIDDEN, LAYERS, HEADS, KV_HEADS, FFN, MAX_POS = 64, 32, 2, 4, 2, 64, 128
HEAD_DIM = HIDDEN // HEADS

HF_CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "vocab_size": VOCAB,
    "hidden_size": HIDDEN,
    "intermediate_size": FFN,
    "num_hidden_layers": LAYERS,
    "num_attention_heads": HEADS,
    "num_key_value_heads": KV_HEADS,
    "max_position_embeddings": MAX_POS,
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "hidden_act": "silu",
    "tie_word_embeddings": False,
    "torch_dtype": "float32",
    "bos_token_id": 1,
    "eos_token_id": 2,
}


# ----------------------------------------------------------------------------------------------
# valid tiny models
# ----------------------------------------------------------------------------------------------
def hf_tensors(seed: int = 0) -> dict[str, np.ndarray]:
    """HF-named float32 weights, shape [out, in] like torch.nn.Linear."""
    rng = np.random.default_rng(seed)

    def w(*shape, scale=0.2):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    def norm():
        return (1.0 + 0.1 * rng.standard_normal(HIDDEN)).astype(np.float32)

    q_dim, kv_dim = HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM
    t = {"model.embed_tokens.weight": w(VOCAB, HIDDEN, scale=1.0), "model.norm.weight": norm(),
         "lm_head.weight": w(VOCAB, HIDDEN)}
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        t[p + "input_layernorm.weight"] = norm()
        t[p + "post_attention_layernorm.weight"] = norm()
        t[p + "self_attn.q_proj.weight"] = w(q_dim, HIDDEN)
        t[p + "self_attn.k_proj.weight"] = w(kv_dim, HIDDEN)
        t[p + "self_attn.v_proj.weight"] = w(kv_dim, HIDDEN)
        t[p + "self_attn.o_proj.weight"] = w(HIDDEN, q_dim)
        t[p + "mlp.gate_proj.weight"] = w(FFN, HIDDEN)
        t[p + "mlp.up_proj.weight"] = w(FFN, HIDDEN)
        t[p + "mlp.down_proj.weight"] = w(HIDDEN, FFN)
    return t


def write_hf_dir(d: str, tensors: dict[str, np.ndarray] | None = None, config: dict | None = None) -> str:
    from safetensors.numpy import save_file

    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(HF_CONFIG if config is None else config, f, indent=2)
    save_file(hf_tensors() if tensors is None else tensors, os.path.join(d, "model.safetensors"))
    return d


# HF name -> GGUF name (llama.cpp's convert_hf_to_gguf.py mapping).
_GGUF_LAYER = {
    "input_layernorm.weight": "attn_norm.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}


def gguf_name(hf: str) -> str:
    if hf == "model.embed_tokens.weight":
        return "token_embd.weight"
    if hf == "model.norm.weight":
        return "output_norm.weight"
    if hf == "lm_head.weight":
        return "output.weight"
    parts = hf.split(".")  # model.layers.N.rest
    return f"blk.{parts[2]}." + _GGUF_LAYER[".".join(parts[3:])]


def _tiny_vocab() -> tuple[list[str], list[int], list[str]]:
    """64 byte-level BPE tokens: 3 specials, 'Ġ', a-z, A-Z, 'Ġa'..'Ġh'; merges build the last."""
    tokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "Ġ"]
    tokens += [chr(c) for c in range(ord("a"), ord("z") + 1)]
    tokens += [chr(c) for c in range(ord("A"), ord("Z") + 1)]
    pair_letters = "abcdefgh"
    tokens += ["Ġ" + c for c in pair_letters]
    assert len(tokens) == VOCAB, len(tokens)
    types = [3, 3, 3] + [1] * (VOCAB - 3)  # 3 = control, 1 = normal
    merges = ["Ġ " + c for c in pair_letters]
    return tokens, types, merges


def write_gguf(path: str, tensors: dict[str, np.ndarray] | None = None) -> str:
    import gguf

    tensors = hf_tensors() if tensors is None else tensors
    w = gguf.GGUFWriter(path, "llama")
    w.add_name("swiftkv-robustness-tiny")
    w.add_context_length(MAX_POS)
    w.add_embedding_length(HIDDEN)
    w.add_block_count(LAYERS)
    w.add_feed_forward_length(FFN)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV_HEADS)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(HEAD_DIM)
    w.add_vocab_size(VOCAB)
    w.add_file_type(0)  # ALL_F32
    tokens, types, merges = _tiny_vocab()
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_add_bos_token(False)
    for name, arr in tensors.items():
        w.add_tensor(gguf_name(name), np.ascontiguousarray(arr, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


# ----------------------------------------------------------------------------------------------
# GGUF layout walker: byte positions of the fields the corruptions poke at
# ----------------------------------------------------------------------------------------------
_SCALAR = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


class GGUFLayout:
    def __init__(self, data: bytes):
        self.data = data
        assert data[:4] == b"GGUF"
        self.n_tensors, self.n_kv = struct.unpack_from("<QQ", data, 8)
        pos = 24
        self.first_key_len_pos = pos
        self.alignment = 32
        self.kv_end_pos = None
        # (byte position, struct format, description) of every length / count / type / integer
        # field: what the structured fuzzer rewrites.
        self.fields: list[tuple[int, str, str]] = [(4, "<I", "version"), (8, "<Q", "tensor count"),
                                                   (16, "<Q", "kv count")]
        for _ in range(self.n_kv):
            self.fields.append((pos, "<Q", "key length"))
            key, pos = self._str(pos)
            (vtype,) = struct.unpack_from("<I", data, pos)
            self.fields.append((pos, "<I", f"value type of {key}"))
            pos += 4
            if key == "general.alignment":
                self.alignment = struct.unpack_from("<I", data, pos)[0]
            if vtype in (4, 5, 10, 11):
                self.fields.append((pos, "<I" if vtype in (4, 5) else "<Q", f"value of {key}"))
            elif vtype == 8:
                self.fields.append((pos, "<Q", f"string length of {key}"))
            elif vtype == 9:
                self.fields.append((pos, "<I", f"array type of {key}"))
                self.fields.append((pos + 4, "<Q", f"array length of {key}"))
            pos = self._skip_value(pos, vtype)
        self.kv_end_pos = pos
        self.tensors = []  # dicts: name, type_pos, offset_pos, offset, info_pos
        for _ in range(self.n_tensors):
            info_pos = pos
            self.fields.append((pos, "<Q", "tensor name length"))
            name, pos = self._str(pos)
            (n_dims,) = struct.unpack_from("<I", data, pos)
            self.fields.append((pos, "<I", f"n_dims of {name}"))
            for d in range(n_dims):
                self.fields.append((pos + 4 + 8 * d, "<Q", f"dim {d} of {name}"))
            pos += 4 + 8 * n_dims
            self.fields.append((pos, "<I", f"type of {name}"))
            self.fields.append((pos + 4, "<Q", f"offset of {name}"))
            type_pos = pos
            pos += 4
            offset_pos = pos
            (offset,) = struct.unpack_from("<Q", data, pos)
            pos += 8
            self.tensors.append(dict(name=name, type_pos=type_pos, offset_pos=offset_pos, offset=offset,
                                     info_pos=info_pos))
        self.info_end_pos = pos
        self.data_start = (pos + self.alignment - 1) // self.alignment * self.alignment

    def _str(self, pos):
        (n,) = struct.unpack_from("<Q", self.data, pos)
        return self.data[pos + 8:pos + 8 + n].decode("utf-8", "replace"), pos + 8 + n

    def _skip_value(self, pos, vtype):
        if vtype in _SCALAR:
            return pos + _SCALAR[vtype]
        if vtype == 8:
            return self._str(pos)[1]
        if vtype == 9:
            etype, n = struct.unpack_from("<IQ", self.data, pos)
            pos += 12
            for _ in range(n):
                pos = self._skip_value(pos, etype)
            return pos
        raise ValueError(f"unknown GGUF value type {vtype}")

    def tensor(self, name):
        return next(t for t in self.tensors if t["name"] == name)


def _patch(data: bytes, pos: int, fmt: str, *values) -> bytes:
    b = bytearray(data)
    struct.pack_into(fmt, b, pos, *values)
    return bytes(b)


def gguf_corruptions(valid: bytes) -> dict[str, bytes]:
    L = GGUFLayout(valid)
    last = max(L.tensors, key=lambda t: t["offset"])
    first = min(L.tensors, key=lambda t: t["offset"])
    file_size = len(valid)
    past_end = ((file_size * 2) + L.alignment - 1) // L.alignment * L.alignment
    return {
        "gguf_bad_magic": b"GGUX" + valid[4:],
        "gguf_version1": _patch(valid, 4, "<I", 1),
        # Cut inside the fixed header (in the metadata kv count).
        "gguf_truncated_header": valid[:20],
        # Cut inside the metadata section: the reader runs out of bytes mid-key/value.
        "gguf_truncated_metadata": valid[:L.first_key_len_pos + (L.kv_end_pos - L.first_key_len_pos) // 2],
        # Cut inside the tensor infos.
        "gguf_truncated_tensor_info": valid[:(L.kv_end_pos + L.info_end_pos) // 2],
        "gguf_absurd_tensor_count": _patch(valid, 8, "<Q", 1 << 40),
        "gguf_absurd_string_length": _patch(valid, L.first_key_len_pos, "<Q", 1 << 60),
        "gguf_offset_past_end": _patch(valid, last["offset_pos"], "<Q", past_end),
        "gguf_unknown_type": _patch(valid, first["type_pos"], "<I", 99),
        "gguf_misaligned_offset": _patch(valid, last["offset_pos"], "<Q", last["offset"] + 4),
        # The first metadata key's length corrupted to swallow the rest of a larger file (8 MiB of
        # 0xff appended), leaving 4 bytes for its value type (0xffffffff, unknown): the error
        # quotes the key, which must come out as a short prefix plus its length, not 8 MB.
        "gguf_huge_key_length": _huge_key(valid, L.first_key_len_pos),
    }


HUGE_KEY_PAD = 8 << 20


def _huge_key(valid: bytes, key_len_pos: int) -> bytes:
    data = valid + b"\xff" * HUGE_KEY_PAD
    return _patch(data, key_len_pos, "<Q", len(data) - (key_len_pos + 8) - 4)


_INTERESTING = [0, 1, 2, 3, 7, 31, 32, 33, 63, 64, 65, 255, 4096, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0x80000000,
                0xFFFFFFFF, 1 << 32, 1 << 40, 1 << 62, 0x7FFFFFFFFFFFFFFF, 0xFFFFFFFFFFFFFFFF]


def gguf_mutants(valid: bytes, n: int, seed: int = 1234) -> list[tuple[str, bytes]]:
    """n structured mutants: one length / count / type / integer field set to a boundary value."""
    rng = np.random.default_rng(seed)
    L = GGUFLayout(valid)
    # Pick a kind of field first (there are far more metadata value types than tensor offsets).
    kinds: dict[str, list] = {}
    for f in L.fields:
        kinds.setdefault(f[2].split(" of ")[0], []).append(f)
    kind_names = sorted(kinds)
    out = []
    for _ in range(n):
        group = kinds[kind_names[int(rng.integers(len(kind_names)))]]
        pos, fmt, what = group[int(rng.integers(len(group)))]
        limit = (1 << 32) - 1 if fmt == "<I" else (1 << 64) - 1
        choice = rng.integers(3)
        old = struct.unpack_from(fmt, valid, pos)[0]
        if choice == 0:
            v = _INTERESTING[int(rng.integers(len(_INTERESTING)))]
        elif choice == 1:
            v = old + int(rng.choice([-1, 1, -8, 8, 32, 4096]))
        else:
            v = int(rng.integers(0, 1 << 31)) * int(rng.choice([1, 1 << 20]))
        v &= limit
        out.append((f"{what}: {old} -> {v}", _patch(valid, pos, fmt, v)))
    return out


def safetensors_mutants(st: bytes, n: int, seed: int = 4321) -> list[tuple[str, bytes]]:
    """n mutants of a safetensors file: one header field of one tensor set to a bad value, or
    random bytes of the header JSON replaced."""
    rng = np.random.default_rng(seed)
    (hlen,) = struct.unpack_from("<Q", st, 0)
    header = json.loads(st[8:8 + hlen])
    buf = st[8 + hlen:]
    names = sorted(k for k in header if k != "__metadata__")
    bad_values = [-1, 0, 1, 2 ** 31, 2 ** 63 - 1, 2 ** 64 - 1, 2 ** 64, 1.5, "7", None, [], {}, [1, 2, 3],
                  [-4, 4], [2 ** 62, 2 ** 62]]
    out = []
    for _ in range(n):
        h = json.loads(json.dumps(header))
        name = names[int(rng.integers(len(names)))]
        kind = int(rng.integers(5))
        if kind == 0:
            field = ["dtype", "shape", "data_offsets"][int(rng.integers(3))]
            v = bad_values[int(rng.integers(len(bad_values)))]
            h[name][field] = v
            desc = f"{name}.{field} = {v!r}"
        elif kind == 1:
            dims = list(h[name]["shape"])
            i = int(rng.integers(len(dims)))
            dims[i] = int(rng.choice([0, dims[i] * 2, dims[i] - 1, 2 ** 40, 2 ** 62]))
            h[name]["shape"] = dims
            desc = f"{name}.shape = {dims}"
        elif kind == 2:
            b, e = h[name]["data_offsets"]
            delta = int(rng.choice([-8, -4, 4, 8, len(buf), 2 ** 40]))
            h[name]["data_offsets"] = [b, e + delta] if rng.integers(2) else [b + delta, e + delta]
            desc = f"{name}.data_offsets = {h[name]['data_offsets']}"
        elif kind == 3:
            h[name]["data_offsets"] = list(h[names[(names.index(name) + 1) % len(names)]]["data_offsets"])
            desc = f"{name}.data_offsets aliases the next tensor"
        else:
            text = bytearray(json.dumps(h, separators=(",", ":")).encode())
            for _ in range(int(rng.integers(1, 4))):
                text[int(rng.integers(len(text)))] = int(rng.choice(list(b'{}[]",:0123456789-eE.\\\x00\xff')))
            text += b" " * ((8 - len(text) % 8) % 8)
            out.append(("random header bytes", struct.pack("<Q", len(text)) + bytes(text) + buf))
            continue
        text = json.dumps(h, separators=(",", ":")).encode()
        text += b" " * ((8 - len(text) % 8) % 8)
        out.append((desc, struct.pack("<Q", len(text)) + text + buf))
    return out


# ----------------------------------------------------------------------------------------------
# safetensors surgery
# ----------------------------------------------------------------------------------------------
def read_safetensors(path: str) -> tuple[dict, bytes]:
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack_from("<Q", raw, 0)
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def write_safetensors_raw(path: str, header: dict, buf: bytes) -> None:
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + buf)


def _copy_hf(src: str, dst: str) -> str:
    shutil.copytree(src, dst)
    return dst


def _edit_header(src: str, dst: str, fn) -> str:
    _copy_hf(src, dst)
    st = os.path.join(dst, "model.safetensors")
    header, buf = read_safetensors(st)
    fn(header)
    write_safetensors_raw(st, header, buf)
    return dst


def _edit_config(src: str, dst: str, fn=None, text: str | None = None) -> str:
    _copy_hf(src, dst)
    cfg_path = os.path.join(dst, "config.json")
    if text is None:
        with open(cfg_path) as f:
            cfg = json.load(f)
        fn(cfg)
        text = json.dumps(cfg, indent=2)
    with open(cfg_path, "w") as f:
        f.write(text)
    return dst


TARGET = "model.layers.1.self_attn.k_proj.weight"  # the tensor most corruptions hit


def build_all(root: str) -> dict[str, str]:
    """Writes every model variant under root; returns {case name: path to pass as --model}."""
    from safetensors.numpy import save_file

    os.makedirs(root, exist_ok=True)
    out: dict[str, str] = {}
    counter = iter(range(1000))

    def new_path(suffix: str = "") -> str:
        return os.path.join(root, f"c{next(counter):02d}{suffix}")

    hf = out["hf_valid"] = write_hf_dir(new_path())

    # -- directory / config.json -------------------------------------------------------------
    out["missing_path"] = os.path.join(root, "nowhere", "c99")
    d = new_path()
    _copy_hf(hf, d)
    os.remove(os.path.join(d, "config.json"))
    out["no_config"] = d
    out["config_invalid_json"] = _edit_config(hf, new_path(),
                                              text='{"model_type": "llama", "hidden_size": 32,,}')

    def gpt_neox(c):
        c["model_type"] = "gpt_neox"
        c["architectures"] = ["GPTNeoXForCausalLM"]

    out["config_unknown_arch"] = _edit_config(hf, new_path(), gpt_neox)
    out["config_heads_not_dividing"] = _edit_config(hf, new_path(),
                                                    lambda c: c.update(num_attention_heads=5))

    # -- safetensors ---------------------------------------------------------------------------
    st_valid = os.path.join(hf, "model.safetensors")
    with open(st_valid, "rb") as f:
        st_bytes = f.read()

    d = _copy_hf(hf, new_path())
    with open(os.path.join(d, "model.safetensors"), "wb") as f:
        f.write(st_bytes[:len(st_bytes) // 2])
    out["st_truncated"] = d

    d = _copy_hf(hf, new_path())
    with open(os.path.join(d, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(st_bytes) + 1000) + st_bytes[8:])
    out["st_header_too_long"] = d

    def offsets_past_end(h):
        end = h[TARGET]["data_offsets"][1]
        size = sum(4 * int(np.prod(v["shape"])) for k, v in h.items() if k != "__metadata__")
        h[TARGET]["data_offsets"] = [size + 64, size + 64 + (end - h[TARGET]["data_offsets"][0])]

    out["st_offsets_past_end"] = _edit_header(hf, new_path(), offsets_past_end)

    def end_before_begin(h):
        b, e = h[TARGET]["data_offsets"]
        h[TARGET]["data_offsets"] = [e, b]

    out["st_end_before_begin"] = _edit_header(hf, new_path(), end_before_begin)

    def size_mismatch(h):  # 16x32 F32 claims the bytes of 16x32 but says 16x31
        h[TARGET]["shape"] = [h[TARGET]["shape"][0], h[TARGET]["shape"][1] - 1]

    out["st_size_mismatch"] = _edit_header(hf, new_path(), size_mismatch)
    out["st_dtype_c64"] = _edit_header(hf, new_path(),
                                       lambda h: h[TARGET].update(dtype="C64"))
    out["st_dtype_f8"] = _edit_header(hf, new_path(),
                                      lambda h: h[TARGET].update(dtype="F8_E4M3"))

    t = hf_tensors()
    t["model.layers.0.self_attn.q_proj.weight"] = np.zeros((64, HIDDEN), np.float32)  # config implies [32, 32]
    out["st_shape_vs_config"] = write_hf_dir(new_path(), t)

    t = hf_tensors()
    del t["model.layers.1.mlp.down_proj.weight"]
    out["st_missing_tensor"] = write_hf_dir(new_path(), t)

    # Sharded: index names two shards, only the first exists.
    d = new_path()
    os.makedirs(d)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(HF_CONFIG, f)
    t = hf_tensors()
    names = sorted(t)
    s1, s2 = "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"
    half = len(names) // 2
    weight_map = {n: (s1 if i < half else s2) for i, n in enumerate(names)}
    save_file({n: t[n] for n in names[:half]}, os.path.join(d, s1))
    with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": sum(a.nbytes for a in t.values())}, "weight_map": weight_map}, f)
    out["st_missing_shard"] = d

    # -- GGUF ----------------------------------------------------------------------------------
    g = out["gguf_valid"] = write_gguf(new_path(".gguf"))
    with open(g, "rb") as f:
        g_bytes = f.read()
    for name, data in gguf_corruptions(g_bytes).items():
        p = new_path(".gguf")
        with open(p, "wb") as f:
            f.write(data)
        out[name] = p

    # -- empty / wrong files ---------------------------------------------------------------------
    p = out["gguf_empty"] = new_path(".gguf")
    open(p, "wb").close()
    d = _copy_hf(hf, new_path())
    open(os.path.join(d, "model.safetensors"), "wb").close()
    out["st_empty"] = d
    out["plain_file"] = os.path.join(hf, "config.json")  # a file that is neither GGUF nor a directory
    return out


def build_fuzz(root: str, n_gguf: int = 40, n_st: int = 40) -> list[tuple[str, str, str]]:
    """Mutated copies of the valid models: [(format, description, path to pass as --model)]."""
    os.makedirs(root, exist_ok=True)
    out = []
    hf = write_hf_dir(os.path.join(root, "f_hf"))
    with open(os.path.join(hf, "model.safetensors"), "rb") as f:
        st = f.read()
    for i, (desc, data) in enumerate(safetensors_mutants(st, n_st)):
        d = os.path.join(root, f"f{i:03d}")
        os.makedirs(d)
        shutil.copy(os.path.join(hf, "config.json"), d)
        with open(os.path.join(d, "model.safetensors"), "wb") as f:
            f.write(data)
        out.append(("safetensors", desc, d))
    g = write_gguf(os.path.join(root, "f_valid.gguf"))
    with open(g, "rb") as f:
        gb = f.read()
    for i, (desc, data) in enumerate(gguf_mutants(gb, n_gguf)):
        p = os.path.join(root, f"g{i:03d}.gguf")
        with open(p, "wb") as f:
            f.write(data)
        out.append(("gguf", desc, p))
    return out


if __name__ == "__main__":
    import sys
    import tempfile

    root = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="skv_bad_")
    for k, v in build_all(root).items():
        print(f"{k:28s} {v}")
