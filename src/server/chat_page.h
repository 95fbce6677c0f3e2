#pragma once
// The chat page `swiftkv serve` answers at `/`: plain HTML, CSS and JavaScript compiled into the
// binary, so serving it reads no files.
namespace skv::server {

const char* chat_page_html();

}  // namespace skv::server
