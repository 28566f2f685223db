#include "directory/mapping/text_functions.hpp"

#include <array>

#include "core/text.hpp"
#include "identity/names.hpp"

namespace bridgehead::directory::mapping {
namespace {

char32_t decode(std::string_view s, std::size_t i, std::size_t len) {
  auto b = [&](std::size_t k) { return static_cast<char32_t>(static_cast<unsigned char>(s[i + k])); };
  switch (len) {
    case 1:
      return b(0);
    case 2:
      return ((b(0) & 0x1F) << 6) | (b(1) & 0x3F);
    case 3:
      return ((b(0) & 0x0F) << 12) | ((b(1) & 0x3F) << 6) | (b(2) & 0x3F);
    default:
      return ((b(0) & 0x07) << 18) | ((b(1) & 0x3F) << 12) | ((b(2) & 0x3F) << 6) | (b(3) & 0x3F);
  }
}

void append_utf8(std::string& out, char32_t c) {
  auto put = [&out](char32_t v) { out.push_back(static_cast<char>(v)); };
  if (c < 0x80) {
    put(c);
  } else if (c < 0x800) {
    put(0xC0 | (c >> 6));
    put(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    put(0xE0 | (c >> 12));
    put(0x80 | ((c >> 6) & 0x3F));
    put(0x80 | (c & 0x3F));
  } else {
    put(0xF0 | (c >> 18));
    put(0x80 | ((c >> 12) & 0x3F));
    put(0x80 | ((c >> 6) & 0x3F));
    put(0x80 | (c & 0x3F));
  }
}

// Latin Extended-A pairs letters as upper/lower neighbours; which one comes first changes
// twice in the block. U+0130/U+0131 (Turkish dotted/dotless i) and U+0138, U+0149, U+017F
// have no partner of the same length and stay as they are.
bool even_upper_block(char32_t c) {
  return (c >= 0x100 && c <= 0x137 && c != 0x130 && c != 0x131) || (c >= 0x14A && c <= 0x177);
}
bool odd_upper_block(char32_t c) { return (c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E); }

char32_t upper_of(char32_t c) {
  if (c < 0x80) return c >= 'a' && c <= 'z' ? c - 0x20 : c;
  if (c >= 0xE0 && c <= 0xFE && c != 0xF7) return c - 0x20;
  if (c == 0xFF) return 0x178;
  if (even_upper_block(c)) return c & ~char32_t{1};
  if (odd_upper_block(c)) return c % 2 == 0 ? c - 1 : c;
  if (c == 0x3C2) return 0x3A3;  // final sigma
  if (c >= 0x3B1 && c <= 0x3C9) return c - 0x20;
  if (c >= 0x430 && c <= 0x44F) return c - 0x20;
  if (c >= 0x450 && c <= 0x45F) return c - 0x50;
  return c;
}

char32_t lower_of(char32_t c) {
  if (c < 0x80) return c >= 'A' && c <= 'Z' ? c + 0x20 : c;
  if (c >= 0xC0 && c <= 0xDE && c != 0xD7) return c + 0x20;
  if (c == 0x178) return 0xFF;
  if (even_upper_block(c)) return c | 1;
  if (odd_upper_block(c)) return c % 2 == 1 ? c + 1 : c;
  if (c >= 0x391 && c <= 0x3A9 && c != 0x3A2) return c + 0x20;
  if (c >= 0x410 && c <= 0x42F) return c + 0x20;
  if (c >= 0x400 && c <= 0x40F) return c + 0x50;
  return c;
}

// Letters and digits make words for proper(); general punctuation (U+2000..U+206F, where the
// typographic apostrophe is) and the Latin-1 signs separate them.
bool is_word_char(char32_t c) {
  if (c < 0x80) return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
  if (c < 0xC0 || c == 0xD7 || c == 0xF7) return false;
  return c < 0x2000 || c > 0x206F;
}

// Calls f(code point) for every character of `in`, appending what it returns; false on bad UTF-8.
template <typename F>
bool map_chars(std::string_view in, std::string& out, F f) {
  out.clear();
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size();) {
    const std::size_t len = utf8_sequence_length(in, i);
    if (len == 0) return false;
    append_utf8(out, f(decode(in, i, len)));
    i += len;
  }
  return true;
}

// The octet offset after `count` characters of valid UTF-8 `in` (in.size() when shorter).
std::size_t offset_of_char(std::string_view in, std::size_t count) {
  std::size_t i = 0;
  for (; i < in.size() && count > 0; --count) i += utf8_sequence_length(in, i);
  return i;
}

constexpr std::string_view kBlanks = " \t\r\n";

bool is_suffix(std::string_view w) {
  static constexpr std::array<std::string_view, 7> kSuffixes = {"Jr", "Jr.", "Sr", "Sr.", "II", "III", "IV"};
  for (auto s : kSuffixes) {
    if (iequals(w, s)) return true;
  }
  return false;
}

bool is_particle(std::string_view w) {
  static constexpr std::array<std::string_view, 17> kParticles = {
      "van", "von", "de", "der", "den", "del", "della", "di", "da", "du", "dos", "das", "la", "le", "ten", "ter", "zu"};
  for (auto p : kParticles) {
    if (iequals(w, p)) return true;
  }
  return false;
}

// The start of the word that ends at `end` (exclusive) in `s`, which has no blank at `end - 1`.
std::size_t word_start(std::string_view s, std::size_t end) {
  const auto blank = s.find_last_of(kBlanks, end - 1);
  return blank == std::string_view::npos ? 0 : blank + 1;
}

// The end of the text before the word that starts at `start`, blanks and `extra` skipped; 0 if none.
std::size_t end_before(std::string_view s, std::size_t start, std::string_view extra = {}) {
  while (start > 0 &&
         (kBlanks.find(s[start - 1]) != std::string_view::npos || extra.find(s[start - 1]) != std::string_view::npos)) {
    --start;
  }
  return start;
}

// An LDAP DN has ',' between its parts and no '/' before the first ','.
Expected<identity::NotesName> read_notes_name(std::string_view v) {
  const auto comma = v.find(',');
  const auto slash = v.find('/');
  if (v.find('=') != std::string_view::npos && comma != std::string_view::npos &&
      (slash == std::string_view::npos || comma < slash)) {
    return identity::parse_x500_name(v);
  }
  return identity::parse_notes_name(v);
}

}  // namespace

bool lower_text(std::string_view in, std::string& out) { return map_chars(in, out, lower_of); }

bool upper_text(std::string_view in, std::string& out) { return map_chars(in, out, upper_of); }

bool proper_text(std::string_view in, std::string& out) {
  bool in_word = false;
  return map_chars(in, out, [&in_word](char32_t c) {
    const bool starts = !in_word;
    in_word = is_word_char(c);
    return starts ? upper_of(c) : lower_of(c);
  });
}

bool left_text(std::string_view in, std::size_t count, std::string& out) {
  if (!is_valid_utf8(in)) return false;
  out.assign(in.substr(0, offset_of_char(in, count)));
  return true;
}

bool substr_text(std::string_view in, std::size_t start, std::size_t count, std::string& out) {
  if (!is_valid_utf8(in)) return false;
  const std::string_view rest = in.substr(offset_of_char(in, start > 0 ? start - 1 : 0));
  out.assign(count == std::string_view::npos ? rest : rest.substr(0, offset_of_char(rest, count)));
  return true;
}

bool strip_text(std::string_view in, std::string_view chars, std::string& out) {
  if (!is_valid_utf8(in) || !is_valid_utf8(chars)) return false;
  if (chars.empty()) {
    out.assign(trim(in, kBlanks));
    return true;
  }
  out.clear();
  // UTF-8 synchronizes itself: a whole sequence found in valid UTF-8 starts on a character.
  for (std::size_t i = 0; i < in.size();) {
    const std::size_t len = utf8_sequence_length(in, i);
    const auto ch = in.substr(i, len);
    if (chars.find(ch) == std::string_view::npos) out += ch;
    i += len;
  }
  return true;
}

void replace_text(std::string_view in, std::string_view from, std::string_view to, std::string& out) {
  out.clear();
  std::size_t pos = 0;
  while (true) {
    const auto hit = in.find(from, pos);
    if (hit == std::string_view::npos || from.empty()) break;
    out.append(in.substr(pos, hit - pos));
    out.append(to);
    pos = hit + from.size();
  }
  out.append(in.substr(pos));
}

Outcome name_part(std::string_view value, NamePart part, std::string& out, std::string& why) {
  out.clear();
  if (!is_valid_utf8(value)) {
    why = "it is not valid UTF-8";
    return Outcome::kBad;
  }
  std::string_view name = trim(value, kBlanks);
  if (name.empty()) return Outcome::kNoValue;
  std::string common;  // a Notes name's common name; only a Notes name needs the copy
  if (name.find('/') != std::string_view::npos || istarts_with(name, "cn=")) {
    auto notes = read_notes_name(name);
    if (!notes) {
      why = notes.error().message;
      return Outcome::kBad;
    }
    if (notes->is_certifier()) {
      why = "it is a certifier's name, which has no common name";
      return Outcome::kBad;
    }
    common = std::move(notes->common_name);
    name = common;
  }
  // Generational suffixes go first, so that "John Doe, Jr." is not read as "surname, given".
  while (true) {
    const std::size_t start = word_start(name, name.size());
    if (start == 0 || !is_suffix(name.substr(start))) break;
    const std::size_t cut = end_before(name, start, ",");
    if (cut == 0) break;
    name = name.substr(0, cut);
  }
  std::string_view first;
  std::string_view last;
  if (const auto comma = name.find(','); comma != std::string_view::npos) {
    last = trim(name.substr(0, comma), kBlanks);
    const auto given = trim(name.substr(comma + 1), kBlanks);
    if (last.empty() || given.empty()) {
      why = last.empty() ? "it has nothing before its comma (\"Surname, Given\")"
                         : "it has nothing after its comma (\"Surname, Given\")";
      return Outcome::kBad;
    }
    first = given.substr(0, given.find_first_of(kBlanks));
  } else {
    const auto space = name.find_first_of(kBlanks);
    if (space != std::string_view::npos) first = name.substr(0, space);
    std::size_t start = word_start(name, name.size());
    // Particles before the last word belong to the surname ("van Beethoven"), never the first word.
    while (start > 0) {
      const std::size_t end = end_before(name, start);
      const std::size_t prev = word_start(name, end);
      if (prev == 0 || !is_particle(name.substr(prev, end - prev))) break;
      start = prev;
    }
    last = name.substr(start);
  }
  const auto result = part == NamePart::kFirst ? first : last;
  if (result.empty()) return Outcome::kNoValue;
  out.assign(result);
  return Outcome::kValue;
}

Outcome notes_name(std::string_view value, NameForm form, std::string& out, std::string& why) {
  out.clear();
  if (trim(value, kBlanks).empty()) return Outcome::kNoValue;
  auto name = read_notes_name(value);
  if (!name) {
    why = name.error().message;
    return Outcome::kBad;
  }
  switch (form) {
    case NameForm::kAbbreviated:
      out = name->abbreviated();
      break;
    case NameForm::kCanonical:
      out = name->canonical();
      break;
    case NameForm::kX500:
      out = name->x500();
      break;
  }
  return Outcome::kValue;
}

}  // namespace bridgehead::directory::mapping
