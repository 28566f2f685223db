#include "smtp/client/wire_encoding.hpp"

#include <algorithm>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

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

namespace {

// The first LF at a position k >= 1 of `text` that the stuffer must act on: one not
// preceded by CR (it becomes CRLF) or followed, within `text`, by a dot (stuffed). text.size()
// when there is none. What lies before it goes out with one append: on large messages
// the per-line search (memchr and an append per line) was the largest user-space share of
// the sending side's CPU, while real content almost never needs either change.
std::size_t find_stuffing_point(std::string_view text) {
  const char* p = text.data();
  const std::size_t n = text.size();
  std::size_t k = 1;
#if defined(__SSE2__)
  const __m128i lf = _mm_set1_epi8('\n');
  const __m128i cr = _mm_set1_epi8('\r');
  const __m128i dot = _mm_set1_epi8('.');
  for (; k + 17 <= n; k += 16) {  // reads p[k - 1] .. p[k + 16]
    const __m128i at = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + k));
    const __m128i before = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + k - 1));
    const __m128i after = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + k + 1));
    const __m128i is_lf = _mm_cmpeq_epi8(at, lf);
    const __m128i bare = _mm_andnot_si128(_mm_cmpeq_epi8(before, cr), is_lf);
    const __m128i dotted = _mm_and_si128(_mm_cmpeq_epi8(after, dot), is_lf);
    const int hits = _mm_movemask_epi8(_mm_or_si128(bare, dotted));
    if (hits != 0) return k + static_cast<std::size_t>(__builtin_ctz(static_cast<unsigned>(hits)));
  }
#endif
  for (; k < n; ++k) {
    if (p[k] == '\n' && (p[k - 1] != '\r' || (k + 1 < n && p[k + 1] == '.'))) return k;
  }
  return n;
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
