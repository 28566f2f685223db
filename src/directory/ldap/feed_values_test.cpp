// The pure values of the change feeds: UUID and GUID text, uSNChanged positions,
// GeneralizedTime parsing and formatting.
#include <gtest/gtest.h>

#include "directory/ldap/change_feed.hpp"
#include "directory/ldap/content_sync.hpp"

namespace bridgehead::directory::ldap {
namespace {

using namespace std::chrono;

const std::string kOctets = std::string("\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\xcc\xdd\xee\xff", 16);

TEST(UuidText, SixteenOctetsInOrderAsSlapdShowsEntryUuid) {
  EXPECT_EQ(uuid_text(kOctets), "00112233-4455-6677-8899-aabbccddeeff");
  EXPECT_EQ(uuid_text("short"), std::nullopt);
  EXPECT_EQ(uuid_text(kOctets + "x"), std::nullopt);
}

TEST(WindowsGuidText, FirstThreeGroupsAreLittleEndian) {
  EXPECT_EQ(windows_guid_text(kOctets), "33221100-5544-7766-8899-aabbccddeeff");
  EXPECT_EQ(windows_guid_text(""), std::nullopt);
}

TEST(UsnPosition, TextRoundTripsAndBadTextIsRefusedWithTheRemedy) {
  UsnPosition p{"33221100-5544-7766-8899-aabbccddeeff", 123456789012ULL};
  EXPECT_EQ(p.text(), "33221100-5544-7766-8899-aabbccddeeff/123456789012");
  auto back = UsnPosition::parse(p.text());
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(*back, p);
  for (const char* bad : {"", "no-slash", "33221100-5544-7766-8899-aabbccddeeff/", "x/12",
                          "33221100-5544-7766-8899-aabbccddeeff/-1", "33221100-5544-7766-8899-aabbccddeeff/1x"}) {
    auto r = UsnPosition::parse(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, ErrorCode::kParse);
    EXPECT_NE(r.error().remedy.find("full run"), std::string::npos);
  }
}

TEST(GeneralizedTime, ParsesTheFormsDirectoriesWrite) {
  const sys_seconds t = sys_days(2026y / December / 4) + 0h + 46min + 23s;
  EXPECT_EQ(parse_generalized_time("20261204004623Z").value(), t);
  EXPECT_EQ(parse_generalized_time("20261204004623.123Z").value(), t);  // fraction dropped
  EXPECT_EQ(parse_generalized_time("20261204004623,5Z").value(), t);
  EXPECT_EQ(parse_generalized_time("20261204014623+0100").value(), t);
  EXPECT_EQ(parse_generalized_time("20261203234623-01").value(), t);
  EXPECT_EQ(parse_generalized_time("202612040046Z").value(), t - 23s);
  EXPECT_EQ(parse_generalized_time("2026120400Z").value(), t - 46min - 23s);
  EXPECT_EQ(parse_generalized_time("20240229120000Z").value(), sys_days(2024y / February / 29) + 12h);
}

TEST(GeneralizedTime, RefusesWhatIsNotOneNamingTheProblem) {
  const std::pair<const char*, const char*> cases[] = {
      {"", "YYYYMMDDHH"},
      {"2026120400", "time zone"},
      {"20261204004623", "time zone"},
      {"20261204004623X", "time zone"},
      {"20261304004623Z", "date"},
      {"20230229120000Z", "date"},
      {"20261204254623Z", "time of day"},
      {"20261204004623.Z", "fraction"},
      {"20261204004623Zjunk", "after"},
      {"20261204004623+2500", "offset"},
  };
  for (const auto& [text, why] : cases) {
    auto r = parse_generalized_time(text);
    ASSERT_FALSE(r) << text;
    EXPECT_EQ(r.error().code, ErrorCode::kParse);
    EXPECT_NE(r.error().message.find(why), std::string::npos) << text << ": " << r.error().message;
  }
}

TEST(GeneralizedTime, FormatsAsYYYYMMDDHHMMSSZAndRoundTrips) {
  const sys_seconds t = sys_days(2026y / January / 2) + 3h + 4min + 5s;
  EXPECT_EQ(format_generalized_time(t), "20260102030405Z");
  EXPECT_EQ(parse_generalized_time(format_generalized_time(t)).value(), t);
  EXPECT_EQ(format_generalized_time(sys_days(1999y / December / 31) + 23h + 59min + 59s), "19991231235959Z");
}

}  // namespace
}  // namespace bridgehead::directory::ldap
