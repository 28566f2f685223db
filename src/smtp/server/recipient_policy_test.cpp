#include "smtp/server/recipient_policy.hpp"

#include <gtest/gtest.h>

namespace bridgehead::smtp {
namespace {

StaticRecipientPolicy policy() {
  return StaticRecipientPolicy({{"exchange", {"exchange.example"}, {"alice@exchange.example"}},
                                {"notes", {"notes.example", "Sales.Notes.Example"}, {"bob@notes.example"}}});
}

TEST(RecipientPolicy, AcceptsKnownRecipientsOfTheOtherSystemInAnyCase) {
  auto p = policy();
  auto check = p.for_ingress("exchange");
  EXPECT_EQ(check("bob@notes.example"), std::nullopt);
  EXPECT_EQ(check("BOB@Notes.Example"), std::nullopt);
}

TEST(RecipientPolicy, UnknownUserOfAServedDomainIs550_5_1_1) {
  auto p = policy();
  auto r = p.for_ingress("exchange")("nobody@notes.example");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->code, 550);
  EXPECT_EQ(r->enhanced, "5.1.1");
}

TEST(RecipientPolicy, ForeignDomainsAndTheIngressOwnDomainAreRelayDenied) {
  auto p = policy();
  auto check = p.for_ingress("exchange");
  for (const char* a : {"victim@elsewhere.example", "alice@exchange.example", "x@[127.0.0.1]", "noatsign"}) {
    auto r = check(a);
    ASSERT_TRUE(r) << a;
    EXPECT_EQ(r->code, 554) << a;
    EXPECT_EQ(r->enhanced, "5.7.1") << a;
  }
  EXPECT_EQ(p.system_of("x@sales.notes.example"), "notes");
}

}  // namespace
}  // namespace bridgehead::smtp
