#include "directory/ldap/attribute_range.hpp"

#include <gtest/gtest.h>

namespace bridgehead::directory::ldap {
namespace {

std::vector<std::string> numbered(const std::string& prefix, int from, int to) {
  std::vector<std::string> out;
  for (int i = from; i <= to; ++i) out.push_back(prefix + std::to_string(i));
  return out;
}

TEST(AttributeRange, PlainDescriptionsHaveNoRange) {
  for (std::string_view d : {"member", "member;binary", "userCertificate;binary", "cn;lang-de"}) {
    auto r = parse_attribute_range(d);
    ASSERT_TRUE(r) << d;
    EXPECT_FALSE(*r) << d;
  }
}

TEST(AttributeRange, ParsesAdForms) {
  auto r = parse_attribute_range("member;range=0-1499");
  ASSERT_TRUE(r && *r);
  EXPECT_EQ((*r)->attribute, "member");
  EXPECT_EQ((*r)->first, 0u);
  EXPECT_EQ((*r)->last, 1499u);

  r = parse_attribute_range("member;Range=1500-*");
  ASSERT_TRUE(r && *r);
  EXPECT_EQ((*r)->attribute, "member");
  EXPECT_EQ((*r)->first, 1500u);
  EXPECT_FALSE((*r)->last);

  // Other options stay with the attribute, whichever side of the range they are on.
  r = parse_attribute_range("member;binary;range=3-4");
  ASSERT_TRUE(r && *r);
  EXPECT_EQ((*r)->attribute, "member;binary");
  r = parse_attribute_range("member;range=3-4;binary");
  ASSERT_TRUE(r && *r);
  EXPECT_EQ((*r)->attribute, "member;binary");
}

TEST(AttributeRange, MalformedRangesAreParseErrorsNamingTheDescription) {
  for (std::string_view d : {"member;range=", "member;range=5", "member;range=5-2", "member;range=a-*",
                             "member;range=0-b", "member;range=-5", "member;range=0-99999999999999999999",
                             "member;range=0-1;range=2-3", ";range=0-1", "member;range=0x1-2"}) {
    auto r = parse_attribute_range(d);
    ASSERT_FALSE(r) << d;
    EXPECT_EQ(r.error().code, ErrorCode::kParse) << d;
    EXPECT_NE(r.error().message.find(std::string(d)), std::string::npos) << r.error().message;
  }
}

TEST(AttributeRange, RequestAsksFromAnIndexToTheEnd) {
  EXPECT_EQ(range_request("member", 1500), "member;range=1500-*");
  EXPECT_EQ((RangeContinuation{"member", 3000}.request()), "member;range=3000-*");
}

TEST(AttributeRange, FoldRenamesAndReturnsWhatContinues) {
  Entry e("cn=Big,dc=acme,dc=example");
  e.set("cn", {"Big"});
  e.set("member;range=0-1499", numbered("cn=u", 0, 1499));
  e.set("proxyAddresses;range=0-*", {"SMTP:big@acme.example"});
  auto pending = fold_ranged_attributes(e);
  ASSERT_TRUE(pending) << pending.error().describe();
  ASSERT_EQ(pending->size(), 1u);
  EXPECT_EQ((*pending)[0], (RangeContinuation{"member", 1500}));
  ASSERT_TRUE(e.has("member"));
  EXPECT_EQ(e.find("member")->size(), 1500u);
  EXPECT_FALSE(e.has("member;range=0-1499"));
  EXPECT_EQ(e.first("proxyAddresses"), "SMTP:big@acme.example");
  EXPECT_FALSE(e.has("proxyAddresses;range=0-*"));
}

TEST(AttributeRange, FoldRejectsInconsistentFirstReplies) {
  Entry late("cn=x");
  late.set("member;range=5-9", numbered("v", 5, 9));
  EXPECT_FALSE(fold_ranged_attributes(late));

  Entry both("cn=x");
  both.set("member", {"a"});
  both.set("member;range=0-0", {"b"});
  EXPECT_FALSE(fold_ranged_attributes(both));

  Entry short_reply("cn=x");
  short_reply.set("member;range=0-9", numbered("v", 0, 4));
  auto r = fold_ranged_attributes(short_reply);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("reply has 5"), std::string::npos) << r.error().message;
}

TEST(AttributeRange, ContinuationCollectsEveryValueInOrder) {
  // 3,200 values in AD's 1,500 steps: 0-1499, 1500-2999, 3000-*.
  Entry e("cn=Big");
  e.set("member;range=0-1499", numbered("v", 0, 1499));
  auto pending = fold_ranged_attributes(e);
  ASSERT_TRUE(pending && pending->size() == 1);
  RangeContinuation next = (*pending)[0];

  Entry r1("cn=Big");
  r1.set("member;range=1500-2999", numbered("v", 1500, 2999));
  auto step = apply_range_reply(e, next, r1);
  ASSERT_TRUE(step) << step.error().describe();
  ASSERT_TRUE(*step);
  EXPECT_EQ(**step, (RangeContinuation{"member", 3000}));
  EXPECT_EQ((*step)->request(), "member;range=3000-*");

  Entry r2("cn=Big");
  r2.set("member;range=3000-*", numbered("v", 3000, 3199));
  step = apply_range_reply(e, **step, r2);
  ASSERT_TRUE(step) << step.error().describe();
  EXPECT_FALSE(*step);
  EXPECT_EQ(*e.find("member"), numbered("v", 0, 3199));
}

TEST(AttributeRange, ContinuationRejectsGapsOverlapsAndOddReplies) {
  Entry e("cn=Big");
  e.set("member", numbered("v", 0, 1499));
  RangeContinuation next{"member", 1500};

  Entry gap("cn=Big");
  gap.set("member;range=1600-*", {"x"});
  auto r = apply_range_reply(e, next, gap);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("starts at 1600"), std::string::npos) << r.error().message;

  Entry overlap("cn=Big");
  overlap.set("member;range=1400-*", {"x"});
  EXPECT_FALSE(apply_range_reply(e, next, overlap));

  Entry unranged("cn=Big");
  unranged.set("member", {"x"});
  EXPECT_FALSE(apply_range_reply(e, next, unranged));

  Entry missing("cn=Big");
  missing.set("cn", {"Big"});
  EXPECT_FALSE(apply_range_reply(e, next, missing));

  Entry miscounted("cn=Big");
  miscounted.set("member;range=1500-2999", {"x", "y"});
  EXPECT_FALSE(apply_range_reply(e, next, miscounted));
  EXPECT_EQ(e.find("member")->size(), 1500u + 2u);  // appended before the count was checked
}

}  // namespace
}  // namespace bridgehead::directory::ldap
