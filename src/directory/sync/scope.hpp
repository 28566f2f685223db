// directory/sync/scope: which source entries one direction synchronizes: include and exclude
// containers, an LDAP filter (RFC 4515, evaluated here too, so an LDIF source and a change
// that arrives by a feed are judged like a search would), and groups to ignore. Pure.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/expected.hpp"
#include "directory/dn.hpp"
#include "directory/entry.hpp"

namespace bridgehead::directory::sync {

/// An RFC 4515 filter: and, or, not, equality, presence, substrings, >=, <= and ~= (taken as
/// equality). Attribute names and values compare ASCII case-insensitively (the usual
/// caseIgnoreMatch); >= and <= compare as integers when both sides are, else as text.
class Filter {
 public:
  /// Fails (kInvalidArgument) with "filter at offset N: what is wrong", the offset in octets.
  static Expected<Filter> parse(std::string_view text);
  bool matches(const Entry& entry) const;
  const std::string& text() const { return text_; }

  struct Node;  // defined in scope.cpp
 private:
  std::string text_;
  std::shared_ptr<const Node> root_;
};

struct ScopeSettings {
  std::vector<std::string> include;  ///< container DNs; empty: everything under the base
  std::vector<std::string> exclude;  ///< container DNs, which win over include
  std::string filter;                ///< empty: every entry
  /// Groups not synchronized, by DN or by cn (ASCII case ignored). A group is an entry with
  /// objectClass group, groupOfNames, groupOfUniqueNames or dominoGroup.
  std::vector<std::string> ignore_groups;
};

class Scope {
 public:
  /// Checks every DN (RFC 4514) and the filter; fails (kInvalidArgument) naming the one wrong.
  static Expected<Scope> make(const ScopeSettings& settings);
  /// nullopt when `entry` is in scope; else why not ("below excluded container ou=Test,o=Acme",
  /// "does not match filter (objectClass=dominoPerson)", "ignored group cn=All Staff").
  std::optional<std::string> excludes(const Entry& entry) const;

 private:
  ScopeSettings settings_;
  std::vector<Dn> include_, exclude_;          // settings_.include, .exclude, parsed
  std::vector<Dn> ignore_group_dns_;           // ignore_groups written as DNs
  std::vector<std::string> ignore_group_cns_;  // ...and as names
  std::optional<Filter> filter_;
};

}  // namespace bridgehead::directory::sync
