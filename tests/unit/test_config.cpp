// ModelConfig from HF config.json (transformers 4.x and 5.x layouts) and from GGUF metadata.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "../fixtures/io/io_test_util.h"
#include "io/config.h"
#include "io/gguf.h"

using namespace skv_test;
using nlohmann::json;
using skv::io::ModelConfig;

namespace {

// SmolLM2-135M-Instruct's config.json (transformers 4.x layout).
json smollm2() {
  return json::parse(R"({
    "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
    "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu", "hidden_size": 576,
    "initializer_range": 0.041666666666666664, "intermediate_size": 1536, "is_llama_config": true,
    "max_position_embeddings": 8192, "model_type": "llama", "num_attention_heads": 9,
    "num_hidden_layers": 30, "num_key_value_heads": 3, "pad_token_id": 2, "pretraining_tp": 1,
    "rms_norm_eps": 1e-05, "rope_interleaved": false, "rope_scaling": null, "rope_theta": 100000,
    "tie_word_embeddings": true, "torch_dtype": "bfloat16", "transformers_version": "4.42.3",
    "use_cache": true, "vocab_size": 49152})");
}

ModelConfig parse(const json& j) { return skv::io::config_from_json_text(j.dump(), "config.json"); }

std::string error_for(const json& j) {
  return error_of([&] { parse(j); });
}

#define EXPECT_HAS(msg, needle) EXPECT_NE((msg).find(needle), std::string::npos) << "error message: " << (msg)

json llama3_scaling() {
  return {{"rope_type", "llama3"},
          {"factor", 32.0},
          {"low_freq_factor", 1.0},
          {"high_freq_factor", 4.0},
          {"original_max_position_embeddings", 8192}};
}

}  // namespace

TEST(Config, Llama4x) {
  const ModelConfig c = parse(smollm2());
  EXPECT_EQ(c.arch, skv::model::Arch::Llama);
  EXPECT_FALSE(c.swiftkv_checkpoint);
  EXPECT_EQ(c.vocab_size, 49152);
  EXPECT_EQ(c.hidden_size, 576);
  EXPECT_EQ(c.intermediate_size, 1536);
  EXPECT_EQ(c.num_layers, 30);
  EXPECT_EQ(c.num_heads, 9);
  EXPECT_EQ(c.num_kv_heads, 3);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_DOUBLE_EQ(c.rope_theta, 100000.0);
  EXPECT_EQ(c.rope_scaling.type, "none");
  EXPECT_EQ(c.max_position_embeddings, 8192);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_EQ(c.torch_dtype, "bfloat16");
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.eos_token_ids, std::vector<int64_t>{2});
  EXPECT_FALSE(c.swiftkv);
}

TEST(Config, Defaults) {
  json j = smollm2();
  for (const char* k : {"num_key_value_heads", "tie_word_embeddings", "rope_theta", "rope_scaling", "bos_token_id",
                        "eos_token_id", "attention_bias", "architectures", "rms_norm_eps"})
    j.erase(k);
  const ModelConfig c = parse(j);  // model_type alone identifies the architecture
  EXPECT_EQ(c.arch, skv::model::Arch::Llama);
  EXPECT_FALSE(c.swiftkv_checkpoint);
  EXPECT_EQ(c.num_kv_heads, 9);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0);
  EXPECT_EQ(c.bos_token_id, -1);
  EXPECT_TRUE(c.eos_token_ids.empty());
  EXPECT_GT(c.rms_norm_eps, 0.0);
}

TEST(Config, Transformers5RopeParameters) {
  json j = smollm2();
  j.erase("rope_theta");
  j.erase("rope_scaling");
  j.erase("torch_dtype");
  j["dtype"] = "float16";
  j["rope_parameters"] = {{"rope_theta", 500000.0}, {"rope_type", "default"}};
  ModelConfig c = parse(j);
  EXPECT_DOUBLE_EQ(c.rope_theta, 500000.0);
  EXPECT_EQ(c.rope_scaling.type, "none");
  EXPECT_EQ(c.torch_dtype, "float16");

  json s = llama3_scaling();
  s["rope_theta"] = 500000.0;
  j["rope_parameters"] = s;
  c = parse(j);
  EXPECT_DOUBLE_EQ(c.rope_theta, 500000.0);
  EXPECT_EQ(c.rope_scaling.type, "llama3");
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 32.0);

  j["rope_parameters"] = {{"rope_theta", 1e4}, {"rope_type", "linear"}, {"factor", 2}};
  c = parse(j);
  EXPECT_EQ(c.rope_scaling.type, "linear");
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 2.0);

  j["rope_parameters"] = {{"rope_theta", 1e4}, {"rope_type", "yarn"}, {"factor", 4}};
  EXPECT_HAS(error_for(j), "unsupported rope scaling type 'yarn' in field 'rope_parameters'");
}

TEST(Config, Llama3Scaling) {
  json j = smollm2();
  j["rope_theta"] = 500000.0;
  j["rope_scaling"] = llama3_scaling();
  const ModelConfig c = parse(j);
  EXPECT_EQ(c.rope_scaling.type, "llama3");
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 32.0);
  EXPECT_DOUBLE_EQ(c.rope_scaling.low_freq_factor, 1.0);
  EXPECT_DOUBLE_EQ(c.rope_scaling.high_freq_factor, 4.0);
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 8192);

  j["rope_scaling"].erase("low_freq_factor");
  EXPECT_HAS(error_for(j), "field 'rope_scaling.low_freq_factor' is missing");
  j["rope_scaling"] = llama3_scaling();
  j["rope_scaling"]["high_freq_factor"] = 0.5;
  EXPECT_HAS(error_for(j), "high_freq_factor");
}

TEST(Config, LinearScalingOldTypeKey) {
  json j = smollm2();
  j["rope_scaling"] = {{"type", "linear"}, {"factor", 4.0}};
  const ModelConfig c = parse(j);
  EXPECT_EQ(c.rope_scaling.type, "linear");
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 4.0);
  j["rope_scaling"] = {{"type", "linear"}};
  EXPECT_HAS(error_for(j), "rope_scaling.factor");
  j["rope_scaling"] = {{"type", "linear"}, {"factor", -1}};
  EXPECT_HAS(error_for(j), "rope_scaling.factor");
  j["rope_scaling"] = {{"rope_type", "default"}};
  EXPECT_EQ(parse(j).rope_scaling.type, "none");
}

TEST(Config, UnsupportedRopeTypes) {
  for (const char* t : {"yarn", "dynamic", "longrope", "su"}) {
    json j = smollm2();
    j["rope_scaling"] = {{"rope_type", t}, {"factor", 2.0}};
    const std::string m = error_for(j);
    EXPECT_HAS(m, std::string("unsupported rope scaling type '") + t + "'");
    EXPECT_HAS(m, "config.json");
  }
  json j = smollm2();
  j["rope_scaling"] = "linear";
  EXPECT_HAS(error_for(j), "rope_scaling");
}

TEST(Config, ExplicitHeadDim) {
  json j = smollm2();
  j["head_dim"] = 128;
  EXPECT_EQ(parse(j).head_dim, 128);
  j["head_dim"] = nullptr;
  EXPECT_EQ(parse(j).head_dim, 64);
  j["hidden_size"] = 577;
  EXPECT_HAS(error_for(j), "not divisible");
  j["head_dim"] = 64;  // explicit head_dim does not need hidden % heads == 0
  EXPECT_EQ(parse(j).head_dim, 64);
  j["head_dim"] = 63;
  EXPECT_HAS(error_for(j), "'head_dim'");
}

TEST(Config, EosList) {
  json j = smollm2();
  j["eos_token_id"] = {128001, 128008, 128009};
  EXPECT_EQ(parse(j).eos_token_ids, (std::vector<int64_t>{128001, 128008, 128009}));
  j["eos_token_id"] = nullptr;
  EXPECT_TRUE(parse(j).eos_token_ids.empty());
  j["eos_token_id"] = {1, "x"};
  EXPECT_HAS(error_for(j), "eos_token_id");
}

TEST(Config, Qwen2) {
  json j = smollm2();
  j["architectures"] = {"Qwen2ForCausalLM"};
  j["model_type"] = "qwen2";
  j.erase("attention_bias");
  j["use_sliding_window"] = false;
  j["sliding_window"] = 32768;
  const ModelConfig c = parse(j);
  EXPECT_EQ(c.arch, skv::model::Arch::Qwen2);
  EXPECT_TRUE(c.attention_bias);
  EXPECT_FALSE(c.o_proj_bias());   // Qwen2Attention never biases o_proj
  EXPECT_EQ(c.sliding_window, 0);  // only counts with use_sliding_window
  j["attention_bias"] = false;     // forced: Qwen2 always has q/k/v biases
  EXPECT_TRUE(parse(j).attention_bias);
  j["use_sliding_window"] = true;
  EXPECT_HAS(error_for(j), "'use_sliding_window' = true is not supported");
}

TEST(Config, Mistral) {
  json j = smollm2();
  j["architectures"] = {"MistralForCausalLM"};
  j["model_type"] = "mistral";
  j.erase("attention_bias");
  j["sliding_window"] = 4096;
  ModelConfig c = parse(j);
  EXPECT_EQ(c.arch, skv::model::Arch::Mistral);
  EXPECT_EQ(c.sliding_window, 4096);
  EXPECT_FALSE(c.attention_bias);
  j["sliding_window"] = nullptr;  // null: no window
  EXPECT_EQ(parse(j).sliding_window, 0);
  j.erase("sliding_window");  // absent: transformers' MistralConfig default
  EXPECT_EQ(parse(j).sliding_window, 4096);
  j["attention_bias"] = true;  // MistralAttention has no biases whatever the config says
  EXPECT_FALSE(parse(j).attention_bias);
  j["sliding_window"] = -3;
  EXPECT_HAS(error_for(j), "'sliding_window'");
  // A Llama config's sliding_window means nothing to transformers' Llama, so it is not read.
  json l = smollm2();
  l["sliding_window"] = 16;
  EXPECT_EQ(parse(l).sliding_window, 0);
}

TEST(Config, Qwen3) {
  json j = smollm2();
  j["architectures"] = {"Qwen3ForCausalLM"};
  j["model_type"] = "qwen3";
  j["head_dim"] = 128;  // explicit, != 576 / 9
  j["attention_bias"] = false;
  ModelConfig c = parse(j);
  EXPECT_EQ(c.arch, skv::model::Arch::Qwen3);
  EXPECT_TRUE(c.qk_norm());
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_FALSE(c.attention_bias);
  j["attention_bias"] = true;  // Qwen3Attention biases q/k/v and o alike
  c = parse(j);
  EXPECT_TRUE(c.attention_bias);
  EXPECT_TRUE(c.o_proj_bias());
}

TEST(Config, SwiftKVVariants) {
  for (const skv::model::ArchInfo& a : skv::model::all_archs()) {
    json j = smollm2();
    j["architectures"] = {a.swiftkv_class};
    j["model_type"] = a.swiftkv_model_type;
    j["num_key_value_layers"] = 10;
    const ModelConfig c = parse(j);
    EXPECT_EQ(c.arch, a.id) << a.model_type;
    EXPECT_TRUE(c.swiftkv_checkpoint) << a.model_type;
    EXPECT_EQ(c.model_type(), a.swiftkv_model_type);
    EXPECT_EQ(c.num_key_value_layers, 10);
  }
}

TEST(Config, SwiftKV) {
  json j = smollm2();
  j["architectures"] = {"LlamaSwiftKVForCausalLM"};
  j["model_type"] = "llama_swiftkv";
  j["num_key_value_layers"] = 16;
  ModelConfig c = parse(j);
  EXPECT_EQ(c.arch, skv::model::Arch::Llama);
  EXPECT_TRUE(c.swiftkv_checkpoint);
  EXPECT_TRUE(c.swiftkv);
  EXPECT_EQ(c.num_key_value_layers, 16);
  EXPECT_EQ(c.key_value_group_size, 1);

  j["key_value_group_size"] = 7;  // (30 - 16) % 7 == 0
  j["swiftkv"] = true;
  c = parse(j);
  EXPECT_EQ(c.key_value_group_size, 7);

  j["key_value_group_size"] = 4;
  EXPECT_HAS(error_for(j), "'key_value_group_size'");
  j["key_value_group_size"] = 0;
  EXPECT_HAS(error_for(j), "'key_value_group_size'");
  j["key_value_group_size"] = 1;
  for (int bad : {0, -1, 30, 31}) {
    j["num_key_value_layers"] = bad;
    EXPECT_HAS(error_for(j), "'num_key_value_layers'");
  }
  j.erase("num_key_value_layers");
  EXPECT_HAS(error_for(j), "'num_key_value_layers'");

  j["swiftkv"] = false;  // disabled: the checkpoint runs as a plain llama
  c = parse(j);
  EXPECT_FALSE(c.swiftkv);
  j["swiftkv"] = "yes";
  EXPECT_HAS(error_for(j), "'swiftkv' must be true or false");

  // model_type alone is enough, and architectures wins over a generic model_type.
  json k = smollm2();
  k.erase("architectures");
  k["model_type"] = "llama_swiftkv";
  k["num_key_value_layers"] = 10;
  EXPECT_TRUE(parse(k).swiftkv_checkpoint);
  k["architectures"] = {"LlamaSwiftKVForCausalLM"};
  k["model_type"] = "llama";
  EXPECT_TRUE(parse(k).swiftkv_checkpoint);
}

TEST(Config, UnknownArchitecture) {
  json j = smollm2();
  j["architectures"] = {"GemmaForCausalLM"};
  j["model_type"] = "gemma";
  EXPECT_HAS(error_for(j),
             "unsupported architecture 'GemmaForCausalLM' (supported: llama, qwen2, qwen3, mistral and "
             "their _swiftkv variants)");
  j.erase("architectures");
  EXPECT_HAS(error_for(j), "unsupported architecture 'gemma'");
  j.erase("model_type");
  EXPECT_HAS(error_for(j), "unsupported architecture");
}

TEST(Config, InvalidValues) {
  json j = smollm2();
  j["num_key_value_heads"] = 4;
  EXPECT_HAS(error_for(j), "'num_key_value_heads'");
  j = smollm2();
  j["hidden_size"] = 0;
  EXPECT_HAS(error_for(j), "'hidden_size' must be positive");
  j = smollm2();
  j["num_hidden_layers"] = -2;
  EXPECT_HAS(error_for(j), "'num_hidden_layers'");
  j = smollm2();
  j.erase("vocab_size");
  EXPECT_HAS(error_for(j), "field 'vocab_size' is missing");
  j = smollm2();
  j["intermediate_size"] = "big";
  EXPECT_HAS(error_for(j), "field 'intermediate_size' must be an integer");
  j["intermediate_size"] = 1536.0;  // integral floats are accepted
  EXPECT_EQ(parse(j).intermediate_size, 1536);
  j["rms_norm_eps"] = "small";
  EXPECT_HAS(error_for(j), "'rms_norm_eps' must be a number");
  j = smollm2();
  j["mlp_bias"] = true;
  EXPECT_HAS(error_for(j), "mlp_bias");
  EXPECT_HAS(error_of([] { skv::io::config_from_json_text("{not json", "x/config.json"); }),
             "x/config.json: invalid JSON");
  EXPECT_HAS(error_of([] { skv::io::config_from_json_text("[]", "c.json"); }), "not a JSON object");
}

TEST(Config, ValidateDirectly) {
  ModelConfig c = parse(smollm2());
  EXPECT_NO_THROW(c.validate());
  c.num_kv_heads = 0;
  EXPECT_SKV_ERROR(c.validate(), "num_key_value_heads");
  c = parse(smollm2());
  c.rope_scaling.type = "yarn";
  EXPECT_SKV_ERROR(c.validate(), "yarn");
  c = parse(smollm2());
  c.sliding_window = -1;
  EXPECT_SKV_ERROR(c.validate(), "sliding_window");
}

TEST(Config, FromFile) {
  TempDir dir;
  write_file(dir.file("config.json"), smollm2().dump(2));
  EXPECT_EQ(skv::io::config_from_json_file(dir.file("config.json")).hidden_size, 576);
  EXPECT_SKV_ERROR(skv::io::config_from_json_file(dir.file("missing.json")), "missing.json");
  write_file(dir.file("bad.json"), std::string("{\"vocab_size\": 1"));
  EXPECT_SKV_ERROR(skv::io::config_from_json_file(dir.file("bad.json")), "bad.json: invalid JSON");
}

// ---- GGUF metadata ----

class ConfigGGUF : public ::testing::Test {
 protected:
  TempDir dir;
  std::string path = dir.file("m.gguf");
  ModelConfig load(const GGUFBuilder& g) {
    g.write(path);
    return skv::io::config_from_gguf(skv::io::GGUFFile(path));
  }
  std::string error(const GGUFBuilder& g) {
    return error_of([&] { load(g); });
  }
};

TEST_F(ConfigGGUF, Llama) {
  const ModelConfig c = load(tiny_llama_gguf());
  EXPECT_EQ(c.arch, skv::model::Arch::Llama);
  EXPECT_FALSE(c.swiftkv_checkpoint);
  EXPECT_EQ(c.num_layers, 2);
  EXPECT_EQ(c.hidden_size, 8);
  EXPECT_EQ(c.intermediate_size, 16);
  EXPECT_EQ(c.num_heads, 2);
  EXPECT_EQ(c.num_kv_heads, 1);
  EXPECT_EQ(c.head_dim, 4);
  EXPECT_EQ(c.vocab_size, 6);  // from tokenizer.ggml.tokens
  EXPECT_NEAR(c.rms_norm_eps, 1e-5, 1e-12);
  EXPECT_DOUBLE_EQ(c.rope_theta, 100000.0);
  EXPECT_EQ(c.max_position_embeddings, 128);
  EXPECT_TRUE(c.tie_word_embeddings);  // no output.weight
  EXPECT_FALSE(c.attention_bias);
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.eos_token_ids, std::vector<int64_t>{2});
  EXPECT_EQ(c.rope_scaling.type, "none");

  EXPECT_FALSE(load(tiny_llama_gguf("llama", true)).tie_word_embeddings);
}

TEST_F(ConfigGGUF, OptionalKeys) {
  GGUFBuilder g = tiny_llama_gguf();
  g.kv_u32("llama.vocab_size", 100)
      .kv_u32("llama.rope.dimension_count", 6)
      .kv_str("llama.rope.scaling.type", "linear")
      .kv_f32("llama.rope.scaling.factor", 4.0f);
  ModelConfig c = load(g);
  EXPECT_EQ(c.vocab_size, 100);
  EXPECT_EQ(c.head_dim, 6);
  EXPECT_EQ(c.rope_scaling.type, "linear");
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 4.0);
  g.kv_u32("llama.attention.key_length", 8);  // wins over rope.dimension_count
  EXPECT_EQ(load(g).head_dim, 8);
}

TEST_F(ConfigGGUF, Qwen2) {
  const ModelConfig c = load(tiny_llama_gguf("qwen2"));
  EXPECT_EQ(c.arch, skv::model::Arch::Qwen2);
  EXPECT_TRUE(c.attention_bias);
}

TEST_F(ConfigGGUF, Qwen3) {
  const ModelConfig c = load(tiny_llama_gguf("qwen3"));
  EXPECT_EQ(c.arch, skv::model::Arch::Qwen3);
  EXPECT_TRUE(c.qk_norm());
  EXPECT_FALSE(c.attention_bias);  // no blk.0.attn_q.bias tensor
}

TEST_F(ConfigGGUF, Errors) {
  GGUFBuilder g;
  g.kv_str("general.architecture", "gpt2");
  EXPECT_HAS(error(g), "unsupported GGUF architecture 'gpt2'");
  EXPECT_HAS(error(GGUFBuilder()), "general.architecture");

  GGUFBuilder r = tiny_llama_gguf();
  r.tensor_f32("rope_freqs.weight", {2});
  EXPECT_HAS(error(r), "rope_freqs.weight");

  GGUFBuilder y = tiny_llama_gguf();
  y.kv_str("llama.rope.scaling.type", "yarn");
  EXPECT_HAS(error(y), "unsupported rope scaling type 'yarn'");

  GGUFBuilder missing;
  missing.kv_str("general.architecture", "llama").kv_u32("llama.block_count", 2);
  EXPECT_HAS(error(missing), "llama.embedding_length");

  GGUFBuilder no_vocab;
  no_vocab.kv_str("general.architecture", "llama")
      .kv_u32("llama.block_count", 2)
      .kv_u32("llama.embedding_length", 8)
      .kv_u32("llama.feed_forward_length", 16)
      .kv_u32("llama.attention.head_count", 2)
      .kv_u32("llama.attention.head_count_kv", 2)
      .kv_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  EXPECT_HAS(error(no_vocab), "vocab size");
  no_vocab.kv_u32("llama.vocab_size", 10);
  EXPECT_EQ(load(no_vocab).vocab_size, 10);
  no_vocab.kv_u32("llama.attention.head_count_kv", 3);  // a later duplicate key is rejected by the reader
  EXPECT_HAS(error(no_vocab), "duplicate");
}
