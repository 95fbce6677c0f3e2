// Tokenizer::from_tokenizer_json: Hugging Face tokenizer.json (+ tokenizer_config.json and
// chat_template.jinja next to it, when present, for BOS / EOS and the chat template).
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/read_file.h"
#include "tokenizer/bpe_tokenizer.h"

namespace skv::tokenizer {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

json parse_json_file(const fs::path& path) {
  try {
    return json::parse(io::read_file(path.string()));
  } catch (const json::exception& e) {
    fail(path.string(), ": invalid JSON: ", bound_message(e.what(), 300));
  }
}

std::vector<std::pair<std::string, std::string>> parse_merges(const json& merges) {
  if (!merges.is_array()) fail("model.merges must be an array");
  std::vector<std::pair<std::string, std::string>> out;
  out.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    const json& m = merges[i];
    if (m.is_string()) {  // "a b": exactly one space (byte-level tokens never contain one)
      const std::string s = m.get<std::string>();
      const size_t sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos || sp == 0 || sp + 1 == s.size())
        fail("model.merges[", i, "] = \"", s, "\" is not of the form \"left right\"");
      out.emplace_back(s.substr(0, sp), s.substr(sp + 1));
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      out.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
    } else {
      fail("model.merges[", i, "] must be \"left right\" or [\"left\", \"right\"], got ", m.dump());
    }
  }
  return out;
}

// The post-processor only matters here for the ids it adds around a single sequence.
void parse_post_processor(const json& j, std::vector<int32_t>& prefix, std::vector<int32_t>& suffix) {
  if (j.is_null()) return;
  const std::string type = j.value("type", "");
  if (type == "ByteLevel") return;  // only adjusts offsets
  if (type == "Sequence") {
    for (const auto& p : j.at("processors")) parse_post_processor(p, prefix, suffix);
    return;
  }
  if (type == "TemplateProcessing") {
    bool seen_a = false;
    for (const auto& piece : j.at("single")) {
      if (piece.contains("Sequence")) {
        seen_a = true;
      } else if (piece.contains("SpecialToken")) {
        const std::string name = piece["SpecialToken"].at("id").get<std::string>();
        const auto& st = j.at("special_tokens");
        if (!st.contains(name))
          fail("post_processor template uses ", quote_bounded(name), " missing from its special_tokens");
        for (const auto& id : st[name].at("ids")) (seen_a ? suffix : prefix).push_back(id.get<int32_t>());
      }
    }
    return;
  }
  if (type == "RobertaProcessing" || type == "BertProcessing") {
    prefix.push_back(j.at("cls").at(1).get<int32_t>());
    suffix.push_back(j.at("sep").at(1).get<int32_t>());
    return;
  }
  fail("unsupported post_processor type ", quote_bounded(type));
}

void check_decoder(const json& j) {
  if (j.is_null()) return;
  const std::string type = j.value("type", "");
  if (type == "ByteLevel") return;
  if (type == "Sequence") {
    for (const auto& d : j.at("decoders")) check_decoder(d);
    return;
  }
  fail("unsupported decoder type ", quote_bounded(type), " (swiftkv decodes byte-level BPE only)");
}

// tokenizer_config.json writes special tokens as "text" or {"content": "text", ...}.
std::optional<std::string> token_string(const json& cfg, const char* key) {
  if (!cfg.contains(key)) return std::nullopt;
  const json& v = cfg[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return std::nullopt;
}

std::string template_from_config(const json& cfg) {
  if (!cfg.contains("chat_template")) return "";
  const json& t = cfg["chat_template"];
  if (t.is_string()) return t.get<std::string>();
  if (t.is_array()) {  // [{"name": "default", "template": "..."}, {"name": "tool_use", ...}]
    for (const auto& e : t)
      if (e.value("name", "") == "default") return e.value("template", "");
    if (!t.empty()) return t[0].value("template", "");
  }
  return "";
}

}  // namespace

std::unique_ptr<Tokenizer> Tokenizer::from_tokenizer_json(const std::string& json_path) {
  const json j = parse_json_file(json_path);
  try {
    if (!j.is_object() || !j.contains("model") || !j["model"].is_object()) fail("no \"model\" object");
    const json& m = j["model"];
    const std::string type = m.value("type", m.contains("merges") ? "BPE" : "");
    if (type != "BPE") fail("unsupported model type ", quote_bounded(type), " (swiftkv supports byte-level BPE only)");
    if (m.value("byte_fallback", false)) fail("BPE byte_fallback is not supported");
    for (const char* k : {"continuing_subword_prefix", "end_of_word_suffix"})
      if (m.contains(k) && m[k].is_string() && !m[k].get<std::string>().empty()) fail("BPE ", k, " is not supported");
    // model.dropout is ignored: it only matters for training-time subword regularisation.

    BpeTokenizer::Parts p;
    if (!m.contains("vocab") || !m["vocab"].is_object()) fail("model.vocab must be an object");
    for (const auto& [tok, id] : m["vocab"].items()) {
      if (!id.is_number_integer()) fail("model.vocab[\"", tok, "\"] is not an integer id");
      p.vocab.emplace(tok, id.get<int32_t>());
    }
    if (!m.contains("merges")) fail("model.merges is missing");
    p.merges = parse_merges(m["merges"]);
    p.model_opts.ignore_merges = m.value("ignore_merges", false);
    p.model_opts.fuse_unk = m.value("fuse_unk", false);
    if (m.contains("unk_token") && m["unk_token"].is_string()) {
      auto it = p.vocab.find(m["unk_token"].get<std::string>());
      if (it == p.vocab.end()) fail("unk_token is not in the vocabulary");
      p.model_opts.unk_id = p.unk = it->second;
    }
    for (const auto& a : j.value("added_tokens", json::array())) {
      AddedToken t;
      t.id = a.at("id").get<int32_t>();
      t.content = a.at("content").get<std::string>();
      t.special = a.value("special", false);
      t.lstrip = a.value("lstrip", false);
      t.rstrip = a.value("rstrip", false);
      t.single_word = a.value("single_word", false);
      t.normalized = a.value("normalized", !t.special);
      p.added.push_back(std::move(t));
    }
    if (j.contains("normalizer") && !j["normalizer"].is_null()) p.normalizer = normalizer_from_json(j["normalizer"]);
    if (!j.contains("pre_tokenizer") || j["pre_tokenizer"].is_null())
      fail("no pre_tokenizer (swiftkv supports byte-level BPE only)");
    p.pre = pre_tokenizer_from_json(j["pre_tokenizer"]);
    parse_post_processor(j.value("post_processor", json()), p.prefix, p.suffix);
    check_decoder(j.value("decoder", json()));

    const auto lookup = [&](const std::string& text) -> std::optional<int32_t> {
      for (const auto& t : p.added)
        if (t.content == text) return t.id;
      if (auto it = p.vocab.find(text); it != p.vocab.end()) return it->second;
      return std::nullopt;
    };
    // BOS / EOS and the chat template live in tokenizer_config.json beside tokenizer.json.
    const fs::path dir = fs::path(json_path).parent_path();
    if (fs::exists(dir / "tokenizer_config.json")) {
      const json cfg = parse_json_file(dir / "tokenizer_config.json");
      if (auto s = token_string(cfg, "bos_token")) p.bos = lookup(*s);
      if (auto s = token_string(cfg, "eos_token")) p.eos = lookup(*s);
      if (auto s = token_string(cfg, "unk_token")) p.unk = lookup(*s);
      if (auto s = token_string(cfg, "pad_token")) p.pad = lookup(*s);
      p.chat_template = template_from_config(cfg);
    }
    if (p.chat_template.empty() && fs::exists(dir / "chat_template.jinja"))
      p.chat_template = io::read_file((dir / "chat_template.jinja").string());
    if (!p.bos && !p.prefix.empty()) p.bos = p.prefix.front();
    // Without a config, fall back to the end-of-text names the common byte-level models use.
    for (const char* name : {"<|end_of_text|>", "<|endoftext|>", "</s>", "<|im_end|>"})
      if (!p.eos) p.eos = lookup(name);
    return std::make_unique<BpeTokenizer>(std::move(p));
  } catch (const json::exception& e) {
    fail(json_path, ": malformed tokenizer.json: ", bound_message(e.what(), 300));
  } catch (const Error& e) {
    fail_like(e, json_path, ": ", e.what());
  }
}

}  // namespace skv::tokenizer
