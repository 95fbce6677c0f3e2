#include "io/hf_export.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "backend/ops.h"
#include "core/error.h"
#include "io/atomic_file.h"
#include "io/compressed_tensors.h"
#include "io/config_json.h"
#include "io/read_file.h"
#include "io/safetensors.h"

namespace skv::io {

namespace {

namespace fs = std::filesystem;

// Files of an HF model directory that describe how to use the weights rather than the weights.
const char* const kSideFiles[] = {
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "chat_template.jinja",
    "generation_config.json",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
};

fs::path normalized(const std::string& p) {
  fs::path out = fs::absolute(fs::path(p)).lexically_normal();
  if (out.filename().empty()) out = out.parent_path();  // "dir/" -> "dir"
  return out;
}

// A fresh directory next to `target` (same filesystem, so rename() into place is atomic),
// removed with its contents unless released.
class SiblingDir {
 public:
  SiblingDir(const fs::path& target, const char* tag) {
    std::string name = target.filename().string();  // built by appending: GCC 12 misreports "." + s (-Wrestrict)
    name.insert(0, 1, '.').append(tag).append(".XXXXXX");
    std::string tmpl = (target.parent_path() / name).string();
    if (!::mkdtemp(tmpl.data())) fail_write(errno, "cannot create a temporary directory next to " + target.string());
    path_ = tmpl;
  }
  ~SiblingDir() {
    if (path_.empty()) return;
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  SiblingDir(const SiblingDir&) = delete;
  SiblingDir& operator=(const SiblingDir&) = delete;
  const fs::path& path() const { return path_; }
  void release() { path_.clear(); }

 private:
  fs::path path_;
};

// Checked and fsynced like the weights, so the directory renamed into place is complete on disk.
void write_text(const fs::path& path, const std::string& text) { write_file_atomic(path.string(), text); }

bool ends_with_any(const std::string& name, std::initializer_list<const char*> suffixes) {
  for (const char* s : suffixes)
    if (name.ends_with(s)) return true;
  return false;
}

}  // namespace

int64_t rope_permuted_heads(const std::string& name, const ModelConfig& c) {
  if (ends_with_any(name, {".self_attn.q_proj.weight", ".self_attn.q_proj.bias", ".self_attn.q_proj_swiftkv.weight",
                           ".self_attn.q_proj_swiftkv.bias"}))
    return c.num_heads;
  if (ends_with_any(name, {".self_attn.k_proj.weight", ".self_attn.k_proj.bias", ".self_attn.k_proj_swiftkv.weight",
                           ".self_attn.k_proj_swiftkv.bias"}))
    return c.num_kv_heads;
  return 0;
}

namespace {

// All tensors in the output dtype. They are held in memory together because
// write_safetensors takes the whole map; unchanged tensors stay views of the source mapping.
// FP8 output quantises the decoder's Linear weights (compressed-tensors pairs, F32 scales per
// channel) and stores everything else in BF16, as llm-compressor does for a BF16 model.
std::map<std::string, Tensor> export_tensors(const ModelFiles& files, DType dtype) {
  const ModelConfig& c = files.config;
  std::map<std::string, Tensor> out;
  for (const auto& [name, t] : files.tensors) {
    // A tied lm_head is the embedding; transformers re-ties it on load.
    if (name == "lm_head.weight" && c.tie_word_embeddings) continue;
    if (t.dtype == DType::I32) {
      out.emplace(name, t);
      continue;
    }
    const bool fp8 = dtype == DType::FP8 && is_fp8_linear_weight(name, t);
    const DType to = fp8 ? DType::FP8 : dtype == DType::FP8 ? DType::BF16 : dtype;
    Tensor v = t.dtype == to ? t : backend::to_dtype(t, to);
    if (files.rope_interleaved)
      if (const int64_t heads = rope_permuted_heads(name, c)) v = unpermute_rope_rows(v, heads);
    if (fp8) {
      Fp8Pair pair = split_fp8_weight(v);
      out.emplace(name, std::move(pair.weight));
      out.emplace(name.substr(0, name.size() - 7) + ".weight_scale", std::move(pair.weight_scale));
      continue;
    }
    out.emplace(name, std::move(v));
  }
  return out;
}

void copy_side_files(const fs::path& source_dir, const fs::path& dest, const HfExportOptions& opt) {
  for (const char* name : kSideFiles) {
    if (opt.extra_files.count(name)) continue;
    const fs::path from = source_dir / name;
    std::error_code ec;
    if (!fs::is_regular_file(from, ec)) continue;
    // Read and written whole (tokenizer files are megabytes at most) rather than fs::copy_file,
    // whose kernel copy paths neither fsync nor report which side failed.
    write_text(dest / name, read_file(from.string(), "tokenizer or generation file"));
  }
}

// mkdtemp makes 0700; the finished checkpoint gets the permissions a new directory would.
void set_default_dir_mode(const fs::path& dir) {
  const mode_t mask = ::umask(0);
  ::umask(mask);
  ::chmod(dir.c_str(), 0777 & ~mask);
}

void rename_or_fail(const fs::path& from, const fs::path& to) {
  if (::rename(from.c_str(), to.c_str()) != 0)
    fail_write(errno, "cannot rename " + from.string() + " to " + to.string());
}

// rename(2) replaces an empty directory in one step; a non-empty one is swapped with the staged
// directory in one step too (RENAME_EXCHANGE), so that no moment, a crash included, leaves the
// target missing. Only where the filesystem cannot exchange is it first moved aside.
void install(SiblingDir& staged, const fs::path& out) {
  std::error_code ec;
  const bool exists = fs::exists(fs::symlink_status(out, ec));
  if (!exists || fs::is_empty(out, ec)) {
    rename_or_fail(staged.path(), out);
    staged.release();
    return;
  }
  if (::renameat2(AT_FDCWD, staged.path().c_str(), AT_FDCWD, out.c_str(), RENAME_EXCHANGE) == 0) {
    return;  // `staged` now names the replaced directory, which its destructor deletes
  }
  if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP)
    fail_write(errno, "cannot replace " + out.string() + " with " + staged.path().string());
  SiblingDir old(out, ".old");
  rename_or_fail(out, old.path());
  try {
    rename_or_fail(staged.path(), out);
  } catch (const Error&) {
    ::rename(old.path().c_str(), out.c_str());  // put the previous directory back
    old.release();
    throw;
  }
  staged.release();
}  // `old` (the replaced directory) is deleted here

uint64_t directory_bytes(const fs::path& dir) {
  uint64_t total = 0;
  std::error_code ec;
  for (const auto& e : fs::recursive_directory_iterator(dir, ec)) {
    if (!e.is_regular_file(ec)) continue;
    const uintmax_t n = e.file_size(ec);
    if (!ec) total += n;
  }
  return total;
}

}  // namespace

DType parse_export_dtype(const std::string& name) {
  if (name == "f32" || name == "float32") return DType::F32;
  if (name == "f16" || name == "float16") return DType::F16;
  if (name == "bf16" || name == "bfloat16") return DType::BF16;
  if (name == "fp8") return DType::FP8;
  fail("unknown dtype ", quote_bounded(name), " (choose f32, bf16, f16 or fp8)");
}

std::string torch_dtype_name(DType dtype) {
  switch (dtype) {
    case DType::F32:
      return "float32";
    case DType::F16:
      return "float16";
    case DType::BF16:
    case DType::FP8:  // the tensors FP8 checkpoints leave unquantised
      return "bfloat16";
    default:
      fail("checkpoints are stored as f32, f16, bf16 or fp8, not ", dtype_name(dtype));
  }
}

DType default_export_dtype(const ModelFiles& files) {
  if (files.format == ModelFormat::GGUF) return DType::F32;
  for (const auto& [name, t] : files.tensors)
    if (t.dtype == DType::FP8) return DType::FP8;  // an FP8 checkpoint stays one
  bool first = true, common = true;
  DType seen = DType::F32;
  for (const auto& [name, t] : files.tensors) {
    if (t.dtype == DType::I32) continue;
    if (first) seen = t.dtype, first = false;
    common = common && t.dtype == seen;
  }
  if (!first && common && (seen == DType::F32 || seen == DType::F16 || seen == DType::BF16)) return seen;
  const std::string& td = files.config.torch_dtype;
  if (td == "float32" || td == "float16" || td == "bfloat16") return parse_export_dtype(td);
  return DType::F32;
}

void check_export_target(const std::string& out_dir, const std::string& source_path, bool replace_existing) {
  if (out_dir.empty()) fail("the output directory path is empty");
  const fs::path out = normalized(out_dir);
  // Replacing (or writing into) the directory that holds the input would delete the user's model.
  std::error_code src_ec, dst_ec;
  const fs::path src = fs::weakly_canonical(fs::absolute(source_path), src_ec);
  const fs::path dst = fs::weakly_canonical(out, dst_ec);
  if (!src_ec && !dst_ec && !dst.empty() &&
      std::mismatch(dst.begin(), dst.end(), src.begin(), src.end()).first == dst.end())
    fail("output directory ", quote_bounded(out_dir), " holds the input model ", quote_bounded(source_path));
  std::error_code ec;
  if (!fs::is_directory(out.parent_path(), ec))
    fail("the parent directory ", quote_bounded(out.parent_path().string()), " of output directory ",
         quote_bounded(out_dir), " does not exist");
  const fs::file_status st = fs::symlink_status(out, ec);
  if (fs::exists(st)) {
    if (fs::is_symlink(st))
      fail("output path ", quote_bounded(out_dir), " is a symbolic link; give the directory it points to");
    if (!fs::is_directory(st)) fail("output path ", quote_bounded(out_dir), " exists and is not a directory");
    if (!fs::is_empty(out, ec)) {
      if (!replace_existing)
        fail("output directory ", quote_bounded(out_dir), " is not empty (pass --force to replace it)");
      if (!fs::exists(out / "config.json"))
        fail("refusing to replace ", quote_bounded(out_dir),
             " with --force: it is not a model directory (no config.json)");
    }
  }
}

namespace {

// HF row h*D + half*(D/2) + j <-> GGUF row h*D + 2*j + half, in the direction asked.
Tensor move_rope_rows(const Tensor& t, int64_t n_head, bool to_hf) {
  if (dtype_is_quantized(t.dtype) && t.dtype != DType::FP8)
    fail("rope row permutation: ", dtype_name(t.dtype), " rows cannot be moved");
  if (t.shape.empty() || t.shape.size() > 2)
    fail("rope row permutation: expected a 1-D or 2-D tensor, got ", t.shape_str());
  const int64_t rows = t.shape[0];
  if (n_head <= 0 || rows % n_head != 0 || (rows / n_head) % 2 != 0)
    fail("rope row permutation: ", rows, " rows do not split into ", n_head, " heads of even size");
  const int64_t head_dim = rows / n_head, half_dim = head_dim / 2;
  const size_t row_bytes = t.nbytes() / static_cast<size_t>(rows);
  Tensor out = Tensor::empty(t.dtype, t.shape);
  const auto* src = static_cast<const uint8_t*>(t.data);
  auto* dst = static_cast<uint8_t*>(out.data);
  for (int64_t h = 0; h < n_head; ++h)
    for (int64_t half = 0; half < 2; ++half)
      for (int64_t j = 0; j < half_dim; ++j) {
        const int64_t hf_row = h * head_dim + half * half_dim + j, gguf_row = h * head_dim + 2 * j + half;
        std::memcpy(dst + (to_hf ? hf_row : gguf_row) * row_bytes, src + (to_hf ? gguf_row : hf_row) * row_bytes,
                    row_bytes);
      }
  return out;
}

}  // namespace

Tensor unpermute_rope_rows(const Tensor& t, int64_t n_head) { return move_rope_rows(t, n_head, true); }
Tensor permute_rope_rows(const Tensor& t, int64_t n_head) { return move_rope_rows(t, n_head, false); }

HfExportResult export_hf_directory(const ModelFiles& files, const std::string& out_dir, const HfExportOptions& opt) {
  check_export_target(out_dir, files.path, opt.replace_existing);
  const fs::path out = normalized(out_dir);
  ModelConfig config = files.config;
  config.torch_dtype = torch_dtype_name(opt.dtype);
  config.fp8 = Fp8Scheme{};
  if (opt.dtype == DType::FP8) {
    config.fp8.enabled = true;
    config.fp8.ignore = {"lm_head"};
  }
  const bool hf = files.format == ModelFormat::HFDirectory;
  const std::string original_config = hf ? read_file((fs::path(files.path) / "config.json").string()) : "";

  for (const auto& [name, text] : opt.extra_files)
    if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..")
      fail("extra file name ", quote_bounded(name), " is not a plain file name");

  SiblingDir staged(out, ".tmp");
  HfExportResult result;
  try {
    {
      std::map<std::string, Tensor> tensors = export_tensors(files, opt.dtype);
      result.num_tensors = static_cast<int64_t>(tensors.size());
      write_safetensors((staged.path() / "model.safetensors").string(), tensors, {{"format", "pt"}});
    }  // the converted copies are freed before the small files are written
    write_text(staged.path() / "config.json", config_to_json_text(config, original_config));
    if (hf) copy_side_files(files.path, staged.path(), opt);
    for (const auto& [name, text] : opt.extra_files) write_text(staged.path() / name, text);
  } catch (const Error& e) {
    // The failing file is in the staged directory, which is gone by the time the user reads this.
    fail_like(e, "cannot write the model directory ", out.string(), ": ", e.what());
  }
  set_default_dir_mode(staged.path());
  sync_directory(staged.path().string());  // the entries written in it, before it goes live
  install(staged, out);
  sync_directory(out.parent_path().string());
  result.bytes_written = directory_bytes(out);
  return result;
}

}  // namespace skv::io
