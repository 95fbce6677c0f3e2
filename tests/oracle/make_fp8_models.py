#!/usr/bin/env python3
"""FP8 checkpoints in the compressed-tensors layout llm-compressor writes (../shared/SWIFTKV.md
§6, docs/fp8.md), made with numpy and ml_dtypes (float8_e4m3fn, bfloat16) -- no torch -- for
tests/oracle/test_fp8.py.

quantise(w, strategy) is llm-compressor's symmetric min-max FP8 rule: scale = max|w| / 448 per
output channel ([out, 1]) or per tensor (a scalar), q = e4m3(w / scale) rounded to nearest even by
ml_dtypes. write_fp8_model() quantises every decoder Linear (the attention / MLP projections and
the SwiftKV ones) of a float model and writes config.json with its quantization_config. Files are
written by safetensors' numpy writer when it knows the dtypes, else by write_safetensors below
(the format is 8 bytes of header length, a JSON header, the raw data); either way the test reads
them back through safetensors' numpy loader.
"""
from __future__ import annotations

import json
import os
import struct

import ml_dtypes
import numpy as np

E4M3 = ml_dtypes.float8_e4m3fn
BF16 = ml_dtypes.bfloat16
_TAGS = {np.dtype(np.float32): "F32", np.dtype(BF16): "BF16", np.dtype(E4M3): "F8_E4M3", np.dtype(np.float16): "F16"}


def is_linear(name: str, arr: np.ndarray) -> bool:
    return arr.ndim == 2 and name.startswith("model.layers.") and (
        name.endswith("_proj.weight") or name.endswith("_proj_swiftkv.weight"))


def quantise(w: np.ndarray, strategy: str, scale_dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """-> (q as float8_e4m3fn [out, in], scale [out, 1] or [] in scale_dtype)."""
    w = np.asarray(w, dtype=np.float32)
    amax = np.abs(w).max(axis=1, keepdims=True) if strategy == "channel" else np.abs(w).max()
    scale = (np.asarray(amax, dtype=np.float32) / np.float32(448.0)).astype(scale_dtype)
    q = (w / scale.astype(np.float32)).astype(E4M3)
    return q, scale


def dequantise(q: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return q.astype(np.float64) * scale.astype(np.float64)


def quantization_config(strategy: str, ignore=("lm_head",), dynamic_acts: bool = True) -> dict:
    acts = {"num_bits": 8, "type": "float", "symmetric": True, "group_size": None, "strategy": "token",
            "block_structure": None, "dynamic": True, "actorder": None, "observer": None, "observer_kwargs": {}}
    return {
        "config_groups": {"group_0": {
            "targets": ["Linear"],
            "weights": {"num_bits": 8, "type": "float", "symmetric": True, "group_size": None, "strategy": strategy,
                        "block_structure": None, "dynamic": False, "actorder": None, "observer": "minmax",
                        "observer_kwargs": {}},
            "input_activations": acts if dynamic_acts else None,
            "output_activations": None}},
        "format": "float-quantized",
        "global_compression_ratio": 1.5,
        "ignore": list(ignore),
        "kv_cache_scheme": None,
        "quant_method": "compressed-tensors",
        "quantization_status": "compressed",
    }


def write_safetensors(path: str, tensors: dict[str, np.ndarray]) -> None:
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        b = a.tobytes()
        header[name] = {"dtype": _TAGS[a.dtype], "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def save(path: str, tensors: dict[str, np.ndarray]) -> None:
    try:
        from safetensors.numpy import save_file
        save_file(tensors, path, metadata={"format": "pt"})
    except Exception:  # noqa: BLE001 -- a safetensors without ml_dtypes support: write the format directly
        write_safetensors(path, tensors)


def write_fp8_model(d: str, config: dict, weights: dict[str, np.ndarray], strategy: str,
                    scale_dtype=np.float32) -> dict[str, np.ndarray]:
    """Writes d/config.json + d/model.safetensors; returns the float64 dequantised weights."""
    os.makedirs(d, exist_ok=True)
    out, deq = {}, {}
    for name, w in weights.items():
        if is_linear(name, w):
            q, s = quantise(w, strategy, scale_dtype)
            out[name], out[name[:-len(".weight")] + ".weight_scale"] = q, s
            deq[name] = dequantise(q, s)
        else:
            out[name] = np.asarray(w, dtype=np.float32)
            deq[name] = out[name].astype(np.float64)
    c = dict(config)
    c["quantization_config"] = quantization_config(strategy)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(c, f, indent=2, sort_keys=True)
    save(os.path.join(d, "model.safetensors"), out)
    return deq
