#pragma once
// lm-eval's `wikitext` task on wikitext-2-raw-v1: the raw file split into documents the way
// EleutherAI/wikitext_document_level does, and lm-eval's wikitext_detokenizer applied to each
// document before it is scored (lm_eval/tasks/wikitext/preprocess_wikitext.py).
#include <string>
#include <string_view>
#include <vector>

namespace skv::eval {

// A new document starts at each top-level heading line " = Title = " (after "= = =" and "= ="
// are collapsed, so " = = Section = = " lines stay inside their document). Lines are joined
// with "\n"; empty documents before a heading are dropped, the last one is always kept.
std::vector<std::string> wikitext_documents(std::string_view raw);

std::string wikitext_detokenize(const std::string& page);

}  // namespace skv::eval
