#pragma once
// Everything a model needs from disk, independent of the on-disk format: the config and
// every tensor under its Hugging Face name (GGUF names are mapped, e.g. blk.3.attn_q.weight
// -> model.layers.3.self_attn.q_proj.weight, output.weight -> lm_head.weight).
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/config.h"

namespace skv::io {

class GGUFFile;
class SafetensorsFile;

enum class ModelFormat { HFDirectory, GGUF };

struct ModelFiles {
  ModelFormat format = ModelFormat::HFDirectory;
  std::string path;  // the directory or the .gguf file given by the user
  ModelConfig config;
  std::map<std::string, Tensor> tensors;
  // llama.cpp's converter permutes the rows of q_proj / k_proj so that ggml's rope, which
  // rotates adjacent pairs, matches HF's rotate_half. True for GGUF llama models: the engine
  // then rotates adjacent pairs (mathematically identical to un-permuting the rows).
  bool rope_interleaved = false;
  std::shared_ptr<GGUFFile> gguf;                        // set for GGUF input
  std::vector<std::shared_ptr<SafetensorsFile>> shards;  // set for HF input

  const Tensor* find(const std::string& name) const;
  const Tensor& get(const std::string& name) const;  // throws naming the tensor and the path
  // get() plus the checks every consumer of a weight needs: the shape the config implies and a
  // floating-point or quantised dtype; throws naming the tensor, the path and both shapes.
  const Tensor& get(const std::string& name, const std::vector<int64_t>& shape) const;
  // Drops the resident file pages of a tensor that lives in one of the mappings (no-op for
  // tensors in memory), once its values have been copied elsewhere.
  void release_pages(const Tensor& t) const;
};

// "model.layers.<layer>.<suffix>", the Hugging Face name of a per-layer tensor.
std::string layer_tensor_name(int64_t layer, const std::string& suffix);

// path: an HF model directory (config.json + model.safetensors or a sharded index) or a
// .gguf file. Throws skv::Error with a one-line message naming the problem.
ModelFiles open_model_files(const std::string& path);

}  // namespace skv::io
