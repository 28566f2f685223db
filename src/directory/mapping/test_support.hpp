// What the directory_mapping tests share: the attributes and variables they may name, a run's
// context, and parsing a rule that must parse.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

#include <gtest/gtest.h>

#include "directory/mapping/evaluate.hpp"
#include "directory/mapping/expression.hpp"

namespace bridgehead::directory::mapping::test {

inline const Known& known() {
  static const Known k({"cn", "sn", "givenName", "initials", "displayName", "mail", "uid", "objectClass",
                        "telephoneNumber", "description", "member", "proxyAddresses"},
                       {"routing_domain", "notes_domain", "system"});
  return k;
}

inline Context context() {
  Context c;
  c.set("routing_domain", "notes.acme.com");
  c.set("notes_domain", "AcmeMail");
  c.set("system", "domino");
  return c;
}

/// An entry with these attribute values, in this order.
inline directory::Entry entry_of(std::string dn,
                                 std::initializer_list<std::pair<std::string_view, std::string_view>> values) {
  directory::Entry e(std::move(dn));
  for (const auto& [name, value] : values) e.add(name, std::string(value));
  return e;
}

/// The parsed rule; a failed ASSERT when it does not parse.
inline Expression must_parse(std::string_view text, const Known& k = known()) {
  auto e = parse(text, k);
  if (!e) {
    ADD_FAILURE() << "'" << text << "' at " << e.error().offset << ": " << e.error().message;
    return *parse("'unparsable'", k);
  }
  return std::move(*e);
}

}  // namespace bridgehead::directory::mapping::test
