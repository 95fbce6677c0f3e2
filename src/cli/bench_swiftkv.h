#pragma once
#include "cli/args.h"

namespace skv::cli {

// `swiftkv bench --swiftkv-compare`: baseline (teacher path) vs SwiftKV variants on the same
// prompts, with counted FLOPs next to measured prefill time and decode speed.
int bench_swiftkv_compare(const Args& args);

}  // namespace skv::cli
