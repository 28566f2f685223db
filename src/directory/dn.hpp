// directory/dn: RFC 4514 distinguished names as text: parsing into RDNs, writing them back
// with RFC 4514 escaping, and comparing two DNs the way a directory decides whether they name
// the same entry. Owns no schema: attribute types compare ASCII case-insensitively (with the
// usual short names of a few standard OIDs), every value as a case-insensitive string with
// insignificant spaces folded, which is what cn, ou, o, dc and uid use. Pure: no I/O.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "core/expected.hpp"

namespace bridgehead::directory {

/// One attribute type and value of an RDN ("cn=Doe\, John").
struct Ava {
  std::string type;   ///< as written: "cn", "CN" or "2.5.4.3"
  std::string value;  ///< the value's octets, escapes undone; for a hex value the BER octets
  bool hex = false;   ///< written as "#04..." (RFC 4514 hexstring): `value` holds the BER encoding
  bool operator==(const Ava&) const = default;  ///< exact: same spelling, same octets
};

/// A relative distinguished name: one AVA, or several joined by '+' (kept in written order).
struct Rdn {
  std::vector<Ava> avas;
  bool operator==(const Rdn&) const = default;  ///< exact, in order
};

/// `value` escaped for use as an attribute value in a DN string (RFC 4514 2.4): '"', '+', ',',
/// ';', '<', '>', '\' and '=' with a backslash, a leading space or '#' and a trailing space
/// with a backslash, NUL, other controls and octets that are not UTF-8 as "\XX". "Doe, John"
/// becomes "Doe\, John". Never fails.
std::string escape_dn_value(std::string_view value);

/// One RDN in RFC 4514 form ("cn=A+uid=a").
std::string format_rdn(const Rdn& rdn);

/// A distinguished name: its RDNs from the entry's own (first) to the one nearest the root.
/// Equality (==) is the directory's: whether both name the same entry; rdns() == rdns() is
/// the exact comparison.
class Dn {
 public:
  Dn() = default;  ///< the empty DN (the root)
  explicit Dn(std::vector<Rdn> rdns) : rdns_(std::move(rdns)) {}

  /// Parses an RFC 4514 string. Accepts spaces around ',', '+' and '='. Fails with
  /// kInvalidArgument naming the offset (0-based, in octets) and what was expected there.
  static Expected<Dn> parse(std::string_view text);

  const std::vector<Rdn>& rdns() const { return rdns_; }
  bool empty() const { return rdns_.empty(); }
  std::size_t size() const { return rdns_.size(); }

  /// The entry's own RDN. Must not be called on the empty DN.
  const Rdn& first_rdn() const { return rdns_.front(); }
  /// The DN without its first RDN; the empty DN's parent is the empty DN.
  Dn parent() const;
  /// `rdn` below this DN: the DN of a child entry.
  Dn child(Rdn rdn) const;
  /// Whether this DN is `base` or an entry below it (the empty DN contains every DN).
  bool is_within(const Dn& base) const;

  /// RFC 4514 string of the RDNs as parsed: types as written, values escaped by escape_dn_value.
  std::string to_string() const;
  /// The form two DNs of the same entry share: types in lower case (known OIDs by their
  /// names), values in lower ASCII case with leading, trailing and repeated spaces removed,
  /// the AVAs of a multi-valued RDN sorted. Usable as a map key.
  std::string normalized() const;

  /// Whether both name the same entry (normalized() forms are equal).
  bool operator==(const Dn& other) const;

 private:
  std::vector<Rdn> rdns_;
};

/// The normalized form of one RDN (see Dn::normalized).
std::string normalize_rdn(const Rdn& rdn);

}  // namespace bridgehead::directory
