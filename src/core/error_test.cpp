#include "core/error.hpp"

#include <cerrno>

#include <gtest/gtest.h>

#include "core/expected.hpp"

namespace bridgehead {
namespace {

TEST(Error, DiskFullFromErrnoIsTransientWithRemedy) {
  Error e = Error::from_errno(ENOSPC, "write /spool/seg-1");
  EXPECT_EQ(e.code, ErrorCode::kDiskFull);
  EXPECT_TRUE(e.transient());
  EXPECT_NE(e.message.find("/spool/seg-1"), std::string::npos);
  EXPECT_NE(e.describe().find("free disk space"), std::string::npos);
}

TEST(Error, PermissionErrorsNameTheRemedy) {
  Error e = Error::from_errno(EACCES, "open /x");
  EXPECT_EQ(e.code, ErrorCode::kPermission);
  EXPECT_NE(e.remedy.find("mode"), std::string::npos);
}

TEST(Expected, FailCarriesTheError) {
  auto f = []() -> Expected<int> { return fail(Error::permanent(ErrorCode::kParse, "bad")); };
  auto r = f();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kParse);
  EXPECT_FALSE(r.error().transient());
  EXPECT_EQ(r.error().describe(), "bad");
}

TEST(Error, CodeNamesRoundTrip) {
  for (int c = 0; c <= static_cast<int>(ErrorCode::kInternal); ++c) {
    const auto code = static_cast<ErrorCode>(c);
    auto back = error_code_from_string(to_string(code));
    ASSERT_TRUE(back.has_value()) << to_string(code);
    EXPECT_EQ(*back, code);
  }
  EXPECT_FALSE(error_code_from_string("no-such-code").has_value());
}

}  // namespace
}  // namespace bridgehead
