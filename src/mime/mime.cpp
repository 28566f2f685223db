#include "mime/mime.hpp"

#include <gmime/gmime.h>

#include <algorithm>
#include <memory>
#include <mutex>
#include <vector>

#include "core/text.hpp"

namespace bridgehead::mime {

namespace {

constexpr std::size_t kMaxEncodedWord = 75;  // RFC 2047 2
constexpr std::size_t kMaxParameterLine = 76;
constexpr std::size_t kParameterPiece = 60;  // RFC 2231 continuation size
constexpr char kHex[] = "0123456789ABCDEF";

struct GFree {
  void operator()(gpointer p) const { g_free(p); }
};

bool is_wsp(char c) { return c == ' ' || c == '\t'; }

// The characters a Q-encoded word may carry as they are in every context, a phrase being the
// strictest (RFC 2047 5(3)); everything else becomes =XX, space becomes _. GMime has a Q
// encoder only inside the header encoders rejected below.
bool q_plain(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '!' || c == '*' ||
         c == '+' || c == '-' || c == '/';
}

std::size_t q_length(unsigned char c) { return (q_plain(c) || c == ' ') ? 1 : 3; }

void append_q(std::string& out, unsigned char c) {
  if (q_plain(c)) {
    out += static_cast<char>(c);
  } else if (c == ' ') {
    out += '_';
  } else {
    out += '=';
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
}

bool attribute_char(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         std::string_view("!#$&+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
}

}  // namespace

void init_gmime() {
  static std::once_flag once;
  std::call_once(once, [] { g_mime_init(); });
}

std::string base64_encode(std::string_view bytes, std::size_t line_length) {
  const std::unique_ptr<gchar, GFree> encoded(
      g_base64_encode(reinterpret_cast<const guchar*>(bytes.data()), bytes.size()));
  const std::string_view all(encoded.get());
  if (line_length == 0) return std::string(all);
  std::string out;
  out.reserve(all.size() + all.size() / line_length * 2 + 2);
  for (std::size_t i = 0; i < all.size(); i += line_length) {
    out += all.substr(i, line_length);
    out += "\r\n";
  }
  return out;
}

std::string qp_encode(std::string_view text) {
  init_gmime();
  // GMime's encoder takes LF as the line end (a CR before it would become =0D).
  std::string lf;
  lf.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (!(text[i] == '\r' && i + 1 < text.size() && text[i + 1] == '\n')) lf += text[i];
  }
  std::string encoded(GMIME_QP_ENCODE_LEN(lf.size()), '\0');
  int state = -1;
  guint32 save = 0;
  encoded.resize(g_mime_encoding_quoted_encode_close(reinterpret_cast<const unsigned char*>(lf.data()), lf.size(),
                                                     reinterpret_cast<unsigned char*>(encoded.data()), &state, &save));
  std::string out;
  out.reserve(encoded.size() + encoded.size() / 32);
  for (char c : encoded) {
    if (c == '\n') out += '\r';
    out += c;
  }
  return out;
}

// Not g_mime_utils_header_encode_text: it picks the charset itself (UTF-8 text that fits is
// converted to ISO-8859-1), so it cannot label octets of an unknown charset, and it encodes a
// whole value, regrouping the words and whitespace a downgrade must leave as they were.
std::string encode_header_words(std::string_view text, std::string_view charset) {
  std::size_t q_total = 0;
  for (unsigned char c : text) q_total += q_length(c);
  const bool base64 = (text.size() + 2) / 3 * 4 * 5 < q_total * 4;  // Q unless B is 20% shorter
  const bool utf8 = iequals(charset, "utf-8");
  const std::size_t room = kMaxEncodedWord - (charset.size() + 7);  // =?charset?Q?...?=

  std::string out;
  std::size_t i = 0;
  while (i < text.size()) {
    std::size_t end = i;
    std::size_t used = 0;
    while (end < text.size()) {
      const std::size_t n = utf8 ? std::max<std::size_t>(1, utf8_sequence_length(text, end)) : 1;
      std::size_t next = 0;
      if (base64) {
        next = (end + n - i + 2) / 3 * 4;
      } else {
        next = used;
        for (std::size_t k = end; k < end + n; ++k) next += q_length(static_cast<unsigned char>(text[k]));
      }
      if (next > room && end > i) break;
      used = next;
      end += n;
    }
    if (!out.empty()) out += ' ';
    out += "=?";
    out += charset;
    out += base64 ? "?B?" : "?Q?";
    if (base64) {
      out += base64_encode(text.substr(i, end - i));
    } else {
      for (std::size_t k = i; k < end; ++k) append_q(out, static_cast<unsigned char>(text[k]));
    }
    out += "?=";
    i = end;
  }
  return out;
}

bool is_encoded_word(std::string_view word) {
  if (word.size() < 8 || word.substr(0, 2) != "=?" || word.substr(word.size() - 2) != "?=") return false;
  const auto inner = word.substr(2, word.size() - 4);
  const auto q1 = inner.find('?');
  if (q1 == std::string_view::npos || q1 == 0) return false;
  const auto q2 = inner.find('?', q1 + 1);
  return q2 == q1 + 2;
}

// Not g_mime_param_list_encode: it converts the value to a charset of its choosing (ISO-8859-1
// where that fits), which cannot carry octets of an unknown charset, and it writes the whole
// parameter list anew, where a downgrade changes only the 8-bit parameter.
std::string encode_param(std::string_view name, std::string_view value, std::string_view charset) {
  std::vector<std::string> atoms;  // one per octet, never split
  for (unsigned char c : value) {
    if (attribute_char(c)) {
      atoms.emplace_back(1, static_cast<char>(c));
    } else {
      atoms.push_back({'%', kHex[c >> 4], kHex[c & 15]});
    }
  }
  std::string encoded;
  for (const auto& a : atoms) encoded += a;
  std::string out(name);
  if (name.size() + charset.size() + encoded.size() + 4 <= kMaxParameterLine) {
    return out + "*=" + std::string(charset) + "''" + encoded;
  }
  out.clear();
  std::size_t piece = 0;
  for (std::size_t a = 0; a < atoms.size();) {
    std::string chunk;
    while (a < atoms.size() && chunk.size() + atoms[a].size() <= kParameterPiece) chunk += atoms[a++];
    if (piece > 0) out += ";\r\n ";
    out += std::string(name) + "*" + std::to_string(piece) + "*=";
    if (piece == 0) out += std::string(charset) + "''";
    out += chunk;
    ++piece;
  }
  return out;
}

// Not g_mime_utils_unstructured_header_fold: it drops the whitespace after the colon and
// refolds folds that are there, where every octet of the value must stay where it was.
std::string fold_header(std::size_t column, std::string_view value, std::size_t width) {
  std::string out;
  std::size_t start = 0;
  bool first_line = true;
  while (start <= value.size()) {
    std::size_t end = value.find('\n', start);
    if (end == std::string_view::npos) end = value.size();
    std::string_view line = value.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (!first_line) {
      out += "\r\n";
      column = 0;
    }
    bool content_before = first_line;
    while (column + line.size() > width) {
      const auto last = line.find_last_not_of(" \t");
      std::size_t best = std::string_view::npos;
      bool seen = content_before;
      for (std::size_t p = 0; last != std::string_view::npos && p < last; ++p) {
        if (!is_wsp(line[p])) {
          seen = true;
          continue;
        }
        if (!seen || (p > 0 && is_wsp(line[p - 1]))) continue;
        if (column + p <= width || best == std::string_view::npos) best = p;
        if (column + p > width) break;
      }
      if (best == std::string_view::npos || (best == 0 && column == 0)) break;
      out += line.substr(0, best);
      out += "\r\n";
      line.remove_prefix(best);
      column = 0;
      content_before = false;
    }
    out += line;
    column += line.size();
    first_line = false;
    start = end + 1;
  }
  return out;
}

}  // namespace bridgehead::mime
