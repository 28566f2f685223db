#include "directory/mapping/default_rules.hpp"

#include <string>

#include <gtest/gtest.h>

#include "directory/mapping/test_support.hpp"

namespace bridgehead::directory::mapping {
namespace {

RuleSet must_parse_set(const std::vector<RuleSource>& rules, const Known& known) {
  auto set = RuleSet::parse(rules, known);
  if (!set) {
    for (const auto& p : set.error()) ADD_FAILURE() << p.describe();
    return RuleSet();
  }
  return std::move(*set);
}

Context run_context(std::string routing_domain) {
  Context c = test::context();
  c.set("routing_domain", std::move(routing_domain));
  return c;
}

directory::Entry domino_person() {
  return test::entry_of("CN=John Doe,OU=Sales,O=Acme", {{"objectClass", "dominoPerson"},
                                                        {"cn", "John Doe"},
                                                        {"cn", "jdoe"},
                                                        {"sn", "Doe"},
                                                        {"givenName", "John"},
                                                        {"uid", "jdoe"},
                                                        {"mail", "John.Doe@acme.com"}});
}

directory::Entry exchange_user() {
  return test::entry_of("CN=John Doe,OU=Users,DC=acme,DC=com", {{"objectClass", "user"},
                                                                {"cn", "John Doe"},
                                                                {"givenName", "John"},
                                                                {"initials", "Q"},
                                                                {"sn", "Doe"},
                                                                {"displayName", "John Doe (Sales)"},
                                                                {"mailNickname", "jdoe"},
                                                                {"mail", "John.Doe@acme.com"}});
}

TEST(MappingDefaults, DominoPersonBecomesAnAdContact) {
  const auto set = must_parse_set(domino_person_to_ad_contact(), domino_person_known());
  const auto mapped = set.apply(domino_person(), run_context("notes.acme.com"));
  const auto expected = test::entry_of("", {{"targetAddress", "SMTP:jdoe@notes.acme.com"},
                                            {"proxyAddresses", "NOTES:John Doe/Sales/Acme@AcmeMail"},
                                            {"proxyAddresses", "smtp:John.Doe@acme.com"},
                                            {"mailNickname", "jdoe"},
                                            {"displayName", "John Doe"},
                                            {"givenName", "John"},
                                            {"sn", "Doe"},
                                            {"mail", "John.Doe@acme.com"}});
  EXPECT_EQ(mapped.entry, expected);
  EXPECT_TRUE(mapped.problems.empty()) << mapped.problems.front().describe();
}

TEST(MappingDefaults, ADominoPersonWithLessDataStillMaps) {
  const auto set = must_parse_set(domino_person_to_ad_contact(), domino_person_known());
  const auto e = test::entry_of("cn=Jane Roe,o=Acme", {{"cn", "Jane Roe"}, {"shortName", "jroe"}});
  const auto mapped = set.apply(e, run_context("notes.acme.com"));
  const auto expected = test::entry_of("", {{"targetAddress", "SMTP:jroe@notes.acme.com"},
                                            {"proxyAddresses", "NOTES:Jane Roe/Acme@AcmeMail"},
                                            {"mailNickname", "jroe"},
                                            {"displayName", "Jane Roe"},
                                            {"givenName", "Jane"},
                                            {"sn", "Roe"}});
  EXPECT_EQ(mapped.entry, expected);
  EXPECT_TRUE(mapped.problems.empty()) << mapped.problems.front().describe();
}

TEST(MappingDefaults, AFlatNotesNameIsAProblemNotAStop) {
  const auto set = must_parse_set(domino_person_to_ad_contact(), domino_person_known());
  const auto e = test::entry_of("cn=Flat User", {{"cn", "Flat User"}, {"uid", "flat"}, {"mail", "flat@acme.com"}});
  const auto mapped = set.apply(e, run_context("notes.acme.com"));
  ASSERT_NE(mapped.entry.find("proxyAddresses"), nullptr);
  EXPECT_EQ(*mapped.entry.find("proxyAddresses"), std::vector<std::string>{"smtp:flat@acme.com"});
  EXPECT_EQ(mapped.entry.first("targetAddress"), "SMTP:flat@notes.acme.com");
  ASSERT_EQ(mapped.problems.size(), 1u);
  EXPECT_EQ(mapped.problems[0].target, "proxyAddresses");
  EXPECT_NE(mapped.problems[0].message.find("notes_abbrev: cannot use 'cn=Flat User'"), std::string::npos)
      << mapped.problems[0].message;
}

TEST(MappingDefaults, ExchangeUserBecomesADominoPerson) {
  const auto set = must_parse_set(exchange_user_to_domino_person(), exchange_user_known());
  const auto mapped = set.apply(exchange_user(), run_context("exchange.acme.com"));
  const auto expected = test::entry_of("", {{"mailAddress", "jdoe@exchange.acme.com"},
                                            {"fullName", "John Doe"},
                                            {"cn", "John Doe"},
                                            {"sn", "Doe"},
                                            {"givenName", "John"},
                                            {"mail", "John.Doe@acme.com"}});
  EXPECT_EQ(mapped.entry, expected);
  EXPECT_TRUE(mapped.problems.empty()) << mapped.problems.front().describe();
}

TEST(MappingDefaults, ADominoGroupBecomesAnAdContactThatRoutesToNotes) {
  const auto set = must_parse_set(domino_group_to_ad_contact(), domino_person_known());
  const auto e = test::entry_of("cn=Sales Team,o=Acme", {{"objectClass", "dominoGroup"},
                                                         {"cn", "Sales Team"},
                                                         {"mail", "sales@acme.com"},
                                                         {"mail", "vertrieb@acme.com"},
                                                         {"member", "cn=John Doe,ou=Sales,o=Acme"}});
  const auto mapped = set.apply(e, run_context("notes.acme.com"));
  const auto expected = test::entry_of("", {{"targetAddress", "SMTP:sales@acme.com"},
                                            {"proxyAddresses", "NOTES:Sales Team@AcmeMail"},
                                            {"proxyAddresses", "smtp:sales@acme.com"},
                                            {"proxyAddresses", "smtp:vertrieb@acme.com"},
                                            {"mailNickname", "SalesTeam"},
                                            {"displayName", "Sales Team"},
                                            {"sn", "Sales Team"},
                                            {"mail", "sales@acme.com"}});
  EXPECT_EQ(mapped.entry, expected);
  EXPECT_TRUE(mapped.problems.empty()) << mapped.problems.front().describe();
}

TEST(MappingDefaults, AnExchangeGroupBecomesADominoPersonThatForwardsToExchange) {
  const auto set = must_parse_set(exchange_group_to_domino_person(), exchange_user_known());
  const auto e = test::entry_of("CN=All Staff,OU=Groups,DC=acme,DC=com", {{"objectClass", "group"},
                                                                          {"cn", "All Staff"},
                                                                          {"displayName", "All Staff (HQ)"},
                                                                          {"mailNickname", "allstaff"},
                                                                          {"mail", "allstaff@acme.com"}});
  const auto mapped = set.apply(e, run_context("exchange.acme.com"));
  const auto expected = test::entry_of("", {{"mailAddress", "allstaff@exchange.acme.com"},
                                            {"fullName", "All Staff (HQ)"},
                                            {"cn", "All Staff (HQ)"},
                                            {"sn", "All Staff"},
                                            {"mail", "allstaff@acme.com"}});
  EXPECT_EQ(mapped.entry, expected);
  EXPECT_TRUE(mapped.problems.empty()) << mapped.problems.front().describe();
}

TEST(MappingDefaults, WithMembershipADominoGroupBecomesAnAdGroupExpandedInExchange) {
  const auto set = must_parse_set(domino_group_to_ad_group(), domino_person_known());
  const auto e = test::entry_of("cn=Sales Team,o=Acme", {{"objectClass", "dominoGroup"},
                                                         {"cn", "Sales Team"},
                                                         {"mail", "sales@acme.com"},
                                                         {"member", "cn=John Doe,ou=Sales,o=Acme"}});
  const auto mapped = set.apply(e, run_context("notes.acme.com"));
  // No targetAddress (delivered to the members in Exchange), and no member: the engine resolves those.
  const auto expected = test::entry_of("", {{"proxyAddresses", "NOTES:Sales Team@AcmeMail"},
                                            {"proxyAddresses", "smtp:sales@acme.com"},
                                            {"mailNickname", "SalesTeam"},
                                            {"displayName", "Sales Team"},
                                            {"mail", "sales@acme.com"}});
  EXPECT_EQ(mapped.entry, expected);
  EXPECT_TRUE(mapped.problems.empty()) << mapped.problems.front().describe();
}

TEST(MappingDefaults, WithMembershipAnExchangeGroupBecomesADominoGroupExpandedInNotes) {
  const auto set = must_parse_set(exchange_group_to_domino_group(), exchange_user_known());
  const auto e = test::entry_of("CN=All Staff,OU=Groups,DC=acme,DC=com", {{"objectClass", "group"},
                                                                          {"cn", "All Staff"},
                                                                          {"displayName", "All Staff (HQ)"},
                                                                          {"mail", "allstaff@acme.com"}});
  const auto mapped = set.apply(e, run_context("exchange.acme.com"));
  const auto expected = test::entry_of("", {{"cn", "All Staff (HQ)"},
                                            {"listName", "All Staff (HQ)"},
                                            {"fullName", "All Staff (HQ)"},
                                            {"displayName", "All Staff (HQ)"},
                                            {"mail", "allstaff@acme.com"}});
  EXPECT_EQ(mapped.entry, expected);
  EXPECT_TRUE(mapped.problems.empty()) << mapped.problems.front().describe();
}

TEST(MappingDefaults, EveryFullNameGeneratorParsesAndGivesItsExample) {
  ASSERT_EQ(full_name_generators().size(), 5u);
  for (const auto& g : full_name_generators()) {
    const auto set = must_parse_set(exchange_user_to_domino_person(g), exchange_user_known());
    const auto mapped = set.apply(exchange_user(), run_context("exchange.acme.com"));
    EXPECT_EQ(mapped.entry.first("fullName"), g.example) << g.name;
    EXPECT_EQ(mapped.entry.first("cn"), g.example) << g.name;
    EXPECT_TRUE(mapped.problems.empty()) << g.name;
  }
  ASSERT_NE(find_full_name_generator("Alias"), nullptr);
  EXPECT_EQ(find_full_name_generator("Alias")->expression, "first(mailNickname)");
  EXPECT_EQ(find_full_name_generator("nickname"), nullptr);
}

TEST(MappingDefaults, AnExchangeUserWithOnlyADisplayName) {
  const auto e =
      test::entry_of("CN=Jane Roe,OU=Users,DC=acme,DC=com", {{"displayName", "Roe, Jane"}, {"mailNickname", "jroe"}});
  for (const auto& g : full_name_generators()) {
    const auto set = must_parse_set(exchange_user_to_domino_person(g), exchange_user_known());
    const auto mapped = set.apply(e, run_context("exchange.acme.com"));
    EXPECT_EQ(mapped.entry.first("sn"), "Roe") << g.name;
    EXPECT_EQ(mapped.entry.first("givenName"), "Jane") << g.name;
    EXPECT_EQ(mapped.entry.first("mailAddress"), "jroe@exchange.acme.com") << g.name;
    EXPECT_EQ(mapped.entry.first("fullName"), g.name == "alias" ? "jroe" : "Roe, Jane") << g.name;
    EXPECT_FALSE(mapped.entry.has("mail")) << g.name;
  }
}

TEST(MappingDefaults, KnownSetsHaveTheContextVariables) {
  EXPECT_EQ(context_variables(), (std::vector<std::string>{"routing_domain", "notes_domain", "system"}));
  EXPECT_TRUE(domino_person_known().has_variable("notes_domain"));
  EXPECT_TRUE(exchange_user_known().has_attribute("proxyAddresses"));
  EXPECT_FALSE(domino_person_known().has_attribute("mailNickname"));
}

}  // namespace
}  // namespace bridgehead::directory::mapping
