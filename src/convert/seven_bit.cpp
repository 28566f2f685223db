#include "convert/seven_bit.hpp"

#include <gmime/gmime.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <vector>

#include "core/text.hpp"
#include "mime/mime.hpp"

namespace bridgehead::convert {

bool has_8bit(std::string_view message) {
  return bridgehead::has_8bit(message) || message.find('\0') != std::string_view::npos;
}

namespace {

constexpr int kMaxDepth = 32;                // multiparts and message/rfc822 inside each other
constexpr std::size_t kMaxLineLength = 998;  // RFC 5322 2.1.1, without the CRLF
constexpr const char* kUtf8 = "utf-8";
constexpr const char* kUnknown8bit = "unknown-8bit";  // RFC 1428: 8-bit text, charset unknown

Error not_possible(std::string reason, ErrorCode code = ErrorCode::kInvalidArgument) {
  return Error::permanent(code, "conversion to 7-bit not possible: " + reason,
                          "relay through a host that supports 8BITMIME, or have the sender MIME-encode the message");
}

struct GObjectUnref {
  void operator()(gpointer p) const { g_object_unref(p); }
};
template <typename T>
using GObjectPtr = std::unique_ptr<T, GObjectUnref>;

struct FormatOptionsFree {
  void operator()(GMimeFormatOptions* p) const { g_mime_format_options_free(p); }
};
struct ParserOptionsFree {
  void operator()(GMimeParserOptions* p) const { g_mime_parser_options_free(p); }
};

// What GMime's parser reported that would make its result mean something else than the
// input: it drops a header line it cannot read, and gives up below its nesting limit.
struct ParserTrouble {
  std::optional<Error> error;
};

void on_parser_warning(gint64 /*offset*/, GMimeParserWarning code, const gchar* /*item*/, gpointer data) {
  auto* trouble = static_cast<ParserTrouble*>(data);
  if (trouble->error) return;
  switch (code) {
    case GMIME_CRIT_INVALID_HEADER_NAME:
      trouble->error = not_possible("a header line is malformed (no field name and colon)", ErrorCode::kParse);
      break;
    case GMIME_CRIT_NESTING_OVERFLOW:
      trouble->error = not_possible("MIME parts nested too deep", ErrorCode::kLimit);
      break;
    case GMIME_CRIT_PART_WITHOUT_HEADERS_OR_CONTENT:
      trouble->error = not_possible("a MIME part has neither headers nor content", ErrorCode::kParse);
      break;
    default:
      break;  // duplicates, conflicts and truncation leave the bytes where they were
  }
}

// ---- bytes -------------------------------------------------------------------------------

bool is_fws(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }
constexpr std::string_view kFws = " \t\r\n";

const char* charset_for(std::string_view text) { return is_valid_utf8(text) ? kUtf8 : kUnknown8bit; }

std::size_t longest_line(std::string_view s) {
  std::size_t longest = 0;
  std::size_t start = 0;
  while (start <= s.size()) {
    std::size_t end = s.find('\n', start);
    if (end == std::string_view::npos) end = s.size();
    std::size_t len = end - start;
    if (len > 0 && end < s.size() && s[end - 1] == '\r') --len;
    longest = std::max(longest, len);
    start = end + 1;
  }
  return longest;
}

/// Every LF gets its CR: GMime drops the CR of CRLF in a multipart's preamble and
/// epilogue, and bare LF input is tolerated.
std::string crlf_lines(std::string_view s) {
  std::string out;
  out.reserve(s.size() + s.size() / 64);
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r')) out += '\r';
    out += s[i];
  }
  return out;
}

std::string unfold(std::string_view ws) {
  std::string out;
  for (char c : ws) {
    if (c != '\r' && c != '\n') out += c;
  }
  return out;
}

std::string stream_bytes(GMimeStream* stream) {
  GByteArray* a = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(stream));
  return a ? std::string(reinterpret_cast<const char*>(a->data), a->len) : std::string();
}

/// The content of `part` as it is on the wire (still transfer-encoded) or decoded.
std::string part_content(GMimePart* part, bool decoded) {
  GMimeDataWrapper* wrapper = g_mime_part_get_content(part);
  if (wrapper == nullptr) return {};
  GObjectPtr<GMimeStream> mem(g_mime_stream_mem_new());
  if (decoded) {
    g_mime_data_wrapper_write_to_stream(wrapper, mem.get());
  } else if (GMimeStream* raw = g_mime_data_wrapper_get_stream(wrapper)) {
    g_mime_stream_reset(raw);
    g_mime_stream_write_to_stream(raw, mem.get());
    g_mime_stream_reset(raw);
  }
  return stream_bytes(mem.get());
}

// ---- RFC 2047 encoded-words --------------------------------------------------------------

// A header value cut into what encoded-words may replace. Words that are 8-bit become
// encoded-words; runs of them are encoded together, with the whitespace between them,
// because a decoder drops whitespace between adjacent encoded-words. For the same reason
// the whitespace between a new encoded-word and an encoded-word already there is moved into
// the new one.
struct Item {
  enum Kind { kWord, kSpace, kBarrier } kind;
  std::string raw;   ///< as it is in the header
  std::string text;  ///< what it means (quoted-string unquoted, quoted-pair unescaped)
  bool needs = false;
  bool encoded_word = false;
};

std::string encode_items(const std::vector<Item>& items, std::string_view charset) {
  std::string out;
  const auto word_at = [&](std::size_t k, bool encoded) {
    return k < items.size() && items[k].kind == Item::kWord && (encoded ? items[k].encoded_word : items[k].needs);
  };
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (items[i].kind != Item::kWord || !items[i].needs) {
      out += items[i].raw;
      continue;
    }
    std::string text;
    if (i >= 2 && items[i - 1].kind == Item::kSpace && word_at(i - 2, true)) text += unfold(items[i - 1].raw);
    text += items[i].text;
    std::size_t j = i;
    while (j + 2 < items.size() && items[j + 1].kind == Item::kSpace && word_at(j + 2, false)) {
      text += unfold(items[j + 1].raw);
      text += items[j + 2].text;
      j += 2;
    }
    if (j + 2 < items.size() && items[j + 1].kind == Item::kSpace && word_at(j + 2, true)) {
      text += unfold(items[j + 1].raw);
    }
    out += mime::encode_header_words(text, charset);
    i = j;
  }
  return out;
}

std::string unescape_quoted_pairs(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size()) ++i;
    out += s[i];
  }
  return out;
}

/// Unstructured text (Subject, Comments, extension fields): words are what lies between
/// whitespace.
std::string encode_text(std::string_view value, std::string_view charset) {
  std::vector<Item> items;
  for (std::size_t i = 0; i < value.size();) {
    std::size_t j = i;
    const bool space = is_fws(value[i]);
    while (j < value.size() && is_fws(value[j]) == space) ++j;
    const auto piece = value.substr(i, j - i);
    if (space) {
      items.push_back({Item::kSpace, std::string(piece), {}, false, false});
    } else {
      items.push_back(
          {Item::kWord, std::string(piece), std::string(piece), has_8bit(piece), mime::is_encoded_word(piece)});
    }
    i = j;
  }
  return encode_items(items, charset);
}

// ---- structured headers ------------------------------------------------------------------

enum class Tok { kSpace, kAtom, kQuoted, kComment, kLiteral, kSpecial };
struct Token {
  Tok type;
  std::string_view text;
  bool closed = true;  ///< a quoted-string, comment or domain literal has its closing character
};

std::size_t skip_delimited(std::string_view s, std::size_t i, char close, bool& closed) {
  for (++i; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size()) {
      ++i;
    } else if (s[i] == close) {
      closed = true;
      return i + 1;
    }
  }
  closed = false;
  return i;
}

std::vector<Token> tokenize(std::string_view s, std::string_view specials) {
  std::vector<Token> out;
  for (std::size_t i = 0; i < s.size();) {
    std::size_t j = i;
    bool closed = true;
    Tok type = Tok::kAtom;
    const char c = s[i];
    if (is_fws(c)) {
      type = Tok::kSpace;
      while (j < s.size() && is_fws(s[j])) ++j;
    } else if (c == '"') {
      type = Tok::kQuoted;
      j = skip_delimited(s, i, '"', closed);
    } else if (c == '[') {
      type = Tok::kLiteral;
      j = skip_delimited(s, i, ']', closed);
    } else if (c == '(') {
      type = Tok::kComment;
      int depth = 0;
      closed = false;
      for (; j < s.size(); ++j) {
        if (s[j] == '\\' && j + 1 < s.size()) {
          ++j;
        } else if (s[j] == '(') {
          ++depth;
        } else if (s[j] == ')' && --depth == 0) {
          closed = true;
          ++j;
          break;
        }
      }
    } else if (specials.find(c) != std::string_view::npos) {
      type = Tok::kSpecial;
      j = i + 1;
    } else {
      while (j < s.size() && !is_fws(s[j]) && s[j] != '"' && s[j] != '(' && s[j] != '[' &&
             specials.find(s[j]) == std::string_view::npos) {
        ++j;
      }
    }
    out.push_back({type, s.substr(i, j - i), closed});
    i = j;
  }
  return out;
}

/// A comment: encoded-words may stand for its words (RFC 2047 5(1)); nested comments and
/// the parentheses stay.
Expected<std::string> encode_comment(const Token& t, std::string_view charset, std::string_view header) {
  if (!has_8bit(t.text)) return std::string(t.text);
  if (!t.closed) return fail(not_possible("unbalanced comment in the " + std::string(header) + " header"));
  const auto inner = t.text.substr(1, t.text.size() - 2);
  std::vector<Item> items;
  for (std::size_t i = 0; i < inner.size();) {
    std::size_t j = i;
    if (inner[i] == '(' || inner[i] == ')') {
      items.push_back({Item::kBarrier, std::string(1, inner[i]), {}, false, false});
      ++i;
      continue;
    }
    if (is_fws(inner[i])) {
      while (j < inner.size() && is_fws(inner[j])) ++j;
      items.push_back({Item::kSpace, std::string(inner.substr(i, j - i)), {}, false, false});
    } else {
      while (j < inner.size() && !is_fws(inner[j]) && inner[j] != '(' && inner[j] != ')') {
        if (inner[j] == '\\' && j + 1 < inner.size()) ++j;
        ++j;
      }
      const auto word = inner.substr(i, j - i);
      items.push_back(
          {Item::kWord, std::string(word), unescape_quoted_pairs(word), has_8bit(word), mime::is_encoded_word(word)});
    }
    i = j;
  }
  return "(" + encode_items(items, charset) + ")";
}

/// A display name or group name: atoms and quoted-strings that touch form one word.
Expected<std::string> encode_phrase(const std::vector<Token>& tokens, std::size_t begin, std::size_t end,
                                    std::string_view charset, std::string_view header) {
  std::vector<Item> items;
  for (std::size_t i = begin; i < end; ++i) {
    const Token& t = tokens[i];
    if (t.type == Tok::kSpace) {
      items.push_back({Item::kSpace, std::string(t.text), {}, false, false});
    } else if (t.type == Tok::kComment) {
      auto c = encode_comment(t, charset, header);
      if (!c) return fail(c.error());
      items.push_back({Item::kBarrier, std::move(*c), {}, false, false});
    } else {
      const bool joins = !items.empty() && items.back().kind == Item::kWord;
      if (!joins) items.push_back({Item::kWord, {}, {}, false, true});
      Item& w = items.back();
      if (joins) w.encoded_word = false;  // a word made of several tokens is no encoded-word
      w.raw += t.text;
      if (t.type == Tok::kQuoted) {
        auto body = t.text.substr(1, t.text.size() - (t.closed ? 2 : 1));
        w.text += unescape_quoted_pairs(body);
        w.encoded_word = false;
      } else {
        w.text += t.text;
        w.encoded_word = w.encoded_word && t.type == Tok::kAtom && mime::is_encoded_word(t.text);
      }
      w.needs = w.needs || has_8bit(t.text);
    }
  }
  return encode_items(items, charset);
}

/// An address list (From, To, …): 8-bit display names, group names and comments become
/// encoded-words; an 8-bit addr-spec cannot be made 7-bit.
Expected<std::string> encode_address_list(std::string_view value, std::string_view charset, std::string_view header) {
  const auto tokens = tokenize(value, "<>,:;@.");
  std::string out;
  std::size_t begin = 0;
  bool in_angle = false;
  for (std::size_t i = 0; i <= tokens.size(); ++i) {
    if (i < tokens.size()) {
      const Token& t = tokens[i];
      if (t.type != Tok::kSpecial) continue;
      const char c = t.text[0];
      if (c == '<') in_angle = true;
      if (c == '>') in_angle = false;
      if (in_angle || (c != ',' && c != ';' && c != ':')) continue;
    }
    // One mailbox, or a group's name when it ends with ':'.
    std::size_t phrase_end = begin;
    for (std::size_t k = begin; k < i; ++k) {
      if (tokens[k].type == Tok::kSpecial && tokens[k].text[0] == '<') {
        phrase_end = k;
        break;
      }
    }
    if (phrase_end == begin && i < tokens.size() && tokens[i].text[0] == ':') phrase_end = i;
    auto phrase = encode_phrase(tokens, begin, phrase_end, charset, header);
    if (!phrase) return fail(phrase.error());
    out += *phrase;
    for (std::size_t k = phrase_end; k < i; ++k) {
      if (tokens[k].type == Tok::kComment) {
        auto c = encode_comment(tokens[k], charset, header);
        if (!c) return fail(c.error());
        out += *c;
      } else if (has_8bit(tokens[k].text)) {
        return fail(not_possible("the " + std::string(header) +
                                 " header has an address with 8-bit characters (the next hop would need SMTPUTF8)"));
      } else {
        out += tokens[k].text;
      }
    }
    if (i < tokens.size()) out += tokens[i].text;
    begin = i + 1;
  }
  return out;
}

/// Content-Type and Content-Disposition: an 8-bit parameter value becomes RFC 2231
/// encoded; the rest of the header stays as it is.
Expected<std::string> encode_mime_parameters(std::string_view value, std::string_view charset,
                                             std::string_view header) {
  const auto tokens = tokenize(value, ";=/");
  const auto cannot = [&](std::string why) {
    return fail(not_possible("the " + std::string(header) + " header " + why));
  };
  std::string out;
  std::size_t begin = 0;
  bool first = true;
  for (std::size_t i = 0; i <= tokens.size(); ++i) {
    if (i < tokens.size() && !(tokens[i].type == Tok::kSpecial && tokens[i].text[0] == ';')) continue;
    bool eight = false;
    for (std::size_t k = begin; k < i; ++k) eight = eight || has_8bit(tokens[k].text);
    if (!eight) {
      for (std::size_t k = begin; k < i; ++k) out += tokens[k].text;
    } else if (first) {
      return cannot("has an 8-bit media type");
    } else {
      // [CFWS] attribute [CFWS] "=" [CFWS] value [CFWS]
      std::size_t k = begin;
      while (k < i && tokens[k].type == Tok::kSpace) out += tokens[k++].text;
      const std::size_t name_at = k;
      if (k == i || tokens[k].type != Tok::kAtom || has_8bit(tokens[k].text) ||
          tokens[k].text.find('*') != std::string_view::npos) {
        return cannot("has an 8-bit parameter that is not name=value");
      }
      // The delimiter lines must match it octet for octet; it cannot change encoding.
      if (iequals(tokens[k].text, "boundary")) return cannot("has an 8-bit boundary");
      ++k;
      while (k < i && tokens[k].type == Tok::kSpace) ++k;
      if (k == i || tokens[k].type != Tok::kSpecial || tokens[k].text[0] != '=') {
        return cannot("has an 8-bit parameter that is not name=value");
      }
      ++k;
      while (k < i && tokens[k].type == Tok::kSpace) ++k;
      std::string text;
      for (; k < i && tokens[k].type != Tok::kSpace; ++k) {
        const Token& t = tokens[k];
        if (t.type == Tok::kQuoted) {
          text += unescape_quoted_pairs(t.text.substr(1, t.text.size() - (t.closed ? 2 : 1)));
        } else if (t.type == Tok::kAtom || t.type == Tok::kSpecial) {
          text += t.text;
        } else {
          return cannot("has an 8-bit parameter that is not name=value");
        }
      }
      for (std::size_t rest = k; rest < i; ++rest) {
        if (tokens[rest].type != Tok::kSpace) return cannot("has an 8-bit parameter that is not name=value");
      }
      out += mime::encode_param(tokens[name_at].text, text, charset);
      for (; k < i; ++k) out += tokens[k].text;
    }
    if (i < tokens.size()) out += tokens[i].text;
    first = false;
    begin = i + 1;
  }
  return out;
}

/// Sets the charset parameter in a raw Content-Type value, replacing one that is there.
std::string with_charset(std::string_view value, std::string_view charset) {
  const auto tokens = tokenize(value, ";=/");
  std::string out;
  bool replaced = false;
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    if (!replaced && tokens[i].type == Tok::kAtom && iequals(tokens[i].text, "charset")) {
      std::size_t k = i + 1;
      while (k < tokens.size() && tokens[k].type == Tok::kSpace) ++k;
      if (k < tokens.size() && tokens[k].type == Tok::kSpecial && tokens[k].text[0] == '=') {
        ++k;
        while (k < tokens.size() && tokens[k].type == Tok::kSpace) ++k;
        if (k < tokens.size() && (tokens[k].type == Tok::kAtom || tokens[k].type == Tok::kQuoted)) {
          out += "charset=";
          out += charset;
          i = k;
          replaced = true;
          continue;
        }
      }
    }
    out += tokens[i].text;
  }
  if (replaced) return out;
  const auto body = trim(value, kFws);
  const auto body_end = static_cast<std::size_t>(body.data() - value.data()) + body.size();
  out = std::string(value.substr(0, body_end));
  out += (!body.empty() && body.back() == ';') ? " charset=" : "; charset=";
  out += charset;
  out += value.substr(body_end);
  return out;
}

enum class HeaderKind { kText, kAddressList, kMimeParameters, kStructured };

// Header names in lowercase, each between spaces.
constexpr std::string_view kAddressHeaders =  // RFC 5322 3.6.2, 3.6.3, 3.6.6, and common extensions
    " from sender reply-to to cc bcc resent-from resent-sender resent-to resent-cc resent-bcc resent-reply-to"
    " mail-followup-to mail-reply-to disposition-notification-to return-receipt-to errors-to apparently-to ";
constexpr std::string_view kStructuredHeaders =  // where an encoded-word cannot stand for text
    " date resent-date message-id resent-message-id content-id in-reply-to references received return-path"
    " mime-version content-transfer-encoding content-language content-md5 dkim-signature authentication-results"
    " arc-seal arc-message-signature arc-authentication-results ";

HeaderKind kind_of(std::string_view name) {
  std::string key = " ";
  key += to_lower(name);
  key += ' ';
  if (kAddressHeaders.find(key) != std::string_view::npos) return HeaderKind::kAddressList;
  if (key == " content-type " || key == " content-disposition ") return HeaderKind::kMimeParameters;
  if (kStructuredHeaders.find(key) != std::string_view::npos || key.starts_with(" list-")) {
    return HeaderKind::kStructured;
  }
  return HeaderKind::kText;
}

// ---- the MIME tree -----------------------------------------------------------------------

class Downgrader {
 public:
  /// Each returns whether a body below changed (and so the message needs MIME-Version).
  Expected<bool> convert_message(GMimeMessage* message, int depth, bool frozen);

 private:
  Expected<bool> convert_part(GMimeObject* object, int depth, bool frozen);
  Expected<bool> convert_leaf(GMimePart* part, bool frozen);
  Expected<void> convert_headers(GMimeObject* object, bool frozen);
};

constexpr const char* kSignedReason =
    "8-bit content inside multipart/signed (re-encoding it would break the signature)";

Expected<void> Downgrader::convert_headers(GMimeObject* object, bool frozen) {
  GMimeHeaderList* list = g_mime_object_get_header_list(object);
  const int count = g_mime_header_list_get_count(list);
  for (int i = 0; i < count; ++i) {
    GMimeHeader* h = g_mime_header_list_get_header_at(list, i);
    const char* raw_name = g_mime_header_get_raw_name(h);
    const char* raw_value = g_mime_header_get_raw_value(h);
    if (raw_name == nullptr || raw_value == nullptr) continue;
    const std::string_view name(raw_name);
    const std::string_view value(raw_value);
    if (has_8bit(name)) return fail(not_possible("a header name has 8-bit characters"));
    // GMime keeps values as C strings: one cut short by a NUL lost the rest of its line.
    if (!value.empty() && value.back() != '\n') {
      return fail(not_possible("the " + std::string(name) + " header contains a NUL octet", ErrorCode::kParse));
    }
    if (!has_8bit(value)) continue;
    if (frozen) return fail(not_possible(kSignedReason));
    const char* charset = charset_for(value);
    Expected<std::string> encoded = std::string();
    switch (kind_of(name)) {
      case HeaderKind::kText:
        *encoded = encode_text(value, charset);
        break;
      case HeaderKind::kAddressList:
        encoded = encode_address_list(value, charset, name);
        break;
      case HeaderKind::kMimeParameters:
        encoded = encode_mime_parameters(value, charset, name);
        break;
      case HeaderKind::kStructured:
        return fail(not_possible("the " + std::string(name) + " header has 8-bit characters"));
    }
    if (!encoded) return fail(encoded.error());
    std::string folded = mime::fold_header(name.size() + 1, *encoded);
    while (!folded.empty() && (folded.back() == '\n' || folded.back() == '\r')) folded.pop_back();
    folded += "\r\n";
    g_mime_header_set_raw_value(h, folded.c_str());
  }
  return {};
}

/// message/rfc822 and multipart may only be labelled 7bit, 8bit or binary; once what is
/// inside is 7-bit (the conversion fails otherwise), so is the label.
void relabel_7bit(GMimeObject* object) {
  GMimeHeader* h = g_mime_header_list_get_header(g_mime_object_get_header_list(object), "Content-Transfer-Encoding");
  if (h == nullptr || g_mime_header_get_raw_value(h) == nullptr) return;
  const auto value = trim(g_mime_header_get_raw_value(h), kFws);
  if (iequals(value, "8bit") || iequals(value, "binary")) g_mime_header_set_raw_value(h, " 7bit\r\n");
}

Expected<bool> Downgrader::convert_message(GMimeMessage* message, int depth, bool frozen) {
  if (auto h = convert_headers(GMIME_OBJECT(message), frozen); !h) return fail(h.error());
  GMimeObject* body = g_mime_message_get_mime_part(message);
  if (body == nullptr) return false;
  auto changed = convert_part(body, depth + 1, frozen);
  if (!changed) return changed;
  if (*changed && !g_mime_header_list_contains(g_mime_object_get_header_list(GMIME_OBJECT(message)), "MIME-Version")) {
    g_mime_object_append_header(GMIME_OBJECT(message), "MIME-Version", "1.0", nullptr);
  }
  return changed;
}

Expected<bool> Downgrader::convert_part(GMimeObject* object, int depth, bool frozen) {
  if (depth > kMaxDepth) {
    return fail(not_possible("MIME parts nested more than " + std::to_string(kMaxDepth) + " deep", ErrorCode::kLimit));
  }
  if (auto h = convert_headers(object, frozen); !h) return fail(h.error());

  if (GMIME_IS_MESSAGE_PART(object)) {
    GMimeMessage* inner = g_mime_message_part_get_message(GMIME_MESSAGE_PART(object));
    if (inner == nullptr) return false;
    auto changed = convert_message(inner, depth + 1, frozen);
    if (changed && !frozen) relabel_7bit(object);
    return changed;
  }

  if (GMIME_IS_MULTIPART(object)) {
    GMimeMultipart* multipart = GMIME_MULTIPART(object);
    bool changed = false;
    // The preamble and epilogue are to be ignored (RFC 2046 5.1.1); 8-bit ones are dropped.
    const char* prologue = g_mime_multipart_get_prologue(multipart);
    const char* epilogue = g_mime_multipart_get_epilogue(multipart);
    const bool prologue_8bit = prologue != nullptr && has_8bit(prologue);
    const bool epilogue_8bit = epilogue != nullptr && has_8bit(epilogue);
    if (prologue_8bit || epilogue_8bit) {
      if (frozen) return fail(not_possible(kSignedReason));
      // Without a boundary GMime puts the whole body in the preamble: that is content.
      if (g_mime_object_get_content_type_parameter(object, "boundary") == nullptr) {
        return fail(not_possible("8-bit content in a multipart without a boundary parameter", ErrorCode::kParse));
      }
      if (prologue_8bit) g_mime_multipart_set_prologue(multipart, nullptr);
      if (epilogue_8bit) g_mime_multipart_set_epilogue(multipart, nullptr);
      changed = true;
    }
    const bool is_signed = GMIME_IS_MULTIPART_SIGNED(object);
    const int count = g_mime_multipart_get_count(multipart);
    for (int i = 0; i < count; ++i) {
      auto c = convert_part(g_mime_multipart_get_part(multipart, i), depth + 1, frozen || is_signed);
      if (!c) return c;
      changed = changed || *c;
    }
    if (!frozen) relabel_7bit(object);
    return changed;
  }

  if (GMIME_IS_PART(object)) return convert_leaf(GMIME_PART(object), frozen);
  return false;
}

Expected<bool> Downgrader::convert_leaf(GMimePart* part, bool frozen) {
  const std::string raw = part_content(part, /*decoded=*/false);
  if (!has_8bit(raw) && longest_line(raw) <= kMaxLineLength) return false;
  if (frozen) return fail(not_possible(kSignedReason));
  GMimeObject* object = GMIME_OBJECT(part);
  GMimeContentType* type = g_mime_object_get_content_type(object);
  const bool text = type == nullptr || g_mime_content_type_is_type(type, "text", "*");
  bool text_like = text;
  if (type != nullptr && g_mime_content_type_is_type(type, "message", "*")) {
    // message/rfc822 is no leaf here. message/partial and external-body (RFC 2046 5.2),
    // delivery-status (RFC 3464) and disposition-notification (RFC 8098) may only be 7bit;
    // only the message/global family may be encoded (RFC 6532 3.7, RFC 6533).
    const char* subtype = g_mime_content_type_get_media_subtype(type);
    const std::string name = subtype != nullptr ? subtype : "";
    if (!istarts_with(name, "global")) {
      return fail(not_possible("8-bit content in a message/" + name + " part, which may only be 7bit"));
    }
    text_like = true;
  }
  const std::string decoded = part_content(part, /*decoded=*/true);
  GMimeContentEncoding encoding = GMIME_CONTENT_ENCODING_BASE64;
  if (text_like) {
    std::size_t eight = 0;
    bool nul = false;
    for (unsigned char c : decoded) {
      eight += c >= 0x80 ? 1 : 0;
      nul = nul || c == 0;
    }
    // Mostly ASCII stays readable as quoted-printable, at most 20% larger than base64
    // when a third of the octets are 8-bit; text in other scripts goes base64.
    if (!nul && eight * 3 <= decoded.size()) encoding = GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE;
    const char* label = text && type != nullptr ? g_mime_content_type_get_parameter(type, "charset") : nullptr;
    if (text && eight > 0 && (label == nullptr || iequals(label, "us-ascii"))) {
      // Unlabelled 8-bit text was in whatever charset the reader assumed; say what it is
      // where we can tell, and that it is unknown where we cannot (RFC 1428).
      const char* charset = charset_for(decoded);
      GMimeHeader* h = g_mime_header_list_get_header(g_mime_object_get_header_list(object), "Content-Type");
      if (h != nullptr && g_mime_header_get_raw_value(h) != nullptr) {
        g_mime_header_set_raw_value(h, with_charset(g_mime_header_get_raw_value(h), charset).c_str());
      } else {
        const std::string ct = std::string("text/plain; charset=") + charset;
        g_mime_object_append_header(object, "Content-Type", ct.c_str(), nullptr);
      }
    }
  }
  // Give GMime the decoded content, so that it encodes even when the label already names the
  // encoding chosen (base64 with overlong lines or stray 8-bit octets).
  GObjectPtr<GMimeStream> content(g_mime_stream_mem_new_with_buffer(decoded.data(), decoded.size()));
  GObjectPtr<GMimeDataWrapper> wrapper(
      g_mime_data_wrapper_new_with_stream(content.get(), GMIME_CONTENT_ENCODING_DEFAULT));
  g_mime_part_set_content(part, wrapper.get());
  g_mime_part_set_content_encoding(part, encoding);
  return true;
}

}  // namespace

Expected<std::string> downgrade_to_7bit(std::string_view message) {
  if (!has_8bit(message)) return std::string(message);
  if (message.size() > kMaxDowngradeSize) {
    return fail(not_possible("the message is larger than " + std::to_string(kMaxDowngradeSize >> 20) + " MiB",
                             ErrorCode::kLimit));
  }
  mime::init_gmime();

  ParserTrouble trouble;
  std::unique_ptr<GMimeParserOptions, ParserOptionsFree> options(g_mime_parser_options_new());
  g_mime_parser_options_set_warning_callback(options.get(), on_parser_warning, &trouble);
  // SMTP ends every message with CRLF anyway; GMime leaves a CR in the last part when a
  // closing delimiter is the very end of its input.
  std::string terminated(message);
  if (terminated.back() != '\n') terminated += "\r\n";
  GObjectPtr<GMimeStream> input(g_mime_stream_mem_new_with_buffer(terminated.data(), terminated.size()));
  GObjectPtr<GMimeParser> parser(g_mime_parser_new_with_stream(input.get()));
  g_mime_parser_set_format(parser.get(), GMIME_FORMAT_MESSAGE);
  GObjectPtr<GMimeMessage> parsed(g_mime_parser_construct_message(parser.get(), options.get()));
  if (!parsed) return fail(not_possible("the message cannot be parsed", ErrorCode::kParse));
  if (trouble.error) return fail(*trouble.error);

  Downgrader downgrader;
  if (auto r = downgrader.convert_message(parsed.get(), 0, false); !r) return fail(r.error());

  std::unique_ptr<GMimeFormatOptions, FormatOptionsFree> format(g_mime_format_options_new());
  g_mime_format_options_set_newline_format(format.get(), GMIME_NEWLINE_FORMAT_DOS);
  GObjectPtr<GMimeStream> output(g_mime_stream_mem_new());
  if (g_mime_object_write_to_stream(GMIME_OBJECT(parsed.get()), format.get(), output.get()) < 0) {
    return fail(not_possible("writing the converted message failed", ErrorCode::kInternal));
  }
  std::string result = crlf_lines(stream_bytes(output.get()));
  // The promise to the caller, checked rather than assumed: whatever GMime kept as it was
  // (header junk, a part it could not place) must be 7-bit too.
  if (has_8bit(result)) return fail(not_possible("8-bit octets outside any header or body part"));
  if (longest_line(result) > kMaxLineLength) {
    return fail(not_possible("a line longer than " + std::to_string(kMaxLineLength) + " octets cannot be folded"));
  }
  return result;
}

}  // namespace bridgehead::convert
