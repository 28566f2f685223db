#include "smtp/client/wire_encoding.hpp"

#include <cstring>

#include "core/envelope.hpp"

namespace bridgehead::smtp::client {

std::string xtext_encode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < '!' || c > '~' || c == '+' || c == '=') {
      out += '+';
      out += kHex[c >> 4];
      out += kHex[c & 0xF];
    } else {
      out += ch;
    }
  }
  return out;
}

std::string orcpt_param(std::string_view orcpt) {
  const auto semi = orcpt.find(';');
  if (semi == std::string_view::npos || semi == 0) return {};
  std::string out(orcpt.substr(0, semi + 1));
  out += xtext_encode(orcpt.substr(semi + 1));
  return out;
}

std::string notify_param(std::uint8_t flags) {
  if (flags & kNotifyNever) return "NEVER";
  std::string out;
  auto add = [&out](const char* word) {
    if (!out.empty()) out += ',';
    out += word;
  };
  if (flags & kNotifySuccess) add("SUCCESS");
  if (flags & kNotifyFailure) add("FAILURE");
  if (flags & kNotifyDelay) add("DELAY");
  return out;
}

bool has_8bit(std::string_view content) {
  unsigned char any = 0;
  for (char c : content) any |= static_cast<unsigned char>(c);
  return (any & 0x80) != 0;
}

std::size_t message_size(std::string_view content) {
  if (content.empty() || content.back() == '\n') return content.size();
  return content.size() + 2;
}

void append_dot_stuffed(std::string_view content, std::string& out) {
  // Whole lines are copied with one append each; a 4 KB message is some sixty memcpys
  // into a buffer reserved once.
  out.reserve(out.size() + content.size() + content.size() / 256 + 8);
  std::size_t i = 0;
  const char* data = content.data();
  while (i < content.size()) {
    if (data[i] == '.') out += '.';
    const void* hit = std::memchr(data + i, '\n', content.size() - i);
    if (hit == nullptr) {
      out.append(data + i, content.size() - i);
      out += "\r\n";
      break;
    }
    const std::size_t nl = static_cast<std::size_t>(static_cast<const char*>(hit) - data);
    if (nl > i && data[nl - 1] == '\r') {
      out.append(data + i, nl + 1 - i);
    } else {
      out.append(data + i, nl - i);
      out += "\r\n";
    }
    i = nl + 1;
  }
  out += ".\r\n";
}

}  // namespace bridgehead::smtp::client
