#include "core/duration.hpp"

#include <gtest/gtest.h>

namespace bridgehead {
namespace {

TEST(FormatDuration, LargestUnitThatDividesIt) {
  EXPECT_EQ(format_duration(std::chrono::days(5)), "5d");
  EXPECT_EQ(format_duration(std::chrono::hours(4)), "4h");
  EXPECT_EQ(format_duration(std::chrono::hours(36)), "36h");
  EXPECT_EQ(format_duration(std::chrono::minutes(90)), "90m");
  EXPECT_EQ(format_duration(std::chrono::seconds(90)), "90s");
  EXPECT_EQ(format_duration(std::chrono::seconds(0)), "0s");
}

TEST(FormatDuration, WhatIsFormattedParsesBackToTheSameValue) {
  for (const Seconds d : {Seconds(1), Seconds(59), Seconds(60), Seconds(61), Seconds(3600), Seconds(86399),
                          Seconds(86400), Seconds(7 * 86400), kMaxDuration}) {
    auto back = parse_duration(format_duration(d));
    ASSERT_TRUE(back) << format_duration(d);
    EXPECT_EQ(*back, d);
  }
  const std::vector<Seconds> list = {std::chrono::minutes(1), std::chrono::minutes(5), std::chrono::hours(4),
                                     Seconds(45)};
  EXPECT_EQ(format_delay_list(list), "1m,5m,4h,45s");
  EXPECT_EQ(parse_delay_list(format_delay_list(list)).value(), list);
}

}  // namespace
}  // namespace bridgehead
