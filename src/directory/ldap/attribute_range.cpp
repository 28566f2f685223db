#include "directory/ldap/attribute_range.hpp"

#include <charconv>
#include <limits>

#include "core/text.hpp"

namespace bridgehead::directory::ldap {

namespace {

constexpr std::string_view kRangeOption = "range=";

Error malformed(std::string_view description, std::string_view why) {
  return Error::permanent(
      ErrorCode::kParse,
      "malformed ranged attribute \"" + escape_control(description) + "\" from the server: " + std::string(why),
      "report this server's reply; a range has the form attribute;range=FIRST-LAST or "
      "attribute;range=FIRST-*");
}

std::optional<std::uint64_t> parse_index(std::string_view text) {
  if (text.empty() || text.size() > 19) return std::nullopt;
  std::uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  if (value > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) return std::nullopt;
  return value;
}

}  // namespace

Expected<std::optional<AttributeRange>> parse_attribute_range(std::string_view description) {
  // Options follow the attribute type after ';' (RFC 4512 2.5); range is AD's one.
  std::size_t pos = 0;
  std::optional<std::size_t> range_at;
  while ((pos = description.find(';', pos)) != std::string_view::npos) {
    ++pos;
    if (istarts_with(description.substr(pos), kRangeOption)) {
      if (range_at) return fail(malformed(description, "two range options"));
      range_at = pos;
    }
  }
  if (!range_at) return std::optional<AttributeRange>();
  std::size_t option_end = description.find(';', *range_at);
  std::string_view spec = description.substr(
      *range_at + kRangeOption.size(),
      option_end == std::string_view::npos ? std::string_view::npos : option_end - *range_at - kRangeOption.size());
  std::size_t dash = spec.find('-');
  if (dash == std::string_view::npos) return fail(malformed(description, "no '-' between the first and last index"));
  auto first = parse_index(spec.substr(0, dash));
  if (!first) return fail(malformed(description, "the first index is not a number"));
  AttributeRange range;
  range.first = *first;
  std::string_view last_text = spec.substr(dash + 1);
  if (last_text != "*") {
    auto last = parse_index(last_text);
    if (!last) return fail(malformed(description, "the last index is neither a number nor '*'"));
    if (*last < *first) return fail(malformed(description, "the last index is below the first"));
    range.last = *last;
  }
  // The description without ";range=...", keeping any other option (member;binary).
  range.attribute = std::string(description.substr(0, *range_at - 1));
  if (option_end != std::string_view::npos) range.attribute += description.substr(option_end);
  if (range.attribute.empty()) return fail(malformed(description, "no attribute name"));
  return std::optional<AttributeRange>(std::move(range));
}

std::string range_request(std::string_view attribute, std::uint64_t first) {
  return std::string(attribute) + ";range=" + std::to_string(first) + "-*";
}

Expected<std::vector<RangeContinuation>> fold_ranged_attributes(Entry& entry) {
  std::vector<RangeContinuation> pending;
  std::vector<std::pair<std::string, AttributeRange>> ranged;
  for (const Attribute& a : entry.attributes()) {
    auto range = parse_attribute_range(a.name);
    if (!range) return fail(range.error());
    if (*range) ranged.emplace_back(a.name, std::move(**range));
  }
  for (auto& [name, range] : ranged) {
    if (range.first != 0) {
      return fail(malformed(
          name, "the first reply of a ranged attribute must start at 0 (entry " + escape_control(entry.dn()) + ")"));
    }
    if (entry.has(range.attribute)) {
      return fail(
          malformed(name, "entry " + escape_control(entry.dn()) + " also has " + range.attribute + " without a range"));
    }
    std::vector<std::string> values = *entry.find(name);
    const std::uint64_t count = values.size();
    entry.remove(name);
    entry.set(range.attribute, std::move(values));
    if (range.last) {
      if (*range.last + 1 != count) {
        return fail(malformed(name, "the range says " + std::to_string(*range.last + 1) + " values, the reply has " +
                                        std::to_string(count)));
      }
      pending.push_back(RangeContinuation{range.attribute, count});
    }
  }
  return pending;
}

Expected<std::optional<RangeContinuation>> apply_range_reply(Entry& entry, const RangeContinuation& pending,
                                                             const Entry& reply) {
  if (reply.has(pending.attribute)) {
    return fail(malformed(pending.attribute, "asked for " + pending.request() + " of " + escape_control(entry.dn()) +
                                                 ", the server sent the attribute without a range"));
  }
  for (const Attribute& a : reply.attributes()) {
    auto range = parse_attribute_range(a.name);
    if (!range) return fail(range.error());
    if (!*range || !iequals((*range)->attribute, pending.attribute)) continue;
    if ((*range)->first != pending.next) {
      return fail(malformed(a.name, "asked for values from " + std::to_string(pending.next) + " of " +
                                        escape_control(entry.dn()) + ", the reply starts at " +
                                        std::to_string((*range)->first)));
    }
    for (const std::string& v : a.values) entry.add(pending.attribute, v);
    if (!(*range)->last) return std::optional<RangeContinuation>();
    if (*(*range)->last + 1 != pending.next + a.values.size()) {
      return fail(malformed(a.name, "the range says " + std::to_string(*(*range)->last - (*range)->first + 1) +
                                        " values, the reply has " + std::to_string(a.values.size())));
    }
    return std::optional<RangeContinuation>(RangeContinuation{pending.attribute, *(*range)->last + 1});
  }
  return fail(
      malformed(pending.request(), "the reply for " + escape_control(entry.dn()) + " does not carry the attribute"));
}

}  // namespace bridgehead::directory::ldap
