#pragma once
// The one way to read a whole (small) file: data sets, prompts, JSON, templates, checkpoints.
#include <string>
#include <string_view>

namespace skv::io {

// The file's bytes. Throws skv::Error (invalid input) reading
//   cannot open <what> '<path>': <errno reason>   (or "cannot read ...")
// with the path quoted and, if very long, shortened, so the message stays one line.
// Anything readable works, a pipe such as /dev/stdin included.
std::string read_file(const std::string& path, std::string_view what = "file");

}  // namespace skv::io
