#include "tokenizer/byte_level.h"

#include <array>
#include <cstdint>

#include "tokenizer/utf8.h"

namespace skv::tokenizer::byte_level {
namespace {

struct Tables {
  std::array<std::string, 256> byte_to_utf8;
  std::array<int16_t, 512> cp_to_byte;  // every mapped code point is < 324
  Tables() {
    cp_to_byte.fill(-1);
    uint32_t next = 256;
    for (uint32_t b = 0; b < 256; ++b) {
      // Printable Latin-1 maps to itself; the rest is shifted to 256, 257, ... in byte order.
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      const uint32_t cp = printable ? b : next++;
      utf8::append_codepoint(byte_to_utf8[b], cp);
      cp_to_byte[cp] = static_cast<int16_t>(b);
    }
  }
};

const Tables& tables() {
  static const Tables t;
  return t;
}

}  // namespace

void encode(std::string_view bytes, std::string& out) {
  const auto& t = tables();
  for (unsigned char c : bytes) out += t.byte_to_utf8[c];
}

bool decode(std::string_view mapped, std::string& out) {
  const auto& t = tables();
  for (size_t i = 0; i < mapped.size();) {
    const auto c0 = static_cast<uint8_t>(mapped[i]);
    uint32_t cp;
    if (c0 < 0x80) {
      cp = c0, i += 1;
    } else if ((c0 & 0xE0) == 0xC0 && i + 1 < mapped.size() && (static_cast<uint8_t>(mapped[i + 1]) & 0xC0) == 0x80) {
      // Mapped characters are all below U+0800, i.e. two bytes at most.
      cp = ((c0 & 0x1Fu) << 6) | (static_cast<uint8_t>(mapped[i + 1]) & 0x3Fu), i += 2;
    } else {
      return false;
    }
    if (cp >= t.cp_to_byte.size() || t.cp_to_byte[cp] < 0) return false;
    out += static_cast<char>(t.cp_to_byte[cp]);
  }
  return true;
}

}  // namespace skv::tokenizer::byte_level
