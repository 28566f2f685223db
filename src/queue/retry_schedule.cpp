#include "queue/retry_schedule.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

namespace bridgehead::queue {

namespace {

// splitmix64: a well-mixed 64-bit hash, so jitter is spread evenly yet reproducible from the seed.
std::uint64_t mix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

Error config_error(std::string msg) {
  return Error::permanent(ErrorCode::kConfig, std::move(msg), "fix the queue retry settings");
}

}  // namespace

TimePoint from_unix(std::int64_t unix_seconds) { return TimePoint(std::chrono::seconds(unix_seconds)); }
std::int64_t to_unix(TimePoint t) { return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count(); }

RetrySchedule::RetrySchedule() = default;

Expected<RetrySchedule> RetrySchedule::create(RetryOptions options) {
  if (options.delays.empty()) return fail(config_error("retry schedule has no delays"));
  for (std::size_t i = 0; i < options.delays.size(); ++i) {
    const Seconds d = options.delays[i];
    if (d <= Seconds::zero() || d > kMaxDuration) {
      return fail(config_error(fmt::format("retry delay {} is {}s; it must be between 1s and 365d", i + 1, d.count())));
    }
  }
  if (options.lifetime <= Seconds::zero() || options.lifetime > kMaxDuration) {
    return fail(
        config_error(fmt::format("queue lifetime is {}s; it must be between 1s and 365d", options.lifetime.count())));
  }
  if (options.delay_notice_after < Seconds::zero() || options.delay_notice_after > kMaxDuration) {
    return fail(config_error(fmt::format("delay notice time is {}s; it must be between 0 (never) and 365d",
                                         options.delay_notice_after.count())));
  }
  if (!(options.jitter >= 0.0 && options.jitter < 1.0)) {  // also rejects NaN
    return fail(config_error(fmt::format("retry jitter is {}; it must be at least 0 and below 1", options.jitter)));
  }
  return RetrySchedule(std::move(options));
}

Seconds RetrySchedule::base_delay(std::uint32_t attempts) const {
  if (attempts == 0) return Seconds::zero();
  const std::size_t i = std::min<std::size_t>(attempts - 1, options_.delays.size() - 1);
  return options_.delays[i];
}

TimePoint RetrySchedule::next_attempt(TimePoint arrival, std::uint32_t attempts, TimePoint now) const {
  const TimePoint expiry = arrival + options_.lifetime;
  if (attempts == 0) return now;
  Seconds delay = base_delay(attempts);
  if (options_.jitter > 0.0) {
    // Keyed by the message's arrival and the attempt, so messages deferred together spread out
    // instead of all coming back at the same second, yet a test with a fixed seed is repeatable.
    const auto key = static_cast<std::uint64_t>(arrival.time_since_epoch().count());
    const std::uint64_t h = mix(options_.seed ^ mix(key ^ mix(attempts)));
    const double unit = static_cast<double>(h >> 11) * 0x1.0p-53;  // [0, 1)
    const double factor = 1.0 + options_.jitter * (2.0 * unit - 1.0);
    const auto jittered = std::llround(static_cast<double>(delay.count()) * factor);
    delay = Seconds(std::max<long long>(1, jittered));
  }
  return std::min(now + delay, std::max(now, expiry));
}

bool RetrySchedule::expired(TimePoint arrival, TimePoint now) const { return now >= arrival + options_.lifetime; }

bool RetrySchedule::delay_notice_due(TimePoint arrival, TimePoint now, bool already_sent) const {
  if (already_sent || options_.delay_notice_after == Seconds::zero()) return false;
  if (expired(arrival, now)) return false;  // the failure DSN says it all
  return now >= arrival + options_.delay_notice_after;
}

}  // namespace bridgehead::queue
