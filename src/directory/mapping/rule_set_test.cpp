#include "directory/mapping/rule_set.hpp"

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "directory/mapping/test_support.hpp"

namespace bridgehead::directory::mapping {
namespace {

RuleSource at(std::string target, std::string text, std::size_t line, std::size_t column) {
  RuleSource r;
  r.target = std::move(target);
  r.text = std::move(text);
  r.position.line = line;
  r.position.column = column;
  return r;
}

TEST(MappingRuleSet, EveryProblemIsReportedWithItsLineAndColumn) {
  const std::vector<RuleSource> rules = {
      at("mail", "first(mial)", 3, 10),
      at("sn", "lower(sn", 4, 8),
      at("cn", "first(cn)", 5, 8),
      at("SN", "sn", 6, 8),
      at("display name", "'x'", 7, 16),
      at("givenName", "concat(cn,\n  mial)", 8, 15),
      at("initials", "concat('é', mial)", 10, 1),
  };
  const auto set = RuleSet::parse(rules, test::known());
  ASSERT_FALSE(set);
  const auto& p = set.error();
  ASSERT_EQ(p.size(), 6u);
  EXPECT_EQ(p[0].describe(), "line 3, column 16: rule for mail: unknown attribute 'mial' (did you mean 'mail'?)");
  EXPECT_EQ(p[0].offset, 6u);
  EXPECT_EQ(p[1].describe(),
            "line 4, column 16: rule for sn: the rule ends inside lower( (opened at offset 5): ')' is missing");
  EXPECT_EQ(p[2].describe(), "line 6, column 8: rule for SN: SN has a rule already (line 4)");
  EXPECT_EQ(p[3].target, "display name");
  EXPECT_EQ(p[3].position.line, 7u);
  EXPECT_EQ(p[3].position.column, 16u);
  EXPECT_NE(p[3].message.find("the target 'display name' is not an attribute name"), std::string::npos);
  EXPECT_EQ(p[4].position.line, 9u) << "the line break in the text moves to the next line";
  EXPECT_EQ(p[4].position.column, 3u);
  EXPECT_EQ(p[5].offset, 13u);
  EXPECT_EQ(p[5].position.column, 13u) << "columns count characters: é is one";
}

TEST(MappingRuleSet, RulesNotFromAFileGiveOffsets) {
  RuleSource r;
  r.target = "mail";
  r.text = "lower(mial)";
  const auto set = RuleSet::parse(std::vector<RuleSource>{r, r}, test::known());
  ASSERT_FALSE(set);
  ASSERT_EQ(set.error().size(), 3u);
  EXPECT_EQ(set.error()[0].describe(), "offset 6: rule for mail: unknown attribute 'mial' (did you mean 'mail'?)");
  EXPECT_EQ(set.error()[1].describe(), "offset 0: rule for mail: mail has a rule already (rule 1)");
}

TEST(MappingRuleSet, ApplyMapsEveryRuleInOrder) {
  const std::vector<RuleSource> rules = {
      at("displayName", "first(cn)", 1, 15),
      at("proxyAddresses", "concat('smtp:', mail)", 2, 18),
      at("initials", "initials", 3, 12),
      at("description", "description", 4, 15),
      at("sn", "concat(first(sn), ' ', name_last(cn))", 5, 6),
  };
  const auto set = RuleSet::parse(rules, test::known());
  ASSERT_TRUE(set) << set.error().front().describe();
  ASSERT_EQ(set->rules().size(), 5u);
  EXPECT_EQ(set->rules()[1].target, "proxyAddresses");
  EXPECT_EQ(to_string(set->rules()[1].expression), "concat('smtp:', mail)");

  const auto source = test::entry_of("cn=Jane Roe,o=Acme", {{"cn", "Jane Roe"},
                                                            {"mail", "jroe@acme.com"},
                                                            {"mail", "jane@acme.com"},
                                                            {"description", ""},
                                                            {"sn", "Roe"},
                                                            {"sn", "Roe-Smith"},
                                                            {"cn", "Smith,"}});
  const auto mapped = set->apply(source, test::context());

  const auto expected = test::entry_of("", {{"displayName", "Jane Roe"},
                                            {"proxyAddresses", "smtp:jroe@acme.com"},
                                            {"proxyAddresses", "smtp:jane@acme.com"},
                                            {"sn", "Roe Roe"}});
  EXPECT_EQ(mapped.entry, expected) << "no initials, no empty description, the bad cn skipped";
  ASSERT_EQ(mapped.problems.size(), 1u);
  EXPECT_EQ(mapped.problems[0].target, "sn");
  EXPECT_EQ(mapped.problems[0].describe(),
            "line 5, column 29: rule for sn: name_last: cannot use 'Smith,': it has nothing after its comma "
            "(\"Surname, Given\")");
}

}  // namespace
}  // namespace bridgehead::directory::mapping
