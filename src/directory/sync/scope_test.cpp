#include "directory/sync/scope.hpp"

#include <gtest/gtest.h>

namespace bridgehead::directory::sync {
namespace {

Entry person(std::string dn, std::vector<std::pair<std::string, std::vector<std::string>>> attributes) {
  Entry e(std::move(dn));
  for (auto& [name, values] : attributes) e.set(name, std::move(values));
  return e;
}

const Entry& john() {
  static const Entry e = person("cn=John Doe,ou=Sales,o=Acme", {{"objectClass", {"top", "dominoPerson"}},
                                                                {"cn", {"John Doe"}},
                                                                {"mail", {"John.Doe@Acme.example", "jd@acme.example"}},
                                                                {"uSNChanged", {"1500"}},
                                                                {"employeeNumber", {"-20"}},
                                                                {"description", {"Sales (West) * lead"}}});
  return e;
}

bool matches(std::string_view filter, const Entry& e = john()) {
  auto f = Filter::parse(filter);
  EXPECT_TRUE(f) << filter << ": " << f.error().describe();
  return f && f->matches(e);
}

std::string parse_error(std::string_view filter) {
  auto f = Filter::parse(filter);
  EXPECT_FALSE(f) << filter;
  if (f) return {};
  EXPECT_EQ(f.error().code, ErrorCode::kInvalidArgument);
  EXPECT_FALSE(f.error().remedy.empty());
  return f.error().message;
}

TEST(Filter, EqualityIgnoresCaseOfNamesAndValues) {
  EXPECT_TRUE(matches("(objectClass=dominoPerson)"));
  EXPECT_TRUE(matches("(OBJECTCLASS=DOMINOPERSON)"));
  EXPECT_TRUE(matches("(mail=jd@ACME.example)"));  // any value
  EXPECT_FALSE(matches("(mail=jd@acme)"));
  EXPECT_FALSE(matches("(givenName=John)"));  // no such attribute
  EXPECT_TRUE(matches("(cn~=john doe)"));     // approximate taken as equality
  EXPECT_EQ(Filter::parse("(cn=x)")->text(), "(cn=x)");
}

TEST(Filter, PresenceAndSubstrings) {
  EXPECT_TRUE(matches("(mail=*)"));
  EXPECT_FALSE(matches("(givenName=*)"));
  EXPECT_TRUE(matches("(cn=John*)"));
  EXPECT_TRUE(matches("(cn=*doe)"));
  EXPECT_TRUE(matches("(cn=*OHN*)"));
  EXPECT_TRUE(matches("(cn=J*n*D*e)"));
  EXPECT_FALSE(matches("(cn=J*D*n)"));  // the pieces in order
  EXPECT_TRUE(matches("(cn=John*Doe*)"));
  EXPECT_TRUE(matches("(cn=John*Doe)"));
  EXPECT_FALSE(matches("(cn=John D*oe Doe)"));  // initial and final must not overlap
  EXPECT_TRUE(matches("(mail=*@acme.example)"));
}

TEST(Filter, EscapedOctetsInValues) {
  EXPECT_TRUE(matches("(description=Sales \\28West\\29 \\2a lead)"));
  EXPECT_TRUE(matches("(description=*\\2A*)"));
  EXPECT_FALSE(matches("(description=*\\5c*)"));
  const Entry e = person("cn=x", {{"cn", {"J\xC3\xBCrgen"}}});
  EXPECT_TRUE(matches("(cn=J\\c3\\bcrgen)", e));
  EXPECT_TRUE(matches("(cn=J\xC3\xBCrgen)", e));
}

TEST(Filter, OrderingComparesIntegersAsNumbersElseText) {
  EXPECT_TRUE(matches("(uSNChanged>=1500)"));
  EXPECT_TRUE(matches("(uSNChanged>=999)"));  // as text "1500" < "999"
  EXPECT_FALSE(matches("(uSNChanged<=999)"));
  EXPECT_TRUE(matches("(employeeNumber<=-3)"));
  EXPECT_TRUE(matches("(cn>=john)"));
  EXPECT_TRUE(matches("(cn<=JOHN DOE)"));
  EXPECT_FALSE(matches("(cn>=K)"));
}

TEST(Filter, AndOrNotNestAndEmptySetsAreTrueAndFalse) {
  EXPECT_TRUE(matches("(&(objectClass=dominoPerson)(mail=*)(!(cn=Jane*)))"));
  EXPECT_FALSE(matches("(&(objectClass=dominoPerson)(cn=Jane*))"));
  EXPECT_TRUE(matches("(|(cn=Jane*)(cn=John*))"));
  EXPECT_FALSE(matches("(|(cn=Jane*)(sn=x))"));
  EXPECT_TRUE(matches("(!(givenName=x))"));  // absent: the equality is false, its negation true
  EXPECT_TRUE(matches("(&)"));               // RFC 4526 absolute true
  EXPECT_FALSE(matches("(|)"));              // and absolute false
  EXPECT_TRUE(matches("(!(!(cn=John Doe)))"));
}

TEST(Filter, ABareItemIsTakenAsParenthesized) {
  EXPECT_TRUE(matches("objectClass=dominoPerson"));
  EXPECT_FALSE(matches("cn=Jane"));
}

TEST(Filter, ParseErrorsNameTheOctetOffset) {
  EXPECT_EQ(parse_error(""), "filter at offset 0: the filter is empty");
  EXPECT_EQ(parse_error("(cn=x"), "filter at offset 5: expected ')' but the filter ends");
  EXPECT_EQ(parse_error("(cn=x))"), "filter at offset 6: unexpected ')' after the end of the filter");
  EXPECT_EQ(parse_error("(&(cn=x)x)"), "filter at offset 8: expected ')' but found 'x'");
  EXPECT_EQ(parse_error("(=x)"), "filter at offset 1: expected an attribute name but found '='");
  EXPECT_EQ(parse_error("(cn)"), "filter at offset 3: expected '=', '>=', '<=' or '~=' after cn");
  EXPECT_EQ(parse_error("(cn>x)"), "filter at offset 4: expected '=' after '>'");
  EXPECT_EQ(parse_error("(cn=a\\2)"), "filter at offset 5: '\\' must be followed by two hex digits");
  EXPECT_EQ(parse_error("(cn=a\\zz)"), "filter at offset 5: '\\' must be followed by two hex digits");
  EXPECT_EQ(parse_error("(cn=a(b)"), "filter at offset 5: '(' in a value (write \\28)");
  EXPECT_EQ(parse_error("(cn>=a*)"), "filter at offset 6: '*' is not allowed in this value (write \\2a)");
  EXPECT_EQ(parse_error("(cn=a**b)"), "filter at offset 6: two '*' in a row in a substring filter");
  EXPECT_EQ(parse_error("(cn:dn:=x)"), "filter at offset 3: extensible matches (attr:rule:=value) are not supported");
  EXPECT_EQ(parse_error("(!)"), "filter at offset 2: expected '(' but found ')'");
  EXPECT_EQ(parse_error("cn=a)"), "filter at offset 4: ')' in a value (write \\29)");
  EXPECT_EQ(parse_error("(cn=\xC3)x"), "filter at offset 6: unexpected 'x' after the end of the filter");
}

TEST(Filter, DeepNestingIsRefusedNotAStackOverflow) {
  std::string deep;
  for (int i = 0; i < 100000; ++i) deep += "(!";
  const std::string message = parse_error(deep);
  EXPECT_NE(message.find("nested deeper than"), std::string::npos) << message;
  std::string fine;
  for (int i = 0; i < 30; ++i) fine += "(!";
  fine += "(cn=x)";
  for (int i = 0; i < 30; ++i) fine += ")";
  EXPECT_TRUE(Filter::parse(fine));
}

Scope scope(ScopeSettings settings) {
  auto s = Scope::make(settings);
  EXPECT_TRUE(s) << s.error().describe();
  return s ? std::move(*s) : Scope();
}

TEST(Scope, EverythingIsInScopeByDefault) { EXPECT_EQ(scope({}).excludes(john()), std::nullopt); }

TEST(Scope, IncludeAndExcludeContainersCompareAsDnsAndExcludeWins) {
  ScopeSettings s;
  s.include = {"O=ACME"};
  s.exclude = {"ou=Sales,  o=acme"};
  const Scope sc = scope(s);
  EXPECT_EQ(sc.excludes(john()), "below excluded container ou=Sales,  o=acme");
  EXPECT_EQ(sc.excludes(person("cn=Jane,ou=Support,o=Acme", {})), std::nullopt);
  EXPECT_EQ(sc.excludes(person("ou=Sales,o=Acme", {})), "below excluded container ou=Sales,  o=acme");
  EXPECT_EQ(sc.excludes(person("cn=Jane,o=Other", {})), "not below an included container (O=ACME)");
  // A suffix of the text is not a container: "ou=Sales2" is not below "ou=Sales".
  EXPECT_EQ(sc.excludes(person("cn=Jane,ou=Sales2,o=Acme", {})), std::nullopt);
  EXPECT_EQ(sc.excludes(person("cn=Jane,ou=Sales\\2C West,o=Acme", {})), std::nullopt);
}

TEST(Scope, SeveralIncludedContainers) {
  ScopeSettings s;
  s.include = {"ou=Sales,o=Acme", "ou=Support,o=Acme"};
  const Scope sc = scope(s);
  EXPECT_EQ(sc.excludes(john()), std::nullopt);
  EXPECT_EQ(sc.excludes(person("cn=Jane,ou=Support,o=Acme", {})), std::nullopt);
  EXPECT_EQ(sc.excludes(person("cn=Jane,ou=IT,o=Acme", {})),
            "not below an included container (ou=Sales,o=Acme; ou=Support,o=Acme)");
}

TEST(Scope, IgnoredGroupsByDnOrByCnButOnlyGroups) {
  ScopeSettings s;
  s.ignore_groups = {"cn=All Staff,o=Acme", "everyone"};
  const Scope sc = scope(s);
  const Entry all = person("CN=all staff,O=acme", {{"objectClass", {"top", "groupOfNames"}}, {"cn", {"All Staff"}}});
  EXPECT_EQ(sc.excludes(all), "ignored group CN=all staff,O=acme");
  const Entry every = person("cn=Everyone,ou=G,o=Acme", {{"objectClass", {"dominoGroup"}}, {"cn", {"Everyone"}}});
  EXPECT_EQ(sc.excludes(every), "ignored group cn=Everyone,ou=G,o=Acme");
  const Entry ad = person("cn=Everyone,ou=G,dc=x", {{"objectClass", {"top", "GROUP"}}, {"cn", {"EVERYONE"}}});
  EXPECT_EQ(sc.excludes(ad), "ignored group cn=Everyone,ou=G,dc=x");
  // A person named like an ignored group is not a group.
  const Entry named = person("cn=Everyone,ou=P,o=Acme", {{"objectClass", {"dominoPerson"}}, {"cn", {"Everyone"}}});
  EXPECT_EQ(sc.excludes(named), std::nullopt);
  const Entry other = person("cn=Sales,o=Acme", {{"objectClass", {"groupOfUniqueNames"}}, {"cn", {"Sales"}}});
  EXPECT_EQ(sc.excludes(other), std::nullopt);
}

TEST(Scope, FilterIsApplied) {
  ScopeSettings s;
  s.filter = "(&(objectClass=dominoPerson)(!(cn=Test*)))";
  const Scope sc = scope(s);
  EXPECT_EQ(sc.excludes(john()), std::nullopt);
  EXPECT_EQ(sc.excludes(person("cn=Test User,o=Acme", {{"objectClass", {"dominoPerson"}}, {"cn", {"Test User"}}})),
            "does not match filter (&(objectClass=dominoPerson)(!(cn=Test*)))");
}

TEST(Scope, AnEntryWhoseDnDoesNotParseIsOutOfScopeWithTheReason) {
  const auto why = scope({}).excludes(person("not a dn", {}));
  ASSERT_TRUE(why);
  EXPECT_NE(why->find("its DN not a dn does not parse"), std::string::npos) << *why;
}

TEST(Scope, MakeNamesTheBadSetting) {
  ScopeSettings s;
  s.exclude = {"ou=Sales,o=Acme", "ou=Sales,,o=Acme"};
  auto bad = Scope::make(s);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(bad.error().message.find("exclude container ou=Sales,,o=Acme is not a DN"), std::string::npos)
      << bad.error().message;
  ScopeSettings f;
  f.filter = "(cn=x";
  auto bad_filter = Scope::make(f);
  ASSERT_FALSE(bad_filter);
  EXPECT_EQ(bad_filter.error().message, "filter at offset 5: expected ')' but the filter ends");
  ScopeSettings g;
  g.ignore_groups = {"cn=x,=y"};
  auto bad_group = Scope::make(g);
  ASSERT_FALSE(bad_group);
  EXPECT_NE(bad_group.error().message.find("ignored group cn=x,=y is not a DN"), std::string::npos);
}

}  // namespace
}  // namespace bridgehead::directory::sync
