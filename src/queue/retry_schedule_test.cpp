#include "queue/retry_schedule.hpp"

#include <set>

#include <gtest/gtest.h>

namespace bridgehead::queue {
namespace {

using namespace std::chrono_literals;

const TimePoint kArrival = TimePoint(std::chrono::sys_days(std::chrono::year(2026) / 11 / 25)) + 12h + 345ms;

RetrySchedule make(RetryOptions o) {
  auto s = RetrySchedule::create(std::move(o));
  if (!s) throw std::runtime_error(s.error().describe());
  return *s;
}

// --- parse_duration -------------------------------------------------------------------------

TEST(ParseDuration, Units) {
  EXPECT_EQ(*parse_duration("90s"), 90s);
  EXPECT_EQ(*parse_duration("5m"), 5min);
  EXPECT_EQ(*parse_duration("4h"), 4h);
  EXPECT_EQ(*parse_duration("5d"), std::chrono::days(5));
  EXPECT_EQ(*parse_duration(" 1h "), 1h);
  EXPECT_EQ(*parse_duration("365d"), std::chrono::days(365));
}

TEST(ParseDuration, Errors) {
  struct Case {
    const char* text;
    const char* why;
  };
  for (const Case& c :
       {Case{"", "empty"}, Case{"5", "no unit"}, Case{"h", "does not start with a number"},
        Case{"-1m", "more than zero"}, Case{"+1m", "does not start with a number"}, Case{"0s", "more than zero"},
        Case{"5x", "unknown unit \"x\""}, Case{"5mm", "unknown unit \"mm\""}, Case{"1.5h", "unknown unit \".5h\""},
        Case{"366d", "longer than 365d"}, Case{"8761h", "longer than 365d"},
        Case{"99999999999999999999s", "longer than 365d"}}) {
    auto d = parse_duration(c.text);
    ASSERT_FALSE(d) << c.text;
    EXPECT_EQ(d.error().code, ErrorCode::kParse);
    EXPECT_FALSE(d.error().transient());
    EXPECT_NE(d.error().message.find(c.why), std::string::npos) << c.text << ": " << d.error().message;
    EXPECT_NE(d.error().message.find(std::string("\"") + c.text + "\""), std::string::npos) << d.error().message;
    EXPECT_FALSE(d.error().remedy.empty());
  }
}

// --- parse_delay_list -----------------------------------------------------------------------

TEST(ParseDelayList, DefaultString) {
  auto l = parse_delay_list("1m,5m,15m,30m,1h,2h,4h");
  ASSERT_TRUE(l) << l.error().describe();
  EXPECT_EQ(*l, RetryOptions{}.delays);
}

TEST(ParseDelayList, SpacesAndSingleItem) {
  EXPECT_EQ(*parse_delay_list(" 30s , 2m "), (std::vector<Seconds>{30s, 2min}));
  EXPECT_EQ(*parse_delay_list("1d"), (std::vector<Seconds>{std::chrono::days(1)}));
}

TEST(ParseDelayList, ErrorsNameTheItem) {
  struct Case {
    const char* text;
    const char* expect;
  };
  for (const Case& c : {Case{"1m,5x,1h", "item 2: bad duration \"5x\": unknown unit"}, Case{"1m,,5m", "item 2: empty"},
                        Case{"1m,5m,", "item 3: empty"}, Case{",1m", "item 1: empty"},
                        Case{"1m,5", "item 2: bad duration \"5\": no unit"},
                        Case{"0m", "item 1: bad duration \"0m\": must be more than zero"}}) {
    auto l = parse_delay_list(c.text);
    ASSERT_FALSE(l) << c.text;
    EXPECT_EQ(l.error().code, ErrorCode::kParse);
    EXPECT_NE(l.error().message.find(c.expect), std::string::npos) << l.error().message;
    EXPECT_NE(l.error().message.find(c.text), std::string::npos) << l.error().message;
  }
  for (const char* empty : {"", "  "}) {
    auto l = parse_delay_list(empty);
    ASSERT_FALSE(l);
    EXPECT_NE(l.error().message.find("empty"), std::string::npos);
  }
}

// --- create ---------------------------------------------------------------------------------

TEST(RetryScheduleCreate, RejectsBadOptions) {
  const auto rejected = [](auto change, const char* expect) {
    RetryOptions o;
    change(o);
    auto s = RetrySchedule::create(o);
    ASSERT_FALSE(s) << expect;
    EXPECT_EQ(s.error().code, ErrorCode::kConfig);
    EXPECT_NE(s.error().message.find(expect), std::string::npos) << s.error().message;
  };
  rejected([](RetryOptions& o) { o.delays.clear(); }, "no delays");
  rejected([](RetryOptions& o) { o.delays[2] = 0s; }, "retry delay 3 is 0s");
  rejected([](RetryOptions& o) { o.delays[0] = -5s; }, "retry delay 1 is -5s");
  rejected([](RetryOptions& o) { o.delays[0] = std::chrono::days(366); }, "retry delay 1");
  rejected([](RetryOptions& o) { o.lifetime = 0s; }, "queue lifetime");
  rejected([](RetryOptions& o) { o.lifetime = std::chrono::days(400); }, "queue lifetime");
  rejected([](RetryOptions& o) { o.delay_notice_after = -1s; }, "delay notice");
  rejected([](RetryOptions& o) { o.delay_notice_after = std::chrono::days(400); }, "delay notice");
  rejected([](RetryOptions& o) { o.jitter = -0.1; }, "jitter");
  rejected([](RetryOptions& o) { o.jitter = 1.0; }, "jitter");
  rejected([](RetryOptions& o) { o.jitter = std::numeric_limits<double>::quiet_NaN(); }, "jitter");
}

TEST(RetryScheduleCreate, AcceptsEdges) {
  RetryOptions o;
  o.delays = {1s};
  o.lifetime = std::chrono::days(365);
  o.delay_notice_after = 0s;
  o.jitter = 0.99;
  EXPECT_TRUE(RetrySchedule::create(o));
}

// --- next_attempt ---------------------------------------------------------------------------

TEST(NextAttempt, DefaultScheduleThenRepeatsTheLast) {
  const RetrySchedule s;
  const TimePoint now = kArrival + 10s;
  EXPECT_EQ(s.next_attempt(kArrival, 0, now), now);  // never tried: now
  const std::vector<Seconds> expected = {1min, 5min, 15min, 30min, 1h, 2h, 4h, 4h, 4h};
  for (std::uint32_t a = 1; a <= expected.size(); ++a) {
    EXPECT_EQ(s.base_delay(a), expected[a - 1]) << a;
    EXPECT_EQ(s.next_attempt(kArrival, a, now), now + expected[a - 1]) << a;
  }
  EXPECT_EQ(s.base_delay(0), 0s);
  EXPECT_EQ(s.base_delay(1000000), 4h);
  EXPECT_EQ(s.base_delay(std::numeric_limits<std::uint32_t>::max()), 4h);
}

TEST(NextAttempt, NeverLaterThanExpirySoTheLastTryIsAtTheLifetime) {
  const RetrySchedule s;
  const TimePoint expiry = kArrival + std::chrono::days(5);
  EXPECT_EQ(s.next_attempt(kArrival, 20, expiry - 4h), expiry);  // exactly fits
  EXPECT_EQ(s.next_attempt(kArrival, 20, expiry - 4h - 1s), expiry - 1s);
  EXPECT_EQ(s.next_attempt(kArrival, 20, expiry - 1h), expiry);       // clamped
  EXPECT_EQ(s.next_attempt(kArrival, 20, expiry), expiry);            // at the end: now
  EXPECT_EQ(s.next_attempt(kArrival, 20, expiry + 1h), expiry + 1h);  // past it: now, never in the past
  EXPECT_EQ(s.next_attempt(kArrival, 0, expiry + 1h), expiry + 1h);
}

TEST(NextAttempt, JitterIsBoundedDeterministicAndSpreads) {
  RetryOptions o;
  o.jitter = 0.2;
  o.seed = 42;
  const RetrySchedule s = make(o);
  const RetrySchedule same = make(o);
  o.seed = 43;
  const RetrySchedule other = make(o);
  const TimePoint now = kArrival + 1h;
  std::set<TimePoint> seen;
  bool differs_by_seed = false;
  for (int m = 0; m < 200; ++m) {
    const TimePoint arrival = kArrival + std::chrono::milliseconds(m);
    for (std::uint32_t a = 1; a <= 8; ++a) {
      const TimePoint t = s.next_attempt(arrival, a, now);
      const Seconds base = s.base_delay(a);
      EXPECT_GE(t - now, base * 8 / 10 - 1s) << a;
      EXPECT_LE(t - now, base * 12 / 10 + 1s) << a;
      EXPECT_EQ(t, same.next_attempt(arrival, a, now));  // same seed, same answer
      differs_by_seed |= t != other.next_attempt(arrival, a, now);
      if (a == 5) seen.insert(t);
    }
  }
  EXPECT_TRUE(differs_by_seed);
  EXPECT_GT(seen.size(), 100u);  // messages deferred together do not all come back together
}

TEST(NextAttempt, JitterNeverBelowOneSecondNorPastExpiry) {
  RetryOptions o;
  o.delays = {1s};
  o.lifetime = 1h;
  o.jitter = 0.99;
  const RetrySchedule s = make(o);
  for (int m = 0; m < 100; ++m) {
    const TimePoint arrival = kArrival + std::chrono::milliseconds(m);
    const TimePoint now = arrival + 10min;
    EXPECT_GE(s.next_attempt(arrival, 3, now), now + 1s);
    EXPECT_LE(s.next_attempt(arrival, 3, arrival + 1h - 1s), arrival + 1h);
  }
}

// --- expired --------------------------------------------------------------------------------

TEST(Expired, ExactlyAtTheLifetime) {
  const RetrySchedule s;
  const TimePoint expiry = kArrival + std::chrono::days(5);
  EXPECT_FALSE(s.expired(kArrival, kArrival));
  EXPECT_FALSE(s.expired(kArrival, expiry - 1ns));
  EXPECT_TRUE(s.expired(kArrival, expiry));
  EXPECT_TRUE(s.expired(kArrival, expiry + std::chrono::days(100)));
  EXPECT_FALSE(s.expired(kArrival, kArrival - 1h));  // clock stepped back
}

// --- delay_notice_due -----------------------------------------------------------------------

TEST(DelayNotice, DueOnceAfterFourHours) {
  const RetrySchedule s;
  EXPECT_FALSE(s.delay_notice_due(kArrival, kArrival + 4h - 1s, false));
  EXPECT_TRUE(s.delay_notice_due(kArrival, kArrival + 4h, false));
  EXPECT_TRUE(s.delay_notice_due(kArrival, kArrival + std::chrono::days(2), false));
  EXPECT_FALSE(s.delay_notice_due(kArrival, kArrival + 4h, true));                     // once
  EXPECT_FALSE(s.delay_notice_due(kArrival, kArrival + std::chrono::days(5), false));  // expired: failure DSN instead
}

TEST(DelayNotice, DisabledWithZero) {
  RetryOptions o;
  o.delay_notice_after = 0s;
  const RetrySchedule s = make(o);
  EXPECT_FALSE(s.delay_notice_due(kArrival, kArrival, false));
  EXPECT_FALSE(s.delay_notice_due(kArrival, kArrival + std::chrono::days(1), false));
}

TEST(DelayNotice, NeverWhenLongerThanTheLifetime) {
  RetryOptions o;
  o.lifetime = 2h;
  o.delay_notice_after = 4h;
  const RetrySchedule s = make(o);
  EXPECT_FALSE(s.delay_notice_due(kArrival, kArrival + 3h, false));
  EXPECT_FALSE(s.delay_notice_due(kArrival, kArrival + 5h, false));
}

}  // namespace
}  // namespace bridgehead::queue
