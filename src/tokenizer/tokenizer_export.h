#pragma once
// GGUF tokenizer metadata -> the Hugging Face tokenizer files, so a GGUF model converted to an
// HF directory keeps a tokenizer that encodes exactly like Tokenizer::from_gguf.
#include <map>
#include <string>

namespace skv::io {
class GGUFFile;
}
namespace skv::tokenizer {

// {"tokenizer.json": ..., "tokenizer_config.json": ...} for a byte-level BPE ("gpt2") GGUF:
// vocab + merges, control / user-defined tokens as added tokens, the pre-tokenizer that
// `tokenizer.ggml.pre` names, BOS / EOS added per tokenizer.ggml.add_bos_token /
// add_eos_token, a ByteLevel decoder; the config carries the special tokens and the chat
// template. Throws skv::Error naming the file for metadata swiftkv cannot express.
std::map<std::string, std::string> hf_tokenizer_files_from_gguf(const io::GGUFFile& gguf);

}  // namespace skv::tokenizer
