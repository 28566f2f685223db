#include "directory/mapping/evaluate.hpp"

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "directory/mapping/test_support.hpp"

namespace bridgehead::directory::mapping {
namespace {

using Values = std::vector<std::string>;
using test::must_parse;

directory::Entry person() {
  return test::entry_of("cn=John Doe,ou=Sales,o=Acme", {{"cn", "John Doe"},
                                                        {"cn", "Johnny Doe"},
                                                        {"sn", "Doe"},
                                                        {"givenName", "John"},
                                                        {"mail", "jdoe@acme.com"},
                                                        {"mail", "John.Doe@acme.com"},
                                                        {"uid", "jdoe"},
                                                        {"objectClass", "inetOrgPerson"},
                                                        {"objectClass", "dominoPerson"},
                                                        {"objectClass", "top"},
                                                        {"telephoneNumber", "+1 (555) 123-4567"},
                                                        {"description", ""}});
}

Evaluation run(std::string_view rule, const directory::Entry& entry = person()) {
  return evaluate(must_parse(rule), entry, test::context());
}

// The values of a rule that must evaluate without a problem.
Values values(std::string_view rule, const directory::Entry& entry = person()) {
  auto r = run(rule, entry);
  for (const auto& p : r.problems) ADD_FAILURE() << rule << ": problem at " << p.offset << ": " << p.message;
  return r.values;
}

TEST(MappingEvaluate, ValuesOfAttributesLiteralsVariablesAndTheDn) {
  EXPECT_EQ(values("cn"), (Values{"John Doe", "Johnny Doe"}));
  EXPECT_EQ(values("CN"), (Values{"John Doe", "Johnny Doe"}));
  EXPECT_EQ(values("initials"), Values{});
  EXPECT_EQ(values("'x'"), Values{"x"});
  EXPECT_EQ(values("7"), Values{"7"});
  EXPECT_EQ(values("$routing_domain"), Values{"notes.acme.com"});
  EXPECT_EQ(values("dn"), Values{"cn=John Doe,ou=Sales,o=Acme"});
  EXPECT_EQ(values("dn", directory::Entry()), Values{});
  const auto tagged = test::entry_of("", {{"cn;lang-de", "Johann"}});
  EXPECT_EQ(values("cn;lang-de", tagged), Values{"Johann"});
}

TEST(MappingEvaluate, StringFunctionsMapOverValues) {
  EXPECT_EQ(values("lower(cn)"), (Values{"john doe", "johnny doe"}));
  EXPECT_EQ(values("upper(mail)"), (Values{"JDOE@ACME.COM", "JOHN.DOE@ACME.COM"}));
  EXPECT_EQ(values("proper(lower(cn))"), (Values{"John Doe", "Johnny Doe"}));
  EXPECT_EQ(values("left(cn, 4)"), (Values{"John", "John"}));
  EXPECT_EQ(values("left(sn, '2')"), Values{"Do"});
  EXPECT_EQ(values("substr(mail, 1, 4)"), (Values{"jdoe", "John"}));
  EXPECT_EQ(values("substr(sn, 2)"), Values{"oe"});
  EXPECT_EQ(values("strip(telephoneNumber, ' ()-')"), Values{"+15551234567"});
  EXPECT_EQ(values("strip('  x ')"), Values{"x"});
  EXPECT_EQ(values("replace(mail, '@acme.com', '@example.com')"), (Values{"jdoe@example.com", "John.Doe@example.com"}));
  EXPECT_EQ(values("lower(initials)"), Values{});
}

TEST(MappingEvaluate, ParametersComeFromTheirFirstValue) {
  const auto e = test::entry_of("", {{"cn", "Johnny"}, {"uid", "3"}, {"uid", "5"}, {"sn", "-"}});
  EXPECT_EQ(values("left(cn, uid)", e), Values{"Joh"});
  EXPECT_EQ(values("replace(cn, 'n', sn)", e), Values{"Joh--y"});
  EXPECT_EQ(values("strip(cn, 'hn')", e), Values{"Joy"});
}

TEST(MappingEvaluate, BadParametersAreProblems) {
  struct Case {
    std::string_view rule;
    std::size_t offset;
    std::string_view message;
  };
  for (const Case& c : std::initializer_list<Case>{
           {"left(cn, sn)", 0, "left: the count 'Doe' is not a whole number"},
           {"concat('a', substr(cn, 1, initials))", 12, "substr: the count has no value"},
           {"substr(cn, description)", 0, "substr: the start '' is not a whole number from 1"},
           {"replace(cn, initials, 'x')", 0, "replace: the text to replace has no value"},
           {"replace(cn, description, 'x')", 0, "replace: the text to replace is empty"},
           {"strip(cn, initials)", 0, "strip: the set of characters has no value"},
       }) {
    const auto r = run(c.rule);
    EXPECT_EQ(r.values, Values{}) << c.rule;
    ASSERT_EQ(r.problems.size(), 1u) << c.rule;
    EXPECT_EQ(r.problems[0].offset, c.offset) << c.rule;
    EXPECT_NE(r.problems[0].message.find(c.message), std::string::npos) << c.rule << ": " << r.problems[0].message;
  }
}

TEST(MappingEvaluate, ConcatPairsMultiValuedArguments) {
  EXPECT_EQ(values("concat(givenName, '.', sn)"), Values{"John.Doe"});
  EXPECT_EQ(values("concat('smtp:', mail)"), (Values{"smtp:jdoe@acme.com", "smtp:John.Doe@acme.com"}));
  EXPECT_EQ(values("concat(cn, ' <', mail, '>')"),
            (Values{"John Doe <jdoe@acme.com>", "Johnny Doe <John.Doe@acme.com>"}));
  EXPECT_EQ(values("concat(concat('a', mail), '|', cn)"),
            (Values{"ajdoe@acme.com|John Doe", "aJohn.Doe@acme.com|Johnny Doe"}));
  EXPECT_EQ(values("concat(givenName, initials, sn)"), Values{}) << "an argument without values gives none";
  EXPECT_EQ(values("concat(givenName, if_empty(initials, ''), sn)"), Values{"JohnDoe"});

  const auto r = run("concat(mail, '/', objectClass)");
  EXPECT_EQ(r.values, (Values{"jdoe@acme.com/inetOrgPerson", "John.Doe@acme.com/dominoPerson"}));
  ASSERT_EQ(r.problems.size(), 1u);
  EXPECT_EQ(r.problems[0].offset, 0u);
  EXPECT_EQ(r.problems[0].message,
            "concat: its multi-valued arguments have 2 and 3 values; only the first 2 are paired");
}

TEST(MappingEvaluate, ListJoinsValuesWithoutDuplicates) {
  EXPECT_EQ(values("list(concat('SMTP:', first(mail)), concat('smtp:', mail), 'x')"),
            (Values{"SMTP:jdoe@acme.com", "smtp:John.Doe@acme.com", "x"}));
  EXPECT_EQ(values("list(initials, sn)"), Values{"Doe"});
  directory::Entry group;
  for (int i = 0; i < 30; ++i) group.add("member", "cn=m" + std::to_string(i % 20));
  const auto members = values("list(member, upper(member))", group);
  ASSERT_EQ(members.size(), 20u) << "more than 16 values: the hashed path";
  EXPECT_EQ(members.front(), "cn=m0");
  EXPECT_EQ(members.back(), "cn=m19");
}

TEST(MappingEvaluate, FirstIfEmptyAndIsEqual) {
  EXPECT_EQ(values("first(mail)"), Values{"jdoe@acme.com"});
  EXPECT_EQ(values("first(initials)"), Values{});
  EXPECT_EQ(values("if_empty(initials, 'none')"), Values{"none"});
  EXPECT_EQ(values("if_empty(description, 'none')"), Values{"none"}) << "only an empty value";
  EXPECT_EQ(values("if_empty(sn, 'none')"), Values{"Doe"});
  EXPECT_EQ(values("if_empty(cn, sn)"), (Values{"John Doe", "Johnny Doe"}));
  EXPECT_EQ(values("isequal(sn, 'DOE', 'yes', 'no')"), Values{"yes"});
  EXPECT_EQ(values("isequal(objectClass, 'DominoPerson', 'person', 'other')"), Values{"person"});
  EXPECT_EQ(values("isequal('group', objectClass, 'group', 'other')"), Values{"other"});
  EXPECT_EQ(values("isequal(initials, '', 'none', initials)"), Values{"none"});
  EXPECT_EQ(values("isequal(sn, '', 'none', sn)"), Values{"Doe"});
  EXPECT_EQ(values("isequal(mail, cn, 'same', mail)"), (Values{"jdoe@acme.com", "John.Doe@acme.com"}));
}

TEST(MappingEvaluate, NotesNamesAndPersonNames) {
  EXPECT_EQ(values("notes_abbrev(dn)"), Values{"John Doe/Sales/Acme"});
  EXPECT_EQ(values("notes_canonical(dn)"), Values{"CN=John Doe/OU=Sales/O=Acme"});
  EXPECT_EQ(values("x500('John Doe/Sales/Acme')"), Values{"CN=John Doe,OU=Sales,O=Acme"});
  EXPECT_EQ(values("name_first(cn)"), (Values{"John", "Johnny"}));
  EXPECT_EQ(values("name_last(first(cn))"), Values{"Doe"});
  EXPECT_EQ(values("name_first('Madonna')"), Values{}) << "no given name, and nothing wrong";
}

TEST(MappingEvaluate, BadValuesGiveNoValueAndAProblem) {
  const auto e =
      test::entry_of("CN=John Doe,OU=Users,DC=acme,DC=com", {{"cn", "Doe,"}, {"cn", "Jane Roe"}, {"sn", "D\xff"}});
  const auto names = run("concat('x', name_first(cn))", e);
  EXPECT_EQ(names.values, Values{"xJane"}) << "the good value is still mapped";
  ASSERT_EQ(names.problems.size(), 1u);
  EXPECT_EQ(names.problems[0].offset, 12u);
  EXPECT_EQ(names.problems[0].message,
            "name_first: cannot use 'Doe,': it has nothing after its comma (\"Surname, Given\")");

  const auto dn = run("notes_abbrev(dn)", e);
  EXPECT_EQ(dn.values, Values{});
  ASSERT_EQ(dn.problems.size(), 1u);
  EXPECT_NE(dn.problems[0].message.find("notes_abbrev: cannot use 'CN=John Doe,OU=Users,DC=acme,DC=com': bad name"),
            std::string::npos)
      << dn.problems[0].message;
  EXPECT_NE(dn.problems[0].message.find("'DC'"), std::string::npos) << dn.problems[0].message;

  const auto utf8 = run("upper(sn)", e);
  EXPECT_EQ(utf8.values, Values{});
  ASSERT_EQ(utf8.problems.size(), 1u);
  EXPECT_EQ(utf8.problems[0].message, "upper: cannot use 'D\\xFF': it is not valid UTF-8");

  const std::string long_value(200, 'a');
  directory::Entry big;
  big.add("cn", long_value);
  const auto shortened = run("x500(cn)", big);
  ASSERT_EQ(shortened.problems.size(), 1u);
  EXPECT_NE(shortened.problems[0].message.find("'" + std::string(80, 'a') + "...'"), std::string::npos);
}

TEST(MappingEvaluate, AVariableWithoutValueIsAProblem) {
  const auto e = must_parse("concat(uid, '@', $routing_domain)");
  const auto r = evaluate(e, person(), Context());
  EXPECT_EQ(r.values, Values{});
  ASSERT_EQ(r.problems.size(), 1u);
  EXPECT_EQ(r.problems[0].offset, 17u);
  EXPECT_EQ(r.problems[0].message, "$routing_domain has no value in this run");
}

TEST(MappingEvaluate, ContextValuesAreReplacedAndNamesIgnoreCase) {
  Context c;
  c.set("system", "a");
  c.set("SYSTEM", "b");
  ASSERT_NE(c.find("System"), nullptr);
  EXPECT_EQ(*c.find("System"), "b");
  EXPECT_EQ(c.find("notes_domain"), nullptr);
}

TEST(MappingEvaluate, AReusedResultIsReplaced) {
  const auto many = must_parse("concat('smtp:', mail)");
  const auto one = must_parse("left(cn, 1)");
  const auto bad = must_parse("x500(sn)");
  Evaluation out;
  evaluate(many, person(), test::context(), out);
  EXPECT_EQ(out.values, (Values{"smtp:jdoe@acme.com", "smtp:John.Doe@acme.com"}));
  evaluate(bad, person(), test::context(), out);
  EXPECT_EQ(out.values, Values{});
  EXPECT_EQ(out.problems.size(), 1u);
  evaluate(one, person(), test::context(), out);
  EXPECT_EQ(out.values, (Values{"J", "J"}));
  EXPECT_TRUE(out.problems.empty());
}

}  // namespace
}  // namespace bridgehead::directory::mapping
