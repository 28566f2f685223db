// directory/entry: one directory object as directory synchronization sees it, whatever it
// came from (LDAP, an LDIF file): its DN and its attributes, each with its values in the
// order the source gave them. Attribute names compare ASCII case-insensitively, as LDAP
// schemas do (RFC 4512 2.5); the spelling first seen is kept for writing. Values are
// octet strings (objectGUID is binary). Pure data: no I/O.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace bridgehead::directory {

struct Attribute {
  std::string name;                 ///< as first seen: "proxyAddresses"
  std::vector<std::string> values;  ///< octets, in source order; an attribute has at least one
};

class Entry {
 public:
  Entry() = default;
  explicit Entry(std::string dn) : dn_(std::move(dn)) {}

  const std::string& dn() const { return dn_; }
  void set_dn(std::string dn) { dn_ = std::move(dn); }

  /// The values of `name` (any case), or null when the entry has no such attribute.
  const std::vector<std::string>* find(std::string_view name) const;
  /// The first value of `name`, or "" when there is none.
  std::string_view first(std::string_view name) const;
  bool has(std::string_view name) const { return find(name) != nullptr; }

  /// Appends `value` to `name`, creating the attribute with this spelling if it is new.
  void add(std::string_view name, std::string value);
  /// Replaces every value of `name`; an empty list removes the attribute.
  void set(std::string_view name, std::vector<std::string> values);
  /// Removes `name`; false when it was not there.
  bool remove(std::string_view name);

  /// In the order the attributes were first added.
  const std::vector<Attribute>& attributes() const { return attributes_; }

  /// Same DN (compared as text) and the same attributes with the same values in the same
  /// order, names compared case-insensitively: for tests and round trips.
  bool operator==(const Entry& other) const;

 private:
  Attribute* find_attribute(std::string_view name);
  std::string dn_;
  std::vector<Attribute> attributes_;
};

}  // namespace bridgehead::directory
