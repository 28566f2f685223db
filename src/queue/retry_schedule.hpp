// The retry schedule: back-off delays between delivery attempts, the queue lifetime after which
// a message fails (failure DSN), and when a delay notice is due. Pure logic on times given by the
// caller; it does not own the clock, the queue, the per-message state or the sending of notices.
#pragma once

#include <chrono>
#include <cstdint>
#include <string_view>
#include <vector>

#include "core/duration.hpp"
#include "core/expected.hpp"

namespace bridgehead::queue {

/// Wall-clock time: arrival times are persisted with the message and survive restarts.
using TimePoint = std::chrono::system_clock::time_point;
using Seconds = std::chrono::seconds;
using bridgehead::kMaxDuration;
using bridgehead::parse_delay_list;
using bridgehead::parse_duration;

/// Unix seconds, as the spool stores them, and back.
TimePoint from_unix(std::int64_t unix_seconds);
std::int64_t to_unix(TimePoint t);

struct RetryOptions {
  std::vector<Seconds> delays = {std::chrono::minutes(1),  std::chrono::minutes(5), std::chrono::minutes(15),
                                 std::chrono::minutes(30), std::chrono::hours(1),   std::chrono::hours(2),
                                 std::chrono::hours(4)};  ///< after the last one, the last repeats
  Seconds lifetime = std::chrono::days(5);                ///< then the message fails (failure DSN)
  Seconds delay_notice_after = std::chrono::hours(4);     ///< 0 = never send a delay notice
  double jitter = 0.0;                                    ///< each delay varies by up to ± this fraction, in [0, 1)
  std::uint64_t seed = 0;  ///< jitter seed: fixed in tests, random per process in production
};

class RetrySchedule {
 public:
  /// The default schedule (RetryOptions{}): 1m,5m,15m,30m,1h,2h,4h then every 4h, 5d, notice at 4h.
  RetrySchedule();

  /// Validates `options`; fails (permanent kConfig, naming the setting) on an empty delay list, a
  /// delay or lifetime that is not positive or above 365d, a negative notice time or jitter outside [0, 1).
  static Expected<RetrySchedule> create(RetryOptions options);

  /// The delay after `attempts` failed attempts, without jitter (attempts 0 → 0, past the list →
  /// the last delay); never fails.
  Seconds base_delay(std::uint32_t attempts) const;

  /// When to try next, given `attempts` so far: now for a message never tried, otherwise now plus
  /// the (jittered) delay, but never later than the expiry, so the last attempt happens exactly at
  /// the end of the lifetime (now once past it: check expired() first); never fails.
  TimePoint next_attempt(TimePoint arrival, std::uint32_t attempts, TimePoint now) const;

  /// Whether the queue lifetime is over (now ≥ arrival + lifetime): after a failed attempt, the
  /// message fails with a DSN instead of being retried; never fails.
  bool expired(TimePoint arrival, TimePoint now) const;

  /// Whether to send the (single) delay notice now: enabled, not sent yet, not expired, and
  /// now ≥ arrival + delay_notice_after; never fails.
  bool delay_notice_due(TimePoint arrival, TimePoint now, bool already_sent) const;

  const RetryOptions& options() const { return options_; }

 private:
  explicit RetrySchedule(RetryOptions options) : options_(std::move(options)) {}

  RetryOptions options_;
};

}  // namespace bridgehead::queue
