#include "core/duration.hpp"

#include <charconv>

#include <fmt/format.h>

#include "core/text.hpp"

namespace bridgehead {

namespace {

constexpr std::string_view kUnitsHint = "write a whole number followed by s, m, h or d, e.g. 90s, 5m, 4h, 5d";

// Why `text` is not a duration, or the duration.
Expected<Seconds> parse_one(std::string_view text) {
  const auto bad = [&](std::string why) {
    return fail(Error::permanent(ErrorCode::kParse, fmt::format("bad duration \"{}\": {}", text, why),
                                 std::string(kUnitsHint)));
  };
  if (text.empty()) return bad("empty");
  std::int64_t value = 0;
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ptr == text.data()) return bad("does not start with a number");
  if (ec == std::errc::result_out_of_range) return bad(fmt::format("longer than {}d", kMaxDuration.count() / 86400));
  if (ptr == end) return bad("no unit");
  if (ptr + 1 != end) return bad(fmt::format("unknown unit \"{}\"", std::string_view(ptr, end)));
  std::int64_t unit = 0;
  switch (*ptr) {
    case 's':
      unit = 1;
      break;
    case 'm':
      unit = 60;
      break;
    case 'h':
      unit = 3600;
      break;
    case 'd':
      unit = 86400;
      break;
    default:
      return bad(fmt::format("unknown unit \"{}\"", *ptr));
  }
  if (value <= 0) return bad("must be more than zero");
  if (value > kMaxDuration.count() / unit) return bad(fmt::format("longer than {}d", kMaxDuration.count() / 86400));
  return Seconds(value * unit);
}

}  // namespace

Expected<Seconds> parse_duration(std::string_view text) { return parse_one(trim(text)); }

Expected<std::vector<Seconds>> parse_delay_list(std::string_view text) {
  std::vector<Seconds> out;
  if (trim(text).empty()) {
    return fail(Error::permanent(ErrorCode::kParse, "bad retry delay list: it is empty",
                                 "list at least one delay, e.g. 1m,5m,15m,30m,1h,2h,4h"));
  }
  std::size_t item = 1;
  for (std::string_view rest = text;; ++item) {
    const std::size_t comma = rest.find(',');
    const std::string_view piece = trim(rest.substr(0, comma));
    auto d = parse_one(piece);
    if (!d) {
      Error e = d.error();
      e.message = fmt::format("bad retry delay list \"{}\": item {}: {}", text, item,
                              piece.empty() ? std::string("empty") : e.message);
      return fail(std::move(e));
    }
    out.push_back(*d);
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  return out;
}

std::string format_duration(Seconds d) {
  const auto n = d.count();
  if (n != 0 && n % 86400 == 0) return std::to_string(n / 86400) + "d";
  if (n != 0 && n % 3600 == 0) return std::to_string(n / 3600) + "h";
  if (n != 0 && n % 60 == 0) return std::to_string(n / 60) + "m";
  return std::to_string(n) + "s";
}

std::string format_delay_list(const std::vector<Seconds>& delays) {
  std::string out;
  for (const auto d : delays) {
    if (!out.empty()) out += ',';
    out += format_duration(d);
  }
  return out;
}

}  // namespace bridgehead
