#include "identity/names.hpp"

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>

#include <fmt/format.h>

#include "core/text.hpp"

namespace bridgehead::identity {
namespace {

constexpr std::size_t kMaxPartChars = 64;  // ub-common-name and friends (X.520); Notes uses the same
constexpr std::size_t kMinOrganizationChars = 3;
constexpr std::size_t kMaxOrgUnits = 4;

enum class Kind { kCn, kOu, kO, kC };

struct Part {
  Kind kind;
  std::string value;
};

Error bad(std::string_view text, std::string what) {
  return Error::permanent(ErrorCode::kInvalidArgument, fmt::format("bad name '{}': {}", text, what),
                          "write it like 'Exchange Connector/Sales/Acme' (an ID) or '/Sales/Acme' (a certifier)");
}

char upper(char c) { return c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c; }

bool is_letter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

/// Number of code points, or npos when `s` is not valid UTF-8.
std::size_t utf8_length(std::string_view s) {
  if (!is_valid_utf8(s)) return std::string_view::npos;
  return static_cast<std::size_t>(
      std::count_if(s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

struct KindNames {
  Kind kind;
  std::string_view key;    // in a canonical name and in RFC 4514
  std::string_view label;  // in messages for people
  std::string_view oid;    // X.520
  int nid;                 // OpenSSL's number for the OID
};

constexpr std::array<KindNames, 4> kKinds = {{
    {Kind::kCn, "CN", "common name", "2.5.4.3", NID_commonName},
    {Kind::kOu, "OU", "organizational unit", "2.5.4.11", NID_organizationalUnitName},
    {Kind::kO, "O", "organization", "2.5.4.10", NID_organizationName},
    {Kind::kC, "C", "country", "2.5.4.6", NID_countryName},
}};

const KindNames& names_of(Kind k) {
  return *std::find_if(kKinds.begin(), kKinds.end(), [k](const KindNames& n) { return n.kind == k; });
}

std::string_view kind_label(Kind k) { return names_of(k).label; }
std::string_view kind_key(Kind k) { return names_of(k).key; }

// The kind whose names satisfy `match`, or nullopt.
template <typename Match>
std::optional<Kind> find_kind(Match match) {
  const auto it = std::find_if(kKinds.begin(), kKinds.end(), match);
  return it == kKinds.end() ? std::nullopt : std::optional<Kind>(it->kind);
}

Expected<void> check_part(std::string_view text, Kind kind, std::string_view value) {
  const auto label = kind_label(kind);
  if (value.empty()) return fail(bad(text, fmt::format("the {} is empty", label)));
  const std::size_t chars = utf8_length(value);
  if (chars == std::string_view::npos) return fail(bad(text, fmt::format("the {} is not valid UTF-8", label)));
  for (unsigned char c : value) {
    if (c < 0x20 || c == 0x7F) {
      return fail(bad(text, fmt::format("the {} '{}' contains a control character", label, value)));
    }
    if (c == '/') return fail(bad(text, fmt::format("the {} '{}' contains '/', the separator", label, value)));
  }
  if (value.front() == ' ' || value.back() == ' ') {
    return fail(bad(text, fmt::format("the {} '{}' begins or ends with a space", label, value)));
  }
  if (chars > kMaxPartChars) {
    return fail(bad(text, fmt::format("the {} '{}' has {} characters; at most {} are allowed", label, value, chars,
                                      kMaxPartChars)));
  }
  if (kind == Kind::kO && chars < kMinOrganizationChars) {
    return fail(bad(text, fmt::format("the organization '{}' has {} character{}; Notes needs {} to {} (a last part of "
                                      "two letters is read as a country code)",
                                      value, chars, chars == 1 ? "" : "s", kMinOrganizationChars, kMaxPartChars)));
  }
  if (kind == Kind::kC && (value.size() != 2 || !is_letter(value[0]) || !is_letter(value[1]))) {
    return fail(bad(text, fmt::format("the country '{}' is not a two-letter country code", value)));
  }
  return {};
}

/// Builds a name from parts listed most specific first (CN, OU..., O, C), the order of
/// both the abbreviated and the RFC 4514 form, and checks every rule.
Expected<NotesName> assemble(std::string_view text, const std::vector<Part>& parts) {
  NotesName n;
  std::size_t i = 0;
  auto order_error = [&](const Part& p) {
    return fail(bad(text, fmt::format("{}={} is out of place: the order is CN, OU (up to {}), O, C", kind_key(p.kind),
                                      p.value, kMaxOrgUnits)));
  };
  if (i < parts.size() && parts[i].kind == Kind::kCn) n.common_name = parts[i++].value;
  while (i < parts.size() && parts[i].kind == Kind::kOu) n.org_units.push_back(parts[i++].value);
  if (i < parts.size() && parts[i].kind == Kind::kO) {
    n.organization = parts[i++].value;
  } else if (i < parts.size() && parts[i].kind != Kind::kC) {
    return order_error(parts[i]);
  } else {
    return fail(bad(text, "it has no organization (O)"));
  }
  if (i < parts.size() && parts[i].kind == Kind::kC) n.country = parts[i++].value;
  if (i < parts.size()) return order_error(parts[i]);
  for (const auto& p : parts) {
    if (auto ok = check_part(text, p.kind, p.value); !ok) return fail(ok.error());
  }
  if (n.org_units.size() > kMaxOrgUnits) {
    return fail(bad(text, fmt::format("it has {} organizational units; Notes allows at most {}", n.org_units.size(),
                                      kMaxOrgUnits)));
  }
  for (char& c : n.country) c = upper(c);
  return n;
}

std::vector<std::string_view> split_slash(std::string_view s) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  while (true) {
    const auto slash = s.find('/', start);
    out.push_back(s.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return out;
}

Expected<NotesName> parse_canonical(std::string_view text, std::string_view body) {
  if (!body.empty() && body.front() == '/') body.remove_prefix(1);
  std::vector<Part> parts;
  std::size_t index = 0;
  for (auto raw : split_slash(body)) {
    ++index;
    const auto eq = raw.find('=');
    if (eq == std::string_view::npos) {
      return fail(bad(text, fmt::format("part {} '{}' has no 'KEY=' although other parts do (canonical form is "
                                        "CN=.../OU=.../O=...)",
                                        index, trim(raw))));
    }
    const auto key = trim(raw.substr(0, eq));
    const auto value = trim(raw.substr(eq + 1));
    const auto kind = find_kind([key](const KindNames& n) { return iequals(key, n.key); });
    if (!kind) {
      return fail(
          bad(text, fmt::format("part {} has the key '{}'; a Notes name has only CN, OU, O and C", index, key)));
    }
    parts.push_back({*kind, std::string(value)});
  }
  return assemble(text, parts);
}

bool is_special_4514(char c) {
  return c == '"' || c == '+' || c == ',' || c == ';' || c == '<' || c == '>' || c == '\\';
}

std::string escape_4514(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) {
    const char c = v[i];
    if (c == '\0') {
      out += "\\00";
    } else if (is_special_4514(c) || (i == 0 && (c == ' ' || c == '#')) || (i + 1 == v.size() && c == ' ')) {
      out += '\\';
      out += c;
    } else {
      out += c;
    }
  }
  return out;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::optional<Kind> kind_from_type(std::string_view type) {
  return find_kind([type](const KindNames& n) { return iequals(type, n.key) || type == n.oid; });
}

}  // namespace

std::string NotesName::abbreviated() const {
  std::string out = common_name;
  for (const auto& ou : org_units) out += "/" + ou;
  out += "/" + organization;
  if (!country.empty()) out += "/" + country;
  return out;
}

std::string NotesName::canonical() const {
  std::string out;
  if (!common_name.empty()) out = "CN=" + common_name;
  for (const auto& ou : org_units) out += (out.empty() ? "OU=" : "/OU=") + ou;
  out += (out.empty() ? "O=" : "/O=") + organization;
  if (!country.empty()) out += "/C=" + country;
  return out;
}

std::string NotesName::x500() const {
  std::string out;
  auto add = [&out](std::string_view key, std::string_view value) {
    if (!out.empty()) out += ',';
    out += key;
    out += '=';
    out += escape_4514(value);
  };
  if (!common_name.empty()) add("CN", common_name);
  for (const auto& ou : org_units) add("OU", ou);
  add("O", organization);
  if (!country.empty()) add("C", country);
  return out;
}

NotesName NotesName::parent() const {
  NotesName p = *this;
  if (!p.common_name.empty()) {
    p.common_name.clear();
  } else if (!p.org_units.empty()) {
    p.org_units.erase(p.org_units.begin());
  }
  return p;
}

bool NotesName::same_as(const NotesName& other) const {
  if (org_units.size() != other.org_units.size()) return false;
  for (std::size_t i = 0; i < org_units.size(); ++i) {
    if (!iequals(org_units[i], other.org_units[i])) return false;
  }
  return iequals(common_name, other.common_name) && iequals(organization, other.organization) &&
         iequals(country, other.country);
}

Expected<NotesName> parse_notes_name(std::string_view text) {
  const auto body = trim(text);
  if (body.empty()) return fail(bad(text, "it is empty"));
  if (body.find('=') != std::string_view::npos) return parse_canonical(text, body);
  auto raw = split_slash(body);
  const bool certifier = trim(raw.front()).empty() && body.front() == '/';
  if (certifier) raw.erase(raw.begin());
  std::vector<std::string_view> parts;
  for (std::size_t i = 0; i < raw.size(); ++i) {
    const auto p = trim(raw[i]);
    if (p.empty()) return fail(bad(text, fmt::format("part {} is empty", i + 1 + (certifier ? 1 : 0))));
    parts.push_back(p);
  }
  std::vector<Part> typed;
  std::size_t i = 0;
  if (!certifier) {
    typed.push_back({Kind::kCn, std::string(parts[i++])});
    if (i == parts.size()) {
      return fail(bad(
          text, fmt::format("it has no organization: write '{}/Organization', e.g. '{}/Acme'", parts[0], parts[0])));
    }
  }
  // A last part of two letters is a country code: Notes organizations have at least 3
  // characters, so `/Acme/US` can only mean O=Acme, C=US.
  std::size_t end = parts.size();
  std::optional<std::string_view> country;
  if (end - i >= 2 && parts[end - 1].size() == 2 && is_letter(parts[end - 1][0]) && is_letter(parts[end - 1][1])) {
    country = parts[--end];
  }
  for (; i + 1 < end; ++i) typed.push_back({Kind::kOu, std::string(parts[i])});
  typed.push_back({Kind::kO, std::string(parts[i])});
  if (country) typed.push_back({Kind::kC, std::string(*country)});
  return assemble(text, typed);
}

Expected<NotesName> parse_x500_name(std::string_view text) {
  std::vector<Part> parts;
  std::size_t pos = 0;
  const auto n = text.size();
  auto skip_spaces = [&] {
    while (pos < n && text[pos] == ' ') ++pos;
  };
  skip_spaces();
  if (pos == n) return fail(bad(text, "it is empty"));
  while (true) {
    skip_spaces();
    const auto eq = text.find('=', pos);
    if (eq == std::string_view::npos) {
      return fail(bad(text, fmt::format("'{}' has no '=' (RFC 4514 wants TYPE=value)", text.substr(pos))));
    }
    const auto type = trim(text.substr(pos, eq - pos));
    const auto kind = kind_from_type(type);
    if (!kind) {
      return fail(bad(text, fmt::format("the attribute type '{}' is not part of a Notes name (CN, OU, O, C)", type)));
    }
    pos = eq + 1;
    skip_spaces();
    if (pos < n && text[pos] == '#') {
      return fail(bad(text, fmt::format("the {} value is hex-encoded (#...); write it as text", kind_key(*kind))));
    }
    std::string value;
    std::size_t keep = 0;  // value.size() up to the last escaped character: escaped spaces stay
    while (pos < n && text[pos] != ',' && text[pos] != '+') {
      const char c = text[pos];
      if (c == '\\') {
        if (pos + 1 >= n) return fail(bad(text, "it ends with a lone '\\'"));
        const char e = text[pos + 1];
        if (is_special_4514(e) || e == ' ' || e == '#' || e == '=') {
          value += e;
          pos += 2;
        } else if (pos + 2 < n && hex_value(e) >= 0 && hex_value(text[pos + 2]) >= 0) {
          value += static_cast<char>(hex_value(e) * 16 + hex_value(text[pos + 2]));
          pos += 3;
        } else {
          return fail(bad(text, fmt::format("'\\{}' is not an RFC 4514 escape", e)));
        }
        keep = value.size();
        continue;
      }
      if (c == '"' || c == ';' || c == '<' || c == '>' || c == '\0') {
        return fail(bad(text, fmt::format("the {} value has an unescaped '{}' (RFC 4514 wants '\\{}')", kind_key(*kind),
                                          c == '\0' ? std::string("\\0") : std::string(1, c),
                                          c == '\0' ? std::string("00") : std::string(1, c))));
      }
      value += c;
      ++pos;
    }
    while (value.size() > keep && value.back() == ' ') value.pop_back();
    parts.push_back({*kind, std::move(value)});
    if (pos == n) break;
    if (text[pos] == '+') {
      return fail(bad(text, fmt::format("the {} value is part of a multi-valued RDN ('+'); a Notes name has one "
                                        "value per level",
                                        kind_key(*kind))));
    }
    ++pos;  // ','
  }
  return assemble(text, parts);
}

Expected<NotesName> from_x509_name(const X509_NAME* name) {
  const std::string text = x509_name_text(name);
  const int count = X509_NAME_entry_count(name);
  std::vector<Part> parts;  // most specific first: the reverse of the DER order
  int last_set = -1;
  for (int i = 0; i < count; ++i) {
    const X509_NAME_ENTRY* e = X509_NAME_get_entry(name, i);
    if (X509_NAME_ENTRY_set(e) == last_set) {
      return fail(bad(text, "it has a multi-valued RDN; a Notes name has one value per level"));
    }
    last_set = X509_NAME_ENTRY_set(e);
    const int nid = OBJ_obj2nid(X509_NAME_ENTRY_get_object(e));
    const auto found = find_kind([nid](const KindNames& n) { return n.nid == nid; });
    if (!found) {
      char oid[80];
      OBJ_obj2txt(oid, sizeof oid, X509_NAME_ENTRY_get_object(e), 0);
      return fail(bad(text, fmt::format("the attribute '{}' is not part of a Notes name (CN, OU, O, C)", oid)));
    }
    const Kind kind = *found;
    unsigned char* utf8 = nullptr;
    const int len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(e));
    if (len < 0) return fail(bad(text, fmt::format("the {} value cannot be read as text", kind_key(kind))));
    std::string value(reinterpret_cast<const char*>(utf8), static_cast<std::size_t>(len));
    OPENSSL_free(utf8);
    if (value.find('\0') != std::string::npos) {
      return fail(bad(text, fmt::format("the {} value contains a NUL character", kind_key(kind))));
    }
    parts.insert(parts.begin(), Part{kind, std::move(value)});
  }
  if (parts.empty()) return fail(bad(text, "it is empty"));
  return assemble(text, parts);
}

Expected<void> to_x509_name(const NotesName& name, X509_NAME* out) {
  auto add = [out](int nid, const std::string& v) {
    return X509_NAME_add_entry_by_NID(out, nid, MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(v.data()),
                                      static_cast<int>(v.size()), -1, 0) == 1;
  };
  bool ok = true;
  if (!name.country.empty()) ok = ok && add(NID_countryName, name.country);
  ok = ok && add(NID_organizationName, name.organization);
  for (auto it = name.org_units.rbegin(); it != name.org_units.rend(); ++it) {
    ok = ok && add(NID_organizationalUnitName, *it);
  }
  if (!name.common_name.empty()) ok = ok && add(NID_commonName, name.common_name);
  if (!ok) {
    return fail(Error::permanent(ErrorCode::kInternal,
                                 fmt::format("OpenSSL refused the name '{}' for a certificate", name.abbreviated())));
  }
  return {};
}

std::string x509_name_text(const X509_NAME* name) {
  BIO* bio = BIO_new(BIO_s_mem());
  if (bio == nullptr) return "?";
  X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<std::size_t>(len > 0 ? len : 0));
  BIO_free(bio);
  return out;
}

}  // namespace bridgehead::identity
