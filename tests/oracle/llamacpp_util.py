"""Shared helpers for the llama.cpp oracle test and bench/compare_llamacpp.py.

llama.cpp is used through llama-cpp-python (scripts/requirements-oracle.txt). Only a few of its
APIs are needed: Llama(...), tokenize, eval, reset, the KV-cache clear and the last logits; the
helpers below paper over the differences between llama-cpp-python releases.
"""
from __future__ import annotations

import ctypes
import json
import os
import subprocess

import numpy as np

ROOT = os.environ.get("SKV_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
MODEL_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"

SMOLLM2_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


def chat_prompt(user: str, system: str = SMOLLM2_SYSTEM) -> str:
    """SmolLM2-Instruct's chat template rendered for one user turn + generation prompt."""
    return (f"<|im_start|>system\n{system}<|im_end|>\n"
            f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n")


def default_model() -> str:
    models = os.environ.get("SKV_MODELS", os.path.join(ROOT, "models"))
    return os.path.join(models, MODEL_NAME)


def default_bin() -> str:
    return os.environ.get("SKV_BIN", os.path.join(ROOT, "build", "swiftkv"))


def import_llama_cpp():
    import llama_cpp  # noqa: F401  (raises ImportError with a clear message if missing)

    return llama_cpp


GGML_TYPE_F32, GGML_TYPE_F16 = 0, 1


def load_llama(model: str, *, n_ctx: int = 2048, threads: int = 2, logits_all: bool = False,
               n_batch: int = 512, n_ubatch: int = 512, kv_f32: bool = False):
    """kv_f32: F32 KV cache instead of llama.cpp's default F16 (swiftkv keeps F32)."""
    llama_cpp = import_llama_cpp()
    kw = dict(type_k=GGML_TYPE_F32, type_v=GGML_TYPE_F32) if kv_f32 else {}
    return llama_cpp.Llama(model_path=model, n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads,
                           n_batch=n_batch, n_ubatch=n_ubatch, logits_all=logits_all, verbose=False, seed=0, **kw)


def n_vocab(llm) -> int:
    return int(llm.n_vocab())


def clear_kv(llm) -> None:
    """Empty the KV cache and forget the evaluated tokens."""
    llm.reset()
    ctx = getattr(llm, "_ctx", None)
    if ctx is not None and hasattr(ctx, "kv_cache_clear"):
        ctx.kv_cache_clear()
        return
    llama_cpp = import_llama_cpp()
    if hasattr(llama_cpp, "llama_get_memory") and hasattr(llama_cpp, "llama_memory_clear"):
        llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(llm.ctx), True)
    elif hasattr(llama_cpp, "llama_kv_self_clear"):
        llama_cpp.llama_kv_self_clear(llm.ctx)
    elif hasattr(llama_cpp, "llama_kv_cache_clear"):
        llama_cpp.llama_kv_cache_clear(llm.ctx)


def last_logits(llm) -> np.ndarray:
    """Logits of the last token of the most recent llm.eval() (a float32 copy, [vocab]).

    Recent llama-cpp-python no longer copies them into llm.scores unless logits_all=True, so
    read them from the context (llama_get_logits_ith(ctx, -1)) and fall back to llm.scores."""
    llama_cpp = import_llama_cpp()
    nv = n_vocab(llm)
    try:
        ptr = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
        if ptr:
            return np.ctypeslib.as_array(ptr, shape=(nv,)).astype(np.float32).copy()
    except (AttributeError, ctypes.ArgumentError):
        pass
    return np.array(llm.scores[llm.n_tokens - 1, :], dtype=np.float32)


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def greedy_llamacpp(llm, prompt: list[int], n_new: int) -> tuple[list[int], list[np.ndarray]]:
    """Greedy decoding ignoring EOS. Returns the new tokens and the logits each was chosen from."""
    clear_kv(llm)
    llm.eval(prompt)
    out, logits = [], []
    for _ in range(n_new):
        lg = last_logits(llm)
        tok = int(np.argmax(lg))
        out.append(tok)
        logits.append(lg)
        llm.eval([tok])
    return out, logits


def run_skv(binary: str, args: list[str], timeout: float = 600) -> dict:
    p = subprocess.run([binary] + args, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(f"swiftkv {' '.join(args[:1])} failed (exit {p.returncode}): {p.stderr.strip()[-2000:]}")
    lines = [ln for ln in p.stdout.splitlines() if ln.strip()]
    # --json output is one object, possibly pretty-printed: parse the whole stdout, else the last line.
    try:
        return json.loads(p.stdout)
    except json.JSONDecodeError:
        return json.loads(lines[-1])


def ids_arg(ids: list[int]) -> str:
    return ",".join(str(int(i)) for i in ids)


def quantize_gguf(src: str, dst: str, ftype: str, threads: int = 2) -> None:
    """llama.cpp's own quantiser (llama_model_quantize) from src to dst; ftype names a
    LLAMA_FTYPE_MOSTLY_* ("Q4_K_M", "Q5_K_M", "Q6_K", ...). allow_requantize lets it start from a
    quantised file (it dequantises first), e.g. the shipped Q4_1."""
    llama_cpp = import_llama_cpp()
    p = llama_cpp.llama_model_quantize_default_params()
    p.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{ftype}")
    p.allow_requantize = True
    p.nthread = threads
    # The quantiser reports every fallback type (hundreds of lines) on stderr; keep the caller's output.
    saved = os.dup(2)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
        try:
            rc = llama_cpp.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(p))
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    if rc != 0:
        raise RuntimeError(f"llama_model_quantize {src} -> {ftype} returned {rc}")


def write_f32_gguf(src: str, dst: str) -> None:
    """Copy of a GGUF with every tensor dequantised to F32 (same metadata, same tensor names).

    Both engines then compute in float -- no 8-bit activation rounding -- so they can be held to
    float tolerances, while the weights (hence the model) stay exactly those of the original."""
    from gguf import GGUFReader, GGUFValueType, GGUFWriter
    from gguf.quants import dequantize

    r = GGUFReader(src)
    w = GGUFWriter(dst, r.fields["general.architecture"].contents())
    for key, f in r.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        value = 0 if key == "general.file_type" else f.contents()  # 0 = ALL_F32
        vtype = f.types[0]
        w.add_key_value(key, value, vtype, sub_type=f.types[1] if vtype == GGUFValueType.ARRAY else None)
    for t in r.tensors:
        shape = [int(x) for x in reversed(t.shape)]
        w.add_tensor(t.name, dequantize(t.data, t.tensor_type).astype(np.float32).reshape(shape))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
