#include "directory/dn.hpp"

#include <algorithm>
#include <array>
#include <iterator>
#include <utility>

#include <fmt/format.h>

#include "core/text.hpp"

namespace bridgehead::directory {
namespace {

constexpr std::string_view kEscapedSpecials = "\"+,;<>\\=";

bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

int hex_digit(char c) {
  if (is_digit(c)) return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

void append_hex(std::string& out, unsigned char octet, const char* digits) {
  out += digits[octet >> 4];
  out += digits[octet & 0x0F];
}

std::string hex_lower(std::string_view octets) {
  std::string out;
  out.reserve(octets.size() * 2);
  for (char c : octets) append_hex(out, static_cast<unsigned char>(c), "0123456789abcdef");
  return out;
}

// How an octet of the DN shows in an error: printable ASCII as itself, the rest as \xHH.
std::string shown(char c) { return escape_control(std::string_view(&c, 1)); }

// The names a directory gives the OIDs of the naming attributes DNs use, so that
// "2.5.4.3=John" and "cn=John" compare equal without a schema.
std::string_view name_of_oid(std::string_view oid) {
  static constexpr std::array<std::pair<std::string_view, std::string_view>, 10> kNames{{
      {"2.5.4.3", "cn"},
      {"2.5.4.6", "c"},
      {"2.5.4.7", "l"},
      {"2.5.4.8", "st"},
      {"2.5.4.9", "street"},
      {"2.5.4.10", "o"},
      {"2.5.4.11", "ou"},
      {"0.9.2342.19200300.100.1.1", "uid"},
      {"0.9.2342.19200300.100.1.25", "dc"},
      {"1.2.840.113549.1.9.1", "emailaddress"},
  }};
  for (const auto& [o, name] : kNames) {
    if (o == oid) return name;
  }
  return oid;
}

// A hex value holds a BER encoding; when it is a primitive string type with a definite
// length, a directory compares its content like the same value written as a string.
bool ber_string_content(std::string_view ber, std::string_view& content) {
  if (ber.size() < 2) return false;
  const auto tag = static_cast<unsigned char>(ber[0]);
  if (tag != 0x04 && tag != 0x0C && tag != 0x13 && tag != 0x16 && tag != 0x1A) return false;
  std::size_t length = static_cast<unsigned char>(ber[1]);
  std::size_t header = 2;
  if (length >= 0x80) {
    const std::size_t octets = length & 0x7F;
    if (octets == 0 || octets > 2 || ber.size() < 2 + octets) return false;
    length = 0;
    for (std::size_t k = 0; k < octets; ++k) length = length << 8 | static_cast<unsigned char>(ber[2 + k]);
    header += octets;
  }
  if (ber.size() - header != length) return false;
  content = ber.substr(header);
  return true;
}

std::string fold_value(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  bool pending_space = false;
  for (char c : value) {
    if (c == ' ') {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) out += ' ';
    pending_space = false;
    out += to_lower(c);
  }
  return out;
}

std::string normalize_ava(const Ava& ava) {
  std::string out(name_of_oid(to_lower(ava.type)));
  out += '=';
  std::string_view content = ava.value;
  if (ava.hex && !ber_string_content(ava.value, content)) {
    out += '#';
    out += hex_lower(ava.value);
    return out;
  }
  out += escape_dn_value(fold_value(content));
  return out;
}

class DnParser {
 public:
  explicit DnParser(std::string_view text) : s_(text) {}

  Expected<Dn> parse() {
    std::vector<Rdn> rdns;
    skip_spaces();
    if (at_end()) return Dn();
    for (;;) {
      Rdn rdn;
      for (;;) {
        auto ava = parse_ava();
        if (!ava) return fail(std::move(ava.error()));
        rdn.avas.push_back(std::move(*ava));
        skip_spaces();
        if (at_end() || s_[i_] != '+') break;
        ++i_;
        skip_spaces();
      }
      rdns.push_back(std::move(rdn));
      if (at_end()) break;
      if (s_[i_] != ',') {
        return fail(error(fmt::format("expected ',' or '+' after the value, found '{}'", shown(s_[i_]))));
      }
      ++i_;
      skip_spaces();
    }
    return Dn(std::move(rdns));
  }

 private:
  bool at_end() const { return i_ >= s_.size(); }
  void skip_spaces() {
    while (!at_end() && s_[i_] == ' ') ++i_;
  }
  std::string found() const { return at_end() ? "the end of the DN" : fmt::format("'{}'", shown(s_[i_])); }

  Error error(std::string what) const { return error_at(i_, std::move(what)); }
  Error error_at(std::size_t at, std::string what) const {
    return Error::permanent(ErrorCode::kInvalidArgument,
                            fmt::format("DN '{}' at offset {}: {}", escape_control(s_), at, what),
                            "write the DN as RFC 4514 says, e.g. cn=Doe\\, John,ou=Sales,o=Acme");
  }

  Expected<Ava> parse_ava() {
    Ava ava;
    auto type = parse_type();
    if (!type) return fail(std::move(type.error()));
    ava.type = std::move(*type);
    skip_spaces();
    if (at_end() || s_[i_] != '=') {
      return fail(error(fmt::format("expected '=' after the attribute type '{}', found {}", ava.type, found())));
    }
    ++i_;
    skip_spaces();
    if (!at_end() && s_[i_] == '#') {
      ava.hex = true;
      auto octets = parse_hex_value();
      if (!octets) return fail(std::move(octets.error()));
      ava.value = std::move(*octets);
      return ava;
    }
    auto value = parse_string_value();
    if (!value) return fail(std::move(value.error()));
    ava.value = std::move(*value);
    return ava;
  }

  // attributeType = descr / numericoid (RFC 4512 1.4)
  Expected<std::string> parse_type() {
    const std::size_t start = i_;
    if (!at_end() && is_alpha(s_[i_])) {
      while (!at_end() && (is_alpha(s_[i_]) || is_digit(s_[i_]) || s_[i_] == '-')) ++i_;
      return std::string(s_.substr(start, i_ - start));
    }
    if (at_end() || !is_digit(s_[i_])) {
      return fail(error(
          fmt::format("expected an attribute type (a name such as cn, or an OID such as 2.5.4.3), found {}", found())));
    }
    std::size_t components = 0;
    for (;;) {
      if (at_end() || !is_digit(s_[i_]))
        return fail(error(fmt::format("expected a digit in the OID, found {}", found())));
      const std::size_t number = i_;
      while (!at_end() && is_digit(s_[i_])) ++i_;
      if (s_[number] == '0' && i_ - number > 1) {
        return fail(error_at(number, "an OID component must not start with 0 (write 2.5.4.3, not 2.5.04.3)"));
      }
      ++components;
      if (at_end() || s_[i_] != '.') break;
      ++i_;
    }
    if (components < 2) return fail(error_at(start, "an OID needs at least two components (such as 2.5.4.3)"));
    return std::string(s_.substr(start, i_ - start));
  }

  // hexstring = SHARP 1*hexpair: the BER encoding of the value.
  Expected<std::string> parse_hex_value() {
    ++i_;  // '#'
    std::string octets;
    const std::size_t start = i_;
    while (!at_end() && hex_digit(s_[i_]) >= 0) ++i_;
    if (i_ == start) {
      return fail(error(fmt::format(
          "expected hex digits after '#', found {} (escape a '#' that starts a string value as '\\#')", found())));
    }
    if ((i_ - start) % 2 != 0) return fail(error_at(start, "a hex value needs an even number of hex digits"));
    for (std::size_t k = start; k < i_; k += 2) {
      octets += static_cast<char>(hex_digit(s_[k]) << 4 | hex_digit(s_[k + 1]));
    }
    return octets;
  }

  Expected<std::string> parse_string_value() {
    std::string out;
    std::size_t significant = 0;  // spaces after the last escaped or non-space octet are not part of the value
    while (!at_end()) {
      const char c = s_[i_];
      if (c == ',' || c == '+') break;
      if (c == '\\') {
        auto octet = parse_escape();
        if (!octet) return fail(std::move(octet.error()));
        out += *octet;
        significant = out.size();
        continue;
      }
      if (c == '\0') return fail(error("a NUL octet in a value must be written as '\\00'"));
      if (c == '"' || c == ';' || c == '<' || c == '>') {
        return fail(error(fmt::format("'{}' must be escaped in a value: write '\\{}'{}", c, c,
                                      c == ';' ? " (RFC 4514 separates RDNs with ',')" : "")));
      }
      out += c;
      ++i_;
      if (c != ' ') significant = out.size();
    }
    out.resize(significant);
    return out;
  }

  // pair = ESC ( ESC / special / hexpair )
  Expected<char> parse_escape() {
    const std::size_t at = i_;
    ++i_;
    if (at_end()) return fail(error_at(at, "the DN ends in '\\': write a backslash in a value as '\\\\'"));
    const char c = s_[i_];
    if (hex_digit(c) >= 0) {
      if (i_ + 1 >= s_.size() || hex_digit(s_[i_ + 1]) < 0) {
        return fail(error_at(at, fmt::format("expected two hex digits after '\\', found '\\{}' and {}", shown(c),
                                             i_ + 1 >= s_.size() ? "the end" : "'" + shown(s_[i_ + 1]) + "'")));
      }
      const char octet = static_cast<char>(hex_digit(c) << 4 | hex_digit(s_[i_ + 1]));
      i_ += 2;
      return octet;
    }
    if (kEscapedSpecials.find(c) != std::string_view::npos || c == ' ' || c == '#') {
      ++i_;
      return c;
    }
    return fail(error_at(at, fmt::format("'\\{}' is not an escape: follow '\\' with one of \" + , ; < > \\ = # space, "
                                         "or with two hex digits",
                                         shown(c))));
  }

  std::string_view s_;
  std::size_t i_ = 0;
};

}  // namespace

std::string escape_dn_value(std::string_view value) {
  std::string out;
  out.reserve(value.size() + 8);
  const char* const digits = "0123456789ABCDEF";
  for (std::size_t i = 0; i < value.size();) {
    const char c = value[i];
    const auto octet = static_cast<unsigned char>(c);
    const bool edge_space = c == ' ' && (i == 0 || i + 1 == value.size());
    if (edge_space || (c == '#' && i == 0) || kEscapedSpecials.find(c) != std::string_view::npos) {
      out += '\\';
      out += c;
      ++i;
      continue;
    }
    if (octet < 0x20 || octet == 0x7F) {
      out += '\\';
      append_hex(out, octet, digits);
      ++i;
      continue;
    }
    const std::size_t n = octet < 0x80 ? 1 : utf8_sequence_length(value, i);
    if (n == 0) {  // not UTF-8: escaped, so the DN string stays valid UTF-8
      out += '\\';
      append_hex(out, octet, digits);
      ++i;
      continue;
    }
    out.append(value.substr(i, n));
    i += n;
  }
  return out;
}

std::string format_rdn(const Rdn& rdn) {
  std::string out;
  for (const Ava& ava : rdn.avas) {
    if (!out.empty()) out += '+';
    out += ava.type;
    out += '=';
    if (ava.hex && !ava.value.empty()) {
      out += '#';
      out += hex_lower(ava.value);
    } else {
      out += escape_dn_value(ava.value);
    }
  }
  return out;
}

std::string normalize_rdn(const Rdn& rdn) {
  std::vector<std::string> avas;
  avas.reserve(rdn.avas.size());
  std::transform(rdn.avas.begin(), rdn.avas.end(), std::back_inserter(avas), normalize_ava);
  std::sort(avas.begin(), avas.end());
  std::string out;
  for (const std::string& a : avas) {
    if (!out.empty()) out += '+';
    out += a;
  }
  return out;
}

Expected<Dn> Dn::parse(std::string_view text) { return DnParser(text).parse(); }

Dn Dn::parent() const {
  if (rdns_.empty()) return Dn();
  return Dn(std::vector<Rdn>(rdns_.begin() + 1, rdns_.end()));
}

Dn Dn::child(Rdn rdn) const {
  std::vector<Rdn> rdns;
  rdns.reserve(rdns_.size() + 1);
  rdns.push_back(std::move(rdn));
  rdns.insert(rdns.end(), rdns_.begin(), rdns_.end());
  return Dn(std::move(rdns));
}

bool Dn::is_within(const Dn& base) const {
  if (base.size() > size()) return false;
  const std::size_t skip = size() - base.size();
  for (std::size_t k = 0; k < base.size(); ++k) {
    if (normalize_rdn(rdns_[skip + k]) != normalize_rdn(base.rdns_[k])) return false;
  }
  return true;
}

std::string Dn::to_string() const {
  std::string out;
  for (const Rdn& rdn : rdns_) {
    if (!out.empty()) out += ',';
    out += format_rdn(rdn);
  }
  return out;
}

std::string Dn::normalized() const {
  std::string out;
  for (const Rdn& rdn : rdns_) {
    if (!out.empty()) out += ',';
    out += normalize_rdn(rdn);
  }
  return out;
}

bool Dn::operator==(const Dn& other) const { return size() == other.size() && is_within(other); }

}  // namespace bridgehead::directory
