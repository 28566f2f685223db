#include "directory/addressbook/address_book.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <thread>

#include <fmt/format.h>

#include "directory/addressbook/address_book_holder.hpp"

namespace bridgehead::directory {
namespace {

Recipient person(std::string id, std::string system, std::vector<std::string> smtp,
                 RecipientKind kind = RecipientKind::kPerson) {
  Recipient r;
  r.id = std::move(id);
  r.system = std::move(system);
  r.kind = kind;
  r.display_name = "Name of " + r.id;
  for (auto& a : smtp) r.forms.push_back({FormKind::kSmtp, std::move(a)});
  r.routing_address = r.forms.front().value;
  return r;
}

BuildResult build(std::vector<Recipient> recipients) {
  AddressBookBuilder b;
  for (auto& r : recipients) {
    auto added = b.add(std::move(r));
    EXPECT_TRUE(added) << added.error().describe();
  }
  auto built = std::move(b).build();
  EXPECT_TRUE(built) << built.error().describe();
  return std::move(*built);
}

TEST(AddressBook, FindsEveryFormIgnoringAsciiCase) {
  Recipient john = person("u1", "notes", {"John.Doe@Acme.Example"});
  john.forms.push_back({FormKind::kNotesCanonical, "CN=John Doe/OU=Sales/O=Acme"});
  john.forms.push_back({FormKind::kNotesAbbreviated, "John Doe/Sales/Acme"});
  john.forms.push_back({FormKind::kShortName, "jdoe"});
  john.hidden = true;
  auto [book, collisions] = build({john, person("g1", "exchange", {"ann@acme.example"})});
  EXPECT_TRUE(collisions.empty());
  ASSERT_EQ(book->size(), 2u);
  EXPECT_EQ(book->form_count(), 5u);
  for (const char* form : {"john.doe@acme.example", "JOHN.DOE@ACME.EXAMPLE", "cn=john doe/ou=sales/o=acme",
                           "John Doe/Sales/Acme", "JDOE"}) {
    auto hit = book->find(form);
    ASSERT_TRUE(hit) << form;
    EXPECT_EQ(hit->recipient.id, "u1");
    EXPECT_EQ(hit->recipient.system, "notes");
    EXPECT_EQ(hit->recipient.routing_address, "John.Doe@Acme.Example");
    EXPECT_EQ(hit->recipient.display_name, "Name of u1");
    EXPECT_TRUE(hit->recipient.hidden);
  }
  EXPECT_EQ(book->find("jdoe")->form.kind, FormKind::kShortName);
  EXPECT_EQ(book->find("JOHN.DOE@acme.example")->form.value, "John.Doe@Acme.Example");
  EXPECT_EQ(book->find("ANN@acme.example")->recipient.system, "exchange");
  for (const char* miss : {"john.doe@acme.exampl", "john.doe@acme.example ", "", "jdo", "ann@acme.example.org"}) {
    EXPECT_FALSE(book->find(miss)) << miss;
  }
}

TEST(AddressBook, CaseFoldingIsAsciiOnly) {
  auto [book, collisions] = build({person("u1", "notes", {"jürgen@acme.example"})});
  EXPECT_TRUE(book->find("JÜRGEN@acme.example") == std::nullopt);  // Ü is not ü in ASCII
  EXPECT_TRUE(book->find("jüRGEN@ACME.example"));
  // '@' and '[' sit beside 'A' and 'Z': folding must not touch them.
  auto [edge, none] = build({person("u2", "notes", {"[x]@a.example"})});
  EXPECT_FALSE(edge->find("{x}@a.example"));
  EXPECT_FALSE(edge->find("[x]`a.example"));
  EXPECT_TRUE(edge->find("[X]@A.EXAMPLE"));
}

TEST(AddressBook, EmptyBookFindsNothing) {
  AddressBook empty;
  EXPECT_EQ(empty.size(), 0u);
  EXPECT_FALSE(empty.find("a@b.example"));
  auto [built, collisions] = build({});
  EXPECT_EQ(built->size(), 0u);
  EXPECT_FALSE(built->find("a@b.example"));
}

TEST(AddressBookBuilder, APersonBeatsAContactWhateverTheOrder) {
  const Recipient contact =
      person("c1", "exchange", {"carol@acme.example", "carol.contact@acme.example"}, RecipientKind::kContact);
  const Recipient mailbox = person("zz", "notes", {"Carol@acme.example"});
  for (bool contact_first : {true, false}) {
    auto [book, collisions] = contact_first ? build({contact, mailbox}) : build({mailbox, contact});
    EXPECT_EQ(book->find("carol@acme.example")->recipient.id, "zz");
    EXPECT_EQ(book->find("carol.contact@acme.example")->recipient.id, "c1");  // its other form stays
    ASSERT_EQ(collisions.size(), 1u);
    const Collision& c = collisions[0];
    EXPECT_EQ(c.form, "Carol@acme.example");
    EXPECT_EQ(c.winner_id, "zz");
    EXPECT_EQ(c.loser_id, "c1");
    EXPECT_EQ(c.describe(),
              "form 'Carol@acme.example': kept for zz (notes), not c1 (exchange): a person comes before a contact");
    // The loser no longer lists the form it lost, so every listed form finds its owner.
    const auto forms = book->forms(book->find("carol.contact@acme.example")->recipient.index);
    ASSERT_EQ(forms.size(), 1u);
  }
}

TEST(AddressBookBuilder, OtherwiseTheLowerSystemAndIdWinsWhateverTheOrder) {
  const Recipient a = person("b-id", "exchange", {"shared@acme.example", "a@acme.example"});
  const Recipient b = person("a-id", "notes", {"shared@acme.example", "b@acme.example"});
  const Recipient c = person("a-id", "exchange", {"SHARED@acme.example", "c@acme.example"});
  const std::vector<std::vector<Recipient>> orders = {{a, b, c}, {c, b, a}, {b, c, a}};
  for (const auto& order : orders) {
    auto [book, collisions] = build(order);
    EXPECT_EQ(book->find("shared@acme.example")->recipient.id, "a-id");
    EXPECT_EQ(book->find("shared@acme.example")->recipient.system, "exchange");
    ASSERT_EQ(collisions.size(), 2u);
    for (const auto& col : collisions) {
      EXPECT_EQ(col.winner_id, "a-id");
      EXPECT_EQ(col.winner_system, "exchange");
      EXPECT_EQ(col.rule, "the lower (system, id) comes first");
    }
    EXPECT_EQ(book->size(), 3u);
  }
}

TEST(AddressBookBuilder, SameIdTwiceKeepsTheFirstAndARecipientWithoutFormsIsLeftOut) {
  auto [book, collisions] =
      build({person("u1", "notes", {"first@acme.example"}), person("u1", "notes", {"second@acme.example"}),
             person("u2", "notes", {"FIRST@acme.example"})});
  EXPECT_TRUE(book->find("first@acme.example"));
  EXPECT_FALSE(book->find("second@acme.example"));
  EXPECT_EQ(book->size(), 1u);  // u2 lost its only form
  ASSERT_EQ(collisions.size(), 2u);
  EXPECT_NE(collisions[0].rule.find("same id twice"), std::string::npos);
  EXPECT_EQ(collisions[1].loser_id, "u2");
}

TEST(AddressBookBuilder, RefusesWhatTheBookCannotHold) {
  AddressBookBuilder b;
  Recipient r = person("u1", "notes", {"a@acme.example"});
  r.forms.push_back({FormKind::kSmtp, "no-at-sign"});
  auto added = b.add(r);
  ASSERT_FALSE(added);
  EXPECT_NE(added.error().message.find("'no-at-sign'"), std::string::npos) << added.error().message;
  EXPECT_EQ(b.size(), 0u);
}

TEST(AddressBook, ToRecipientGivesBackWhatWentIn) {
  Recipient r = person("u1", "notes", {"a@acme.example", "b@acme.example"}, RecipientKind::kMailInDatabase);
  r.forms.push_back({FormKind::kX500, "/o=Acme/cn=u1"});
  r.routing_address = "elsewhere@acme.example";
  r.hidden = true;
  auto [book, collisions] = build({r});
  EXPECT_EQ(book->to_recipient(0), r);
  EXPECT_GT(book->memory_bytes(), 0u);
}

TEST(AddressBook, TenThousandRecipientsAreAllFound) {
  std::vector<Recipient> many;
  for (int i = 0; i < 10000; ++i) {
    Recipient r = person(fmt::format("id{}", i), i % 2 ? "notes" : "exchange", {fmt::format("user{}@acme.example", i)});
    r.forms.push_back({FormKind::kNickname, fmt::format("user{}", i)});
    many.push_back(std::move(r));
  }
  auto [book, collisions] = build(many);
  EXPECT_TRUE(collisions.empty());
  for (int i = 0; i < 10000; ++i) {
    auto hit = book->find(fmt::format("USER{}@ACME.EXAMPLE", i));
    ASSERT_TRUE(hit) << i;
    EXPECT_EQ(hit->recipient.id, fmt::format("id{}", i));
    EXPECT_EQ(book->find(fmt::format("user{}", i))->recipient.id, fmt::format("id{}", i));
    EXPECT_FALSE(book->find(fmt::format("user{}@acme.example.org", i)));
  }
}

TEST(AddressBookHolder, ReadersKeepTheirSnapshotWhileANewOneIsPublished) {
  AddressBookHolder holder;
  EXPECT_EQ(holder.current()->size(), 0u);
  auto first = build({person("u1", "notes", {"gone@acme.example"})}).book;
  holder.publish(first);
  auto reader = holder.current();
  holder.publish(build({person("u2", "notes", {"new@acme.example"})}).book);
  first.reset();
  EXPECT_TRUE(reader->find("gone@acme.example"));  // still valid: the reader holds it
  EXPECT_FALSE(holder.current()->find("gone@acme.example"));
  EXPECT_TRUE(holder.current()->find("new@acme.example"));
}

TEST(AddressBookHolder, ConcurrentReadersAlwaysSeeAWholeBook) {
  AddressBookHolder holder(build({person("u0", "notes", {"x0@acme.example"})}).book);
  std::atomic<bool> stop{false};
  std::atomic<int> torn{0};
  std::thread reader([&] {
    while (!stop.load()) {
      auto book = holder.current();
      // Every published book has exactly one recipient, found by its one form.
      if (book->size() != 1 || !book->find(book->forms(0)[0].value)) ++torn;
    }
  });
  for (int i = 1; i < 300; ++i)
    holder.publish(build({person(fmt::format("u{}", i), "notes", {fmt::format("x{}@acme.example", i)})}).book);
  stop = true;
  reader.join();
  EXPECT_EQ(torn.load(), 0);
  EXPECT_TRUE(holder.current()->find("x299@acme.example"));
}

}  // namespace
}  // namespace bridgehead::directory
