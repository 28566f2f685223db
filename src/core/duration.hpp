// Durations as an administrator writes them in the config ("90s", "5m", "4h", "5d") and
// lists of them ("1m,5m,15m"). Pure parsing and formatting; shared by config (checking, and
// showing a component's default) and queue (using).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/expected.hpp"

namespace bridgehead {

using Seconds = std::chrono::seconds;

/// Longest single duration accepted by the parsers (keeps time arithmetic far from overflow).
inline constexpr Seconds kMaxDuration = std::chrono::days(365);

/// Parses one duration such as "90s", "5m", "1h", "5d"; fails (permanent kParse) on a missing or
/// unknown unit, a non-number, zero, or more than 365d, naming the text.
Expected<Seconds> parse_duration(std::string_view text);

/// Parses a comma-separated delay list such as "1m,5m,15m,30m,1h,2h,4h" (spaces around items are
/// allowed); fails (permanent kParse) on an empty list or item, naming the bad item and its position.
Expected<std::vector<Seconds>> parse_delay_list(std::string_view text);

/// Now as milliseconds since the Unix epoch: the time stamps of events, runs and state records.
inline std::int64_t unix_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

/// The form the parsers read back: the largest unit that divides it ("5d", "4h", "90s");
/// "0s" for zero.
std::string format_duration(Seconds d);
/// "1m,5m,15m": format_duration of each, comma-separated.
std::string format_delay_list(const std::vector<Seconds>& delays);

}  // namespace bridgehead
