// directory/ldap/attribute_range: Active Directory's ranged retrieval of large multi-valued
// attributes. AD returns at most MaxValRange values of an attribute per reply and says so
// in the attribute's name: `member;range=0-1499`; the client asks for `member;range=1500-*`
// and goes on until a reply ends in `*`. The parsing and the continuation are pure functions
// here; connection.cpp runs the requests. slapd never ranges, so these are what unit tests
// cover.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/expected.hpp"
#include "directory/entry.hpp"

namespace bridgehead::directory::ldap {

/// One ranged attribute description: `member;range=0-1499` or `member;range=1500-*`.
struct AttributeRange {
  std::string attribute;              ///< "member": the description without its range option
  std::uint64_t first = 0;            ///< index of the first value in this reply
  std::optional<std::uint64_t> last;  ///< index of the last value; nullopt for `*` (the final reply)
};

/// Parses an attribute description as a server returned it. nullopt when it has no range
/// option (`member`, `member;binary`); kParse naming the description and what is wrong for a
/// malformed range (`range=`, `range=5-2`, `range=a-*`, numbers above 2^63).
Expected<std::optional<AttributeRange>> parse_attribute_range(std::string_view description);

/// The attribute description that asks for the values of `attribute` from index `first` on:
/// "member;range=1500-*".
std::string range_request(std::string_view attribute, std::uint64_t first);

/// A ranged attribute still to be fetched: ask for request(), then apply_range_reply().
struct RangeContinuation {
  std::string attribute;   ///< "member"
  std::uint64_t next = 0;  ///< index of the first value still missing
  std::string request() const { return range_request(attribute, next); }
  bool operator==(const RangeContinuation&) const = default;
};

/// Renames the ranged attributes of `entry` (`member;range=0-1499`) to their plain names
/// (`member`), keeping their values, and returns those that continue (every one whose range
/// does not end in `*`). kParse for a malformed range, for a first reply that does not start
/// at 0, and for an attribute that comes both ranged and plain.
Expected<std::vector<RangeContinuation>> fold_ranged_attributes(Entry& entry);

/// Appends the values of `reply` (the entry as the server returned it for
/// `pending.request()`) to `pending.attribute` of `entry`. Returns the next continuation, or
/// nullopt when this reply was the last (`*`). kParse when the reply does not go on exactly
/// where `pending` says (a gap or an overlap would lose or double values), carries the
/// attribute without a range, or does not carry it at all.
Expected<std::optional<RangeContinuation>> apply_range_reply(Entry& entry, const RangeContinuation& pending,
                                                             const Entry& reply);

}  // namespace bridgehead::directory::ldap
