#pragma once
// Writes a model (typically a base model after add_swiftkv_tensors) as a Hugging Face model
// directory: config.json, model.safetensors and the files that travel with the weights.
#include <cstdint>
#include <map>
#include <string>

#include "core/dtype.h"
#include "core/tensor.h"
#include "io/model_files.h"

namespace skv::io {

struct HfExportOptions {
  // Every floating-point tensor is stored in this (F32, F16 or BF16); FP8: the compressed-tensors
  // layout (decoder Linear weights F8_E4M3 with per-channel F32 scales, the rest BF16).
  DType dtype = DType::F32;
  // Replace an existing non-empty output directory (only one that holds a config.json, so a
  // mistyped path cannot wipe an unrelated directory).
  bool replace_existing = false;
  // Written verbatim into the directory (e.g. a tokenizer.json made from GGUF metadata). For
  // HF input the source's tokenizer / generation files are copied as well; these win.
  std::map<std::string, std::string> extra_files;
};

struct HfExportResult {
  uint64_t bytes_written = 0;  // all files in the finished directory
  int64_t num_tensors = 0;
};

// The dtype a checkpoint is stored in when the user does not choose: FP8 for an FP8 checkpoint; F32 for GGUF (exact for
// dequantised block values, scale times integer, which need more mantissa than BF16 and more
// range than F16); for HF input the tensors' common dtype, else config torch_dtype, else F32. Call it
// before add_swiftkv_tensors, whose group means are F32 whatever the source.
DType default_export_dtype(const ModelFiles& files);

// "f32" / "float32" -> F32 and so on for f16 and bf16; "fp8" -> FP8; throws naming the value otherwise.
DType parse_export_dtype(const std::string& name);
// The config.json spelling: float32 | float16 | bfloat16 (also for FP8, whose other tensors are BF16).
std::string torch_dtype_name(DType dtype);

// Throws unless `out_dir` can receive the export: its parent exists, and it does not exist, is
// an empty directory, or (replace_existing) is a model directory. It must not hold the source.
void check_export_target(const std::string& out_dir, const std::string& source_path, bool replace_existing);

// Writes into a temporary sibling of out_dir and renames it into place at the end, so a
// failure leaves nothing half-written (and an existing directory untouched until then).
// GGUF llama input (files.rope_interleaved) gets its q/k rows put back in HF order; with tied
// embeddings no lm_head is written.
HfExportResult export_hf_directory(const ModelFiles& files, const std::string& out_dir, const HfExportOptions& opt);

// Undoes llama.cpp's convert_hf_to_gguf.py permutation of q_proj / k_proj rows, which makes
// ggml's adjacent-pair rope match HF's rotate_half: HF row h*D + half*(D/2) + j comes from
// GGUF row h*D + 2*j + half. t: a plain-dtype [n_head * D, in] weight or [n_head * D] bias.
Tensor unpermute_rope_rows(const Tensor& t, int64_t n_head);
// The permutation itself (HF order -> GGUF order), for HF-ordered tensors added to a GGUF model.
Tensor permute_rope_rows(const Tensor& t, int64_t n_head);
// The heads llama.cpp permuted in the tensor of this HF name (q/k projections and their SwiftKV
// variants), or 0 for a tensor it leaves alone.
int64_t rope_permuted_heads(const std::string& name, const ModelConfig& c);

}  // namespace skv::io
