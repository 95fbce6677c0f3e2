// open_model_files: HF directories (single file and sharded), GGUF files with names mapped
// to HF names, and clear errors for everything else.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "../fixtures/io/io_test_util.h"
#include "io/gguf.h"
#include "io/model_files.h"
#include "io/safetensors.h"

using namespace skv_test;
using skv::Tensor;
using skv::io::ModelFiles;

namespace {

const char* kConfig = R"({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 6,
  "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
  "num_key_value_heads": 1, "rms_norm_eps": 1e-5, "tie_word_embeddings": true})";

Tensor f32(std::vector<int64_t> shape, float start = 0) {
  Tensor t = Tensor::empty(skv::DType::F32, std::move(shape));
  for (int64_t i = 0; i < t.numel(); ++i) t.as<float>()[i] = start + static_cast<float>(i);
  return t;
}

#define EXPECT_HAS(msg, needle) EXPECT_NE((msg).find(needle), std::string::npos) << "error message: " << (msg)

class ModelFilesTest : public ::testing::Test {
 protected:
  TempDir dir;
  std::string error(const std::string& path) {
    return error_of([&] { skv::io::open_model_files(path); });
  }
  // Writes a 3-tensor model split over two shards and returns the index JSON.
  nlohmann::json write_sharded() {
    write_file(dir.file("config.json"), std::string(kConfig));
    skv::io::write_safetensors(dir.file("model-00001-of-00002.safetensors"),
                               {{"model.embed_tokens.weight", f32({6, 8})}, {"model.norm.weight", f32({8}, 1)}});
    skv::io::write_safetensors(dir.file("model-00002-of-00002.safetensors"), {{"extra", f32({2}, 5)}});
    nlohmann::json index = {{"metadata", {{"total_size", 212}}},
                            {"weight_map",
                             {{"model.embed_tokens.weight", "model-00001-of-00002.safetensors"},
                              {"model.norm.weight", "model-00001-of-00002.safetensors"},
                              {"extra", "model-00002-of-00002.safetensors"}}}};
    write_file(dir.file("model.safetensors.index.json"), index.dump());
    return index;
  }
};

}  // namespace

TEST_F(ModelFilesTest, HFSingleFile) {
  write_file(dir.file("config.json"), std::string(kConfig));
  skv::io::write_safetensors(dir.file("model.safetensors"),
                             {{"model.embed_tokens.weight", f32({6, 8})}, {"model.norm.weight", f32({8}, 1)}});
  const ModelFiles m = skv::io::open_model_files(dir.path.string());
  EXPECT_EQ(m.format, skv::io::ModelFormat::HFDirectory);
  EXPECT_EQ(m.path, dir.path.string());
  EXPECT_EQ(m.config.hidden_size, 8);
  EXPECT_TRUE(m.config.tie_word_embeddings);
  EXPECT_FALSE(m.rope_interleaved);
  EXPECT_FALSE(m.gguf);
  EXPECT_EQ(m.shards.size(), 1u);
  EXPECT_EQ(m.tensors.size(), 2u);
  EXPECT_EQ(m.get("model.norm.weight").as<float>()[7], 8.0f);
  EXPECT_EQ(m.get("model.embed_tokens.weight").shape, (std::vector<int64_t>{6, 8}));
  EXPECT_EQ(m.find("lm_head.weight"), nullptr);
  EXPECT_SKV_ERROR(m.get("lm_head.weight"), "tensor 'lm_head.weight' not found in " + dir.path.string());
}

TEST_F(ModelFilesTest, HFSharded) {
  write_sharded();
  const ModelFiles m = skv::io::open_model_files(dir.path.string() + "/");
  EXPECT_EQ(m.shards.size(), 2u);  // each shard opened once
  EXPECT_EQ(m.tensors.size(), 3u);
  EXPECT_EQ(m.get("extra").as<float>()[1], 6.0f);
  EXPECT_EQ(m.get("model.norm.weight").as<float>()[0], 1.0f);
}

TEST_F(ModelFilesTest, HFShardedErrors) {
  nlohmann::json index = write_sharded();
  index["weight_map"]["ghost"] = "model-00002-of-00002.safetensors";
  write_file(dir.file("model.safetensors.index.json"), index.dump());
  std::string m = error(dir.path.string());
  EXPECT_HAS(m, "tensor 'ghost' is missing from its shard 'model-00002-of-00002.safetensors'");

  index = write_sharded();
  index["weight_map"]["extra"] = "model-00003-of-00002.safetensors";
  write_file(dir.file("model.safetensors.index.json"), index.dump());
  EXPECT_HAS(error(dir.path.string()), "model-00003-of-00002.safetensors");

  index["weight_map"]["extra"] = "../outside.safetensors";
  write_file(dir.file("model.safetensors.index.json"), index.dump());
  EXPECT_HAS(error(dir.path.string()), "not a plain file name");

  write_file(dir.file("model.safetensors.index.json"), std::string("{\"weight_map\": [1]}"));
  EXPECT_HAS(error(dir.path.string()), "weight_map");
  write_file(dir.file("model.safetensors.index.json"), std::string("{oops"));
  EXPECT_HAS(error(dir.path.string()), "invalid JSON");
}

TEST_F(ModelFilesTest, HFMissingPieces) {
  EXPECT_HAS(error(dir.path.string()), "config.json not found");
  write_file(dir.file("config.json"), std::string(kConfig));
  EXPECT_HAS(error(dir.path.string()), "no model.safetensors or model.safetensors.index.json in " + dir.path.string());
  write_file(dir.file("config.json"), std::string(R"({"model_type": "gpt2"})"));
  EXPECT_HAS(error(dir.path.string()), "unsupported architecture 'gpt2'");
}

TEST_F(ModelFilesTest, GGUFNamesMapped) {
  GGUFBuilder g = tiny_llama_gguf();
  g.tensor_f32("custom.thing", {3});
  g.write(dir.file("tiny.gguf"));
  const ModelFiles m = skv::io::open_model_files(dir.file("tiny.gguf"));
  EXPECT_EQ(m.format, skv::io::ModelFormat::GGUF);
  ASSERT_TRUE(m.gguf);
  EXPECT_TRUE(m.shards.empty());
  EXPECT_TRUE(m.rope_interleaved);
  EXPECT_TRUE(m.config.tie_word_embeddings);
  EXPECT_EQ(m.tensors.size(), g.tensors.size());
  for (const char* name : {"model.embed_tokens.weight", "model.norm.weight", "model.layers.1.input_layernorm.weight",
                           "model.layers.1.post_attention_layernorm.weight", "model.layers.0.self_attn.q_proj.weight",
                           "model.layers.0.self_attn.k_proj.weight", "model.layers.0.self_attn.v_proj.weight",
                           "model.layers.0.self_attn.o_proj.weight", "model.layers.1.mlp.gate_proj.weight",
                           "model.layers.1.mlp.up_proj.weight", "model.layers.1.mlp.down_proj.weight", "custom.thing"})
    EXPECT_NE(m.find(name), nullptr) << name;
  EXPECT_EQ(m.find("token_embd.weight"), nullptr);
  EXPECT_EQ(m.get("model.layers.0.self_attn.k_proj.weight").shape, (std::vector<int64_t>{4, 8}));
  EXPECT_EQ(m.get("model.layers.1.mlp.down_proj.weight").shape, (std::vector<int64_t>{8, 16}));
  EXPECT_EQ(m.get("model.embed_tokens.weight").as<float>()[9], 9.0f);

  tiny_llama_gguf("llama", true).write(dir.file("untied.gguf"));
  const ModelFiles u = skv::io::open_model_files(dir.file("untied.gguf"));
  EXPECT_FALSE(u.config.tie_word_embeddings);
  EXPECT_NE(u.find("lm_head.weight"), nullptr);
}

TEST_F(ModelFilesTest, GGUFQwen2Biases) {
  tiny_llama_gguf("qwen2").write(dir.file("q.gguf"));
  const ModelFiles m = skv::io::open_model_files(dir.file("q.gguf"));
  EXPECT_FALSE(m.rope_interleaved);  // llama.cpp only permutes q/k for llama
  EXPECT_TRUE(m.config.attention_bias);
  for (const char* p : {"q", "k", "v"})
    EXPECT_NE(m.find(std::string("model.layers.1.self_attn.") + p + "_proj.bias"), nullptr) << p;
}

TEST_F(ModelFilesTest, GGUFByMagicAndErrors) {
  tiny_llama_gguf().write(dir.file("weights.bin"));
  EXPECT_EQ(skv::io::open_model_files(dir.file("weights.bin")).format, skv::io::ModelFormat::GGUF);

  GGUFBuilder q = tiny_llama_gguf();
  q.tensor("blk.0.attn_q.weight_q3k", {256}, 11, Bytes(110, 0));  // Q3_K: a type swiftkv refuses
  q.write(dir.file("q3k.gguf"));
  const std::string m = error(dir.file("q3k.gguf"));
  EXPECT_HAS(m, "Q3_K");
  EXPECT_HAS(m, "blk.0.attn_q.weight_q3k");

  GGUFBuilder dup = tiny_llama_gguf();
  dup.tensor_f32("model.norm.weight", {8});  // collides with the mapped output_norm.weight
  dup.write(dir.file("dup.gguf"));
  EXPECT_HAS(error(dir.file("dup.gguf")), "appears twice");

  write_file(dir.file("broken.gguf"), std::string("GGUF"));
  EXPECT_HAS(error(dir.file("broken.gguf")), "broken.gguf");
}

TEST_F(ModelFilesTest, NotAModel) {
  EXPECT_HAS(error(dir.file("nope")), "model path '" + dir.file("nope") + "' does not exist");
  write_file(dir.file("notes.txt"), std::string("hello"));
  EXPECT_HAS(error(dir.file("notes.txt")), "not a model");
  skv::io::write_safetensors(dir.file("model.safetensors"), {{"a", f32({1})}});
  EXPECT_HAS(error(dir.file("model.safetensors")), "not a model");
}

TEST(ModelFilesRealModel, SmolLM2GGUF) {
  const std::string path = models_dir() + "/SmolLM2-135M-Instruct.Q4_1.gguf";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " not present (run scripts/fetch_model.sh)";
  const ModelFiles m = skv::io::open_model_files(path);
  const skv::io::ModelConfig& c = m.config;
  EXPECT_EQ(c.arch, skv::model::Arch::Llama);
  EXPECT_EQ(c.num_layers, 30);
  EXPECT_EQ(c.hidden_size, 576);
  EXPECT_EQ(c.intermediate_size, 1536);
  EXPECT_EQ(c.num_heads, 9);
  EXPECT_EQ(c.num_kv_heads, 3);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.vocab_size, 49152);
  EXPECT_DOUBLE_EQ(c.rope_theta, 100000.0);
  EXPECT_EQ(c.max_position_embeddings, 8192);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.eos_token_ids, std::vector<int64_t>{2});
  EXPECT_TRUE(m.rope_interleaved);

  ASSERT_EQ(m.tensors.size(), 272u);
  EXPECT_EQ(m.get("model.embed_tokens.weight").dtype, skv::DType::Q8_0);
  EXPECT_EQ(m.get("model.embed_tokens.weight").shape, (std::vector<int64_t>{49152, 576}));
  EXPECT_EQ(m.get("model.norm.weight").dtype, skv::DType::F32);
  for (int l = 0; l < 30; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    EXPECT_EQ(m.get(p + "self_attn.q_proj.weight").dtype, skv::DType::Q4_1);
    EXPECT_EQ(m.get(p + "self_attn.k_proj.weight").shape, (std::vector<int64_t>{192, 576}));
    EXPECT_EQ(m.get(p + "mlp.down_proj.weight").shape, (std::vector<int64_t>{576, 1536}));
    EXPECT_EQ(m.get(p + "input_layernorm.weight").dtype, skv::DType::F32);
  }
  for (const auto& [name, t] : m.tensors)
    EXPECT_TRUE(t.dtype == skv::DType::Q4_1 || t.dtype == skv::DType::F32 || name == "model.embed_tokens.weight")
        << name;
}
