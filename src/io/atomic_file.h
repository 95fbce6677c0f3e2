#pragma once
// Writing a file so that a crash at any moment leaves either the old file or the complete new
// one: a temporary file in the same directory, fsync, rename over the target, then fsync of the
// directory (best effort: a failure there loses durability, not data).
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

namespace skv::io {

// The file's bytes are the parts, in order, written straight from where they are (no copy).
// Throws skv::Error naming the path; the temporary file is removed on failure.
void write_file_atomic(const std::string& path, const std::vector<std::pair<const void*, size_t>>& parts);
void write_file_atomic(const std::string& path, const std::string& bytes);

// Removes the temporary files (PATH.tmp.XXXXXX) a writer killed mid-way left next to PATH, for
// a program that resumes from PATH; returns how many. Only call it when no other process can be
// writing PATH.
int remove_stale_temporaries(const std::string& path);

}  // namespace skv::io
