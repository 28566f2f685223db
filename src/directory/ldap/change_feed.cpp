#include "directory/ldap/change_feed.hpp"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <utility>
#include <vector>

#include "core/text.hpp"
#include "directory/ldap/content_sync.hpp"

namespace bridgehead::directory::ldap {

namespace {

std::optional<std::uint64_t> parse_u64(std::string_view text) {
  text = trim(text);
  std::uint64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return v;
}

// A filter term ANDed to the caller's filter, which may be written without its parentheses.
std::string and_filter(const std::string& filter, const std::string& term) {
  std::string f = std::string(trim(filter));
  if (f.empty()) return term;
  if (f.front() != '(') f = "(" + f + ")";
  return "(&" + f + term + ")";
}

// Adds `names` to an attribute list; an empty list (all user attributes) becomes "*" plus them.
std::vector<std::string> with_attributes(std::vector<std::string> attributes,
                                         std::initializer_list<std::string_view> names) {
  if (attributes.empty()) attributes.emplace_back("*");
  for (std::string_view n : names) {
    const bool there =
        std::any_of(attributes.begin(), attributes.end(), [&](const std::string& a) { return iequals(a, n); });
    if (!there) attributes.emplace_back(n);
  }
  return attributes;
}

// One base-level read of `dn`; kNotFound when no entry came.
Expected<Entry> read_base(Connection& conn, const std::string& dn, std::vector<std::string> attributes) {
  SearchRequest r;
  r.base = dn;
  r.scope = Scope::kBase;
  r.paged = false;
  r.attributes = std::move(attributes);
  std::optional<Entry> got;
  auto out = conn.search(r, [&](Entry e) {
    got = std::move(e);
    return true;
  });
  if (!out) return fail(out.error());
  if (!out->complete()) return fail(*out->problem);
  if (!got) {
    return fail(Error::permanent(ErrorCode::kNotFound,
                                 "reading " + (dn.empty() ? std::string("the rootDSE") : escape_control(dn)) + " at " +
                                     conn.uri() + " returned no entry",
                                 "check the bind account's read access"));
  }
  return std::move(*got);
}

Error not_ad(const Connection& conn, std::string_view what) {
  return Error::permanent(ErrorCode::kUnavailable, "the directory at " + conn.uri() + " " + std::string(what),
                          "the uSNChanged feed needs an Active Directory domain controller; use a full run, or "
                          "another change feed for this server");
}

bool digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

int number(std::string_view s) {
  int v = 0;
  for (char c : s) v = v * 10 + (c - '0');
  return v;
}

}  // namespace

std::optional<std::string> windows_guid_text(std::string_view octets) {
  if (octets.size() != 16) return std::nullopt;
  // Data1 (4 octets), Data2 and Data3 (2 each) little-endian; Data4 (8) in order.
  static constexpr int kOrder[16] = {3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15};
  std::string in_order(16, '\0');
  for (std::size_t i = 0; i < 16; ++i) in_order[i] = octets[static_cast<std::size_t>(kOrder[i])];
  return uuid_text(in_order);
}

std::string UsnPosition::text() const { return invocation_id + "/" + std::to_string(usn); }

Expected<UsnPosition> UsnPosition::parse(std::string_view text) {
  const auto slash = text.rfind('/');
  UsnPosition p;
  std::optional<std::uint64_t> usn;
  if (slash != std::string_view::npos) {
    p.invocation_id = std::string(text.substr(0, slash));
    usn = parse_u64(text.substr(slash + 1));
  }
  if (!usn || p.invocation_id.size() != 36) {
    return fail(Error::permanent(
        ErrorCode::kParse, "\"" + escape_control(text) + "\" is not a uSNChanged feed position (invocation-id/usn)",
        "forget the stored position: the next run is then a full run"));
  }
  p.usn = *usn;
  return p;
}

Expected<DomainController> read_domain_controller(Connection& connection) {
  auto root = read_base(connection, "", {"highestCommittedUSN", "dsServiceName", "supportedControl"});
  if (!root) return fail(root.error());
  DomainController dc;
  auto usn = parse_u64(root->first("highestCommittedUSN"));
  if (!usn) return fail(not_ad(connection, "has no highestCommittedUSN in its rootDSE"));
  dc.highest_committed_usn = *usn;
  dc.dsa_dn = std::string(root->first("dsServiceName"));
  if (dc.dsa_dn.empty()) return fail(not_ad(connection, "has no dsServiceName in its rootDSE"));
  if (const auto* controls = root->find("supportedControl")) {
    dc.offers_show_deleted = std::find(controls->begin(), controls->end(), kShowDeletedOid) != controls->end();
  }
  auto dsa = read_base(connection, dc.dsa_dn, {"invocationId"});
  if (!dsa) return fail(dsa.error());
  auto id = windows_guid_text(dsa->first("invocationId"));
  if (!id) {
    return fail(not_ad(connection, "has no 16-octet invocationId on " + escape_control(dc.dsa_dn)));
  }
  dc.invocation_id = std::move(*id);
  return dc;
}

Expected<UsnFeedOutcome> read_usn_changes(Connection& connection, const UsnFeedRequest& request,
                                          const UsnEntryCallback& on_entry) {
  // highestCommittedUSN before the search: a change committed during it has a higher USN and
  // is read (again) next time, never skipped.
  auto dc = read_domain_controller(connection);
  if (!dc) return fail(dc.error());
  UsnFeedOutcome out;
  if (request.since && !iequals(request.since->invocation_id, dc->invocation_id)) {
    out.different_server = true;
    out.position = *request.since;
    out.search.completeness = Completeness::kServerError;
    out.search.problem = Error::permanent(
        ErrorCode::kInvalidArgument,
        "the directory at " + connection.uri() + " is not the server the stored position was read from (invocationID " +
            dc->invocation_id + ", the position's " + escape_control(request.since->invocation_id) +
            "): another domain controller, or a restored database",
        "do a full run: USNs of one server mean nothing on another");
    return out;
  }
  SearchRequest search = request.search;
  if (request.since) {
    search.filter = and_filter(search.filter, "(uSNChanged>=" + std::to_string(request.since->usn + 1) + ")");
  }
  search.attributes = with_attributes(std::move(search.attributes), {"uSNChanged", "isDeleted"});
  if (request.deleted_objects && dc->offers_show_deleted) {
    RequestControl show;
    show.oid = std::string(kShowDeletedOid);
    show.critical = false;  // as AD tools send it; the server has listed it in supportedControl
    search.controls.push_back(std::move(show));
    out.deletions_reported = true;
  }
  auto read = connection.search(search, [&](Entry entry) {
    const bool deleted = iequals(trim(entry.first("isDeleted")), "TRUE");
    return on_entry(std::move(entry), deleted);
  });
  if (!read) return fail(read.error());
  out.search = std::move(*read);
  out.position.invocation_id = dc->invocation_id;
  // Not the highest uSNChanged read: the search may have passed an object before a change to it
  // was committed with a lower USN than one read later. Everything above the rootDSE's value
  // before the search comes again next time; the diff absorbs what was read twice.
  out.position.usn = std::max(dc->highest_committed_usn, request.since ? request.since->usn : 0);
  return out;
}

Expected<std::chrono::sys_seconds> parse_generalized_time(std::string_view text) {
  auto bad = [&](std::string_view why) -> Expected<std::chrono::sys_seconds> {
    return fail(Error::permanent(
        ErrorCode::kParse, "\"" + escape_control(text) + "\" is not a GeneralizedTime (RFC 4517): " + std::string(why),
        "expect YYYYMMDDHHMMSSZ, as directories write modifyTimestamp"));
  };
  std::string_view s = trim(text);
  std::size_t i = 0;
  auto take = [&](std::size_t n) -> std::optional<int> {
    if (s.size() < i + n || !digits(s.substr(i, n))) return std::nullopt;
    int v = number(s.substr(i, n));
    i += n;
    return v;
  };
  auto y = take(4), mo = take(2), d = take(2), h = take(2);
  if (!y || !mo || !d || !h) return bad("it does not start with YYYYMMDDHH");
  int minute = 0, second = 0;
  if (auto m = take(2)) {
    minute = *m;
    if (auto sec = take(2)) second = *sec;
  }
  if (i < s.size() && (s[i] == '.' || s[i] == ',')) {
    ++i;
    const std::size_t start = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    if (i == start) return bad("a fraction without digits");
  }
  std::chrono::minutes offset{0};
  if (i >= s.size()) return bad("no time zone (Z, +hhmm or -hhmm)");
  if (s[i] == 'Z') {
    ++i;
  } else if (s[i] == '+' || s[i] == '-') {
    const int sign = s[i] == '-' ? -1 : 1;
    ++i;
    auto oh = take(2);
    if (!oh) return bad("a time zone offset without hours");
    int om = 0;
    if (auto m = take(2)) om = *m;
    if (*oh > 23 || om > 59) return bad("a time zone offset out of range");
    offset = std::chrono::minutes(sign * (*oh * 60 + om));
  } else {
    return bad("no time zone (Z, +hhmm or -hhmm)");
  }
  if (i != s.size()) return bad("text after the time zone");
  const std::chrono::year_month_day ymd{std::chrono::year(*y), std::chrono::month(static_cast<unsigned>(*mo)),
                                        std::chrono::day(static_cast<unsigned>(*d))};
  if (!ymd.ok()) return bad("no such date");
  if (*h > 23 || minute > 59 || second > 60) return bad("no such time of day");
  // A leap second (60) counts as the next second's start.
  return std::chrono::sys_days(ymd) + std::chrono::hours(*h) + std::chrono::minutes(minute) +
         std::chrono::seconds(second) - offset;
}

std::string format_generalized_time(std::chrono::sys_seconds time) {
  const auto days = std::chrono::floor<std::chrono::days>(time);
  const std::chrono::year_month_day ymd(days);
  const std::chrono::hh_mm_ss hms(time - days);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04d%02u%02u%02d%02d%02dZ", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count()),
                static_cast<int>(hms.seconds().count()));
  return buf;
}

Expected<TimestampFeedOutcome> read_timestamp_changes(Connection& connection, const TimestampFeedRequest& request,
                                                      const EntryCallback& on_entry) {
  if (request.overlap.count() < 0) {
    return fail(
        Error::permanent(ErrorCode::kInvalidArgument,
                         "the modifyTimestamp overlap is negative (" + std::to_string(request.overlap.count()) + " s)",
                         "set the overlap to zero or more seconds (default 600)"));
  }
  SearchRequest search = request.search;
  if (request.since) {
    search.filter = and_filter(search.filter,
                               "(modifyTimestamp>=" + format_generalized_time(*request.since - request.overlap) + ")");
  }
  search.attributes = with_attributes(std::move(search.attributes), {"modifyTimestamp"});
  TimestampFeedOutcome out;
  out.position = request.since;
  auto read = connection.search(search, [&](Entry entry) {
    if (auto t = parse_generalized_time(entry.first("modifyTimestamp"))) {
      if (!out.position || *t > *out.position) out.position = *t;
    } else {
      ++out.without_timestamp;
    }
    return on_entry(std::move(entry));
  });
  if (!read) return fail(read.error());
  out.search = std::move(*read);
  return out;
}

}  // namespace bridgehead::directory::ldap
