#include "smtp/client/wire_encoding.hpp"

#include <algorithm>
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

std::size_t message_size(std::string_view content) {
  if (content.empty() || content.back() == '\n') return content.size();
  return content.size() + 2;
}

void append_dot_stuffed(std::string_view content, std::string& out) {
  DotStuffer stuffer;
  stuffer.append(content, out);
  stuffer.finish(out);
}

void DotStuffer::append(std::string_view piece, std::string& out) {
  // Whole lines are copied with one append each; the state carried between pieces is
  // whether the next octet starts a line and whether the last one was a CR, which is all
  // a "\r\n." split anywhere across pieces needs.
  // Grown geometrically: pieces are appended one after another into one write buffer.
  const std::size_t need = out.size() + piece.size() + piece.size() / 256 + 8;
  if (out.capacity() < need) out.reserve(std::max(need, 2 * out.capacity()));
  const char* data = piece.data();
  std::size_t i = 0;
  while (i < piece.size()) {
    if (at_line_start_ && data[i] == '.') out += '.';
    const void* hit = std::memchr(data + i, '\n', piece.size() - i);
    if (hit == nullptr) {
      out.append(data + i, piece.size() - i);
      last_cr_ = data[piece.size() - 1] == '\r';
      at_line_start_ = false;
      return;
    }
    const std::size_t nl = static_cast<std::size_t>(static_cast<const char*>(hit) - data);
    const bool cr_before = nl > i ? data[nl - 1] == '\r' : last_cr_;
    if (cr_before) {
      out.append(data + i, nl + 1 - i);
    } else {
      out.append(data + i, nl - i);
      out += "\r\n";
    }
    at_line_start_ = true;
    last_cr_ = false;
    i = nl + 1;
  }
}

void DotStuffer::finish(std::string& out) {
  if (!at_line_start_) out += "\r\n";
  out += ".\r\n";
  at_line_start_ = true;
  last_cr_ = false;
}

}  // namespace bridgehead::smtp::client
