#include "smtp/server/recipient_policy.hpp"

#include <gtest/gtest.h>

#include "directory/addressbook/address_book.hpp"

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

std::shared_ptr<const directory::AddressBook> book(std::vector<std::pair<std::string, std::string>> smtp) {
  directory::AddressBookBuilder b;
  int n = 0;
  for (auto& [address, system] : smtp) {
    directory::Recipient r;
    r.id = "id" + std::to_string(n++);
    r.system = system;
    r.forms = {{directory::FormKind::kSmtp, address}, {directory::FormKind::kNickname, "nick" + r.id}};
    r.routing_address = address;
    EXPECT_TRUE(b.add(std::move(r)));
  }
  return std::move(b).build()->book;
}

TEST(RecipientPolicy, BookRecipientsOfTheOtherSystemAreAcceptedInAnyCase) {
  directory::AddressBookHolder holder(book({{"zoe@notes.example", "notes"}, {"Yann@Exchange.Example", "exchange"}}));
  StaticRecipientPolicy p(
      {{"exchange", {"exchange.example"}, {"alice@exchange.example"}}, {"notes", {"notes.example"}, {}}}, &holder);
  EXPECT_EQ(p.for_ingress("exchange")("ZOE@notes.example"), std::nullopt);
  EXPECT_EQ(p.for_ingress("notes")("yann@exchange.example"), std::nullopt);
  // The static list still counts where the book does not know the address.
  EXPECT_EQ(p.for_ingress("notes")("alice@exchange.example"), std::nullopt);
  auto unknown = p.for_ingress("exchange")("nobody@notes.example");
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->code, 550);
  EXPECT_EQ(unknown->enhanced, "5.1.1");
}

TEST(RecipientPolicy, TheBookDecidesTheHomeSystemOfASharedDomain) {
  directory::AddressBookHolder holder(book({{"zoe@acme.example", "notes"}, {"yann@acme.example", "exchange"}}));
  StaticRecipientPolicy p({{"exchange", {"exchange.example"}, {}}, {"notes", {"notes.example"}, {}}}, &holder);
  auto from_exchange = p.for_ingress("exchange");
  EXPECT_EQ(from_exchange("zoe@acme.example"), std::nullopt);
  auto own = from_exchange("yann@acme.example");  // back to where it came from: never
  ASSERT_TRUE(own);
  EXPECT_EQ(own->code, 554);
  EXPECT_EQ(own->enhanced, "5.7.1");
  EXPECT_NE(own->text.find("a recipient of exchange"), std::string::npos) << own->text;
  // Not an SMTP form: a nickname is no address, whatever a client sends.
  EXPECT_EQ(from_exchange("nickid0")->code, 554);
}

TEST(RecipientPolicy, ABookRecipientOfAnUnknownSystemIsNotInTheBook) {
  directory::AddressBookHolder holder(book({{"zoe@notes.example", "lotus"}}));
  StaticRecipientPolicy p({{"exchange", {"exchange.example"}, {}}, {"notes", {"notes.example"}, {}}}, &holder);
  EXPECT_EQ(p.for_ingress("exchange")("zoe@notes.example")->code, 550);
}

TEST(RecipientPolicy, ARecipientDeletedFromTheDirectoryIsRefusedOnceTheNewBookIsPublished) {
  directory::AddressBookHolder holder(book({{"zoe@notes.example", "notes"}, {"carl@notes.example", "notes"}}));
  StaticRecipientPolicy p({{"exchange", {"exchange.example"}, {}}, {"notes", {"notes.example"}, {}}}, &holder);
  auto check = p.for_ingress("exchange");  // made once, as a listener does
  EXPECT_EQ(check("zoe@notes.example"), std::nullopt);
  holder.publish(book({{"carl@notes.example", "notes"}}));  // the sync ran: zoe is gone
  auto gone = check("zoe@notes.example");
  ASSERT_TRUE(gone);
  EXPECT_EQ(gone->code, 550);
  EXPECT_EQ(gone->enhanced, "5.1.1");
  EXPECT_EQ(check("carl@notes.example"), std::nullopt);
}

}  // namespace
}  // namespace bridgehead::smtp
