#include "smtp/client/wire_encoding.hpp"

#include <algorithm>
#include <cstring>

#include "core/envelope.hpp"
#include "core/octet_scan.hpp"

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

namespace {

// The first LF at a position k >= 1 of `text` that the stuffer must act on: one not
// preceded by CR (it becomes CRLF) or followed, within `text`, by a dot (stuffed). text.size()
// when there is none. What lies before it goes out with one append: on large messages
// the per-line search (memchr and an append per line) was the largest user-space share of
// the sending side's CPU, while real content almost never needs either change.
std::size_t find_stuffing_point(std::string_view text) {
  const char* p = text.data();
  const std::size_t n = text.size();
  // Starts at 1 so a block may look one octet back (the CR) and, with reach 1, one ahead (the dot).
  return find_first(
      1, n, 1,
      [p](std::size_t k) {
        const unsigned lf = match16(p + k, '\n');
        return (lf & ~match16(p + k - 1, '\r')) | (lf & match16(p + k + 1, '.'));
      },
      [p, n](std::size_t k) { return p[k] == '\n' && (p[k - 1] != '\r' || (k + 1 < n && p[k + 1] == '.')); });
}

}  // namespace

void DotStuffer::append(std::string_view piece, std::string& out) {
  // The state carried between pieces is whether the next octet starts a line and whether
  // the last one was a CR, which is all a "\r\n." split anywhere across pieces needs.
  // Grown geometrically: pieces are appended one after another into one write buffer.
  const std::size_t need = out.size() + piece.size() + piece.size() / 256 + 8;
  if (out.capacity() < need) out.reserve(std::max(need, 2 * out.capacity()));
  const char* data = piece.data();
  std::size_t i = 0;
  while (i < piece.size()) {
    if (at_line_start_ && data[i] == '.') out += '.';
    if (data[i] != '\n') {
      // Up to the next LF that needs a change (the one at i, if any, is the slow path's:
      // whether a CR precedes it lies in the previous piece).
      const std::size_t k = i + find_stuffing_point(piece.substr(i));
      out.append(data + i, k - i);
      last_cr_ = data[k - 1] == '\r';
      at_line_start_ = data[k - 1] == '\n';
      i = k;
      continue;
    }
    // An LF at i: CRLF if a CR came before it, else a bare LF made CRLF.
    if (last_cr_) {
      out += '\n';
    } else {
      out += "\r\n";
    }
    at_line_start_ = true;
    last_cr_ = false;
    ++i;
  }
}

void DotStuffer::finish(std::string& out) {
  if (!at_line_start_) out += "\r\n";
  out += ".\r\n";
  at_line_start_ = true;
  last_cr_ = false;
}

}  // namespace bridgehead::smtp::client
