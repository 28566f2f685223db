#include "directory/mapping/expression.hpp"

#include <string>

#include <gtest/gtest.h>

#include "directory/mapping/test_support.hpp"

namespace bridgehead::directory::mapping {
namespace {

using test::known;
using test::must_parse;

TEST(MappingParse, ReadsEveryKindOfValue) {
  const auto e = must_parse(R"(concat('it\'s', "say \"hi\"\n", 042, cn;lang-de, $routing_domain, dn))");
  const Node& root = e.root();
  ASSERT_EQ(root.kind, Node::Kind::kCall);
  EXPECT_EQ(root.function, Function::kConcat);
  ASSERT_EQ(root.arg_count, 6u);
  EXPECT_EQ(e.argument(root, 0).kind, Node::Kind::kText);
  EXPECT_EQ(e.argument(root, 0).text, "it's");
  EXPECT_EQ(e.argument(root, 1).text, "say \"hi\"\n");
  EXPECT_EQ(e.argument(root, 2).kind, Node::Kind::kNumber);
  EXPECT_EQ(e.argument(root, 2).number, 42u);
  EXPECT_EQ(e.argument(root, 2).text, "42");
  EXPECT_EQ(e.argument(root, 3).kind, Node::Kind::kAttribute);
  EXPECT_EQ(e.argument(root, 3).text, "cn;lang-de");
  EXPECT_EQ(e.argument(root, 4).kind, Node::Kind::kVariable);
  EXPECT_EQ(e.argument(root, 4).text, "routing_domain");
  EXPECT_EQ(e.argument(root, 4).offset, 49u);
  EXPECT_EQ(e.argument(root, 5).kind, Node::Kind::kDn);
}

TEST(MappingParse, NamesAreCaseInsensitiveAndBlanksFree) {
  const auto e = must_parse("  CONCAT ( GivenName ,' ', SN , $Routing_Domain )\t");
  EXPECT_EQ(to_string(e), "concat(GivenName, ' ', SN, $Routing_Domain)");
  EXPECT_EQ(e.text(), "  CONCAT ( GivenName ,' ', SN , $Routing_Domain )\t");
}

TEST(MappingParse, LiteralCountsBecomeNumbers) {
  const auto e = must_parse("left(cn, '3')");
  EXPECT_EQ(e.argument(e.root(), 1).kind, Node::Kind::kNumber);
  EXPECT_EQ(to_string(e), "left(cn, 3)");
}

TEST(MappingParse, PrintingAndParsingAgainKeepsTheTree) {
  for (std::string_view text : {
           "concat( 'x' ,cn,\"y\\\"\\\\\" )",
           "if_empty(concat(givenName, ' ', sn), first(displayName))",
           "isequal(objectClass, 'dominoPerson', lower(mail), upper(strip(cn, '\\t\\n')))",
           "substr(cn, 007, 2)",
           "list(notes_abbrev(DN), x500(uid), name_first(cn;x-y), name_last($system))",
           "'Müller'",
       }) {
    const auto e = must_parse(text);
    const auto printed = to_string(e);
    const auto again = must_parse(printed);
    EXPECT_TRUE(again == e) << text << " printed as " << printed;
    EXPECT_EQ(to_string(again), printed);
  }
  EXPECT_EQ(to_string(must_parse("concat( 'x' ,cn,\"y\\\"\\\\\" )")), R"(concat('x', cn, 'y"\\'))");
  EXPECT_FALSE(must_parse("lower(cn)") == must_parse("lower(sn)"));
  EXPECT_FALSE(must_parse("lower(cn)") == must_parse("upper(cn)"));
  EXPECT_FALSE(must_parse("'a'") == must_parse("'A'"));
}

TEST(MappingParse, EveryFunctionHasItsArity) {
  struct Case {
    std::string_view text;
    bool ok;
  };
  for (const Case& c : std::initializer_list<Case>{
           {"concat(cn)", true},
           {"concat(cn, sn, mail, uid)", true},
           {"list(cn)", true},
           {"lower(cn)", true},
           {"upper(cn)", true},
           {"proper(cn)", true},
           {"left(cn, 2)", true},
           {"left(cn)", false},
           {"substr(cn, 2)", true},
           {"substr(cn, 2, 3)", true},
           {"substr(cn, 2, 3, 4)", false},
           {"strip(cn)", true},
           {"strip(cn, ' ')", true},
           {"strip(cn, ' ', ' ')", false},
           {"replace(cn, 'a', 'b')", true},
           {"replace(cn, 'a')", false},
           {"if_empty(cn, sn)", true},
           {"if_empty(cn)", false},
           {"isequal(cn, sn, 'a', 'b')", true},
           {"isequal(cn, sn, 'a')", false},
           {"first(cn)", true},
           {"first(cn, sn)", false},
           {"notes_abbrev(cn)", true},
           {"notes_canonical(cn)", true},
           {"x500(cn)", true},
           {"name_first(cn)", true},
           {"name_last(cn)", true},
           {"name_last()", false},
           {"lower()", false},
           {"concat()", false},
       }) {
    EXPECT_EQ(parse(c.text, known()).has_value(), c.ok) << c.text;
  }
}

TEST(MappingParse, ErrorsSayWhatAndWhere) {
  struct Case {
    std::string_view text;
    std::size_t offset;
    std::string_view message;
  };
  const std::string deep = [] {
    std::string s;
    for (int i = 0; i < 40; ++i) s += "lower(";
    s += "cn";
    for (int i = 0; i < 40; ++i) s += ")";
    return s;
  }();
  for (const Case& c : std::initializer_list<Case>{
           {"", 0, "the rule is empty"},
           {"   ", 3, "the rule is empty"},
           {"lowr(cn)", 0, "unknown function 'lowr' (did you mean 'lower'?)"},
           {"frobnicate(cn)", 0, "unknown function 'frobnicate'; the functions are concat, list, lower"},
           {"lower(cn, sn)", 0, "lower takes 1 argument (lower(value)), not 2"},
           {"isequal(cn, sn, cn)", 0, "isequal takes 4 arguments (isequal(a, b, then, else)), not 3"},
           {"substr(cn)", 0, "substr takes 2 or 3 arguments (substr(value, start[, count])), not 1"},
           {"concat()", 0, "concat takes at least 1 argument (concat(value, ...)), not 0"},
           {"concat(cn, mial)", 11, "unknown attribute 'mial' (did you mean 'mail'?)"},
           {"concat(cn, xyzzy)", 11, "unknown attribute 'xyzzy'"},
           {"first($routing_domian)", 6,
            "unknown variable $routing_domian (did you mean '$routing_domain'?); the variables are $routing_domain, "
            "$notes_domain, $system"},
           {"'abc", 0, "the text that starts here has no closing '"},
           {"\"abc'", 0, "the text that starts here has no closing \""},
           {"'a\\qb'", 2, "unknown escape '\\q'"},
           {"'a\\", 2, "the text ends with a lone '\\'"},
           {"'a\nb'", 2, "'\\n' inside a text: write a line break as \\n"},
           {"lower(cn", 8, "the rule ends inside lower( (opened at offset 5): ')' is missing"},
           {"lower(cn sn)", 9, "unexpected 's' after argument 1 of lower: ',' or ')' expected"},
           {"lower(", 6, "the rule ends where a value was expected"},
           {"lower(,)", 6, "unexpected ',' where a value was expected"},
           {"cn sn", 3, "unexpected 's' after the end of the expression"},
           {"@", 0, "unexpected '@' where a value was expected"},
           {"left(cn, 'x')", 9, "left: the count must be a whole number, not 'x'"},
           {"substr(cn, 0)", 11, "substr: the start counts from 1, not 0"},
           {"substr(cn, '0', 2)", 11, "substr: the start counts from 1, not 0"},
           {"replace(cn, '', 'x')", 12, "replace: the text to replace is empty"},
           {"lower", 0, "lower is a function: write lower(value)"},
           {"given_name", 0, "'given_name' is not an attribute name"},
           {"cn;", 2, "';' must be followed by an attribute option"},
           {"$", 0, "'$' must be followed by a variable name"},
           {"$1x", 0, "'$' must be followed by a variable name"},
           {"1234567", 0, "the number 1234567 is too large (at most 1000000)"},
           {"lower('\xff')", 7, "the rule is not valid UTF-8 here"},
           {deep, 32 * 6, "calls are nested more than 32 deep here"},
       }) {
    const auto e = parse(c.text, known());
    ASSERT_FALSE(e) << c.text;
    EXPECT_EQ(e.error().offset, c.offset) << c.text << ": " << e.error().message;
    EXPECT_NE(e.error().message.find(c.message), std::string::npos) << c.text << ": " << e.error().message;
  }
}

TEST(MappingParse, OverlongRulesAreRefused) {
  const std::string text = "'" + std::string(70000, 'x') + "'";
  const auto e = parse(text, known());
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().offset, 65536u);
  EXPECT_NE(e.error().message.find("longer than 65536"), std::string::npos);
}

TEST(MappingParse, NoVariablesKnownIsSaid) {
  const Known attributes_only({"cn"}, {});
  const auto e = parse("$system", attributes_only);
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().message, "unknown variable $system: no variables are defined here");
}

TEST(MappingParse, KnownAttributesIgnoreCaseAndOptions) {
  EXPECT_TRUE(known().has_attribute("GIVENNAME"));
  EXPECT_TRUE(known().has_attribute("cn;lang-de"));
  EXPECT_FALSE(known().has_attribute("c"));
  EXPECT_TRUE(known().has_variable("SYSTEM"));
  EXPECT_FALSE(known().has_variable("systems"));
  EXPECT_TRUE(parse("dn", Known()).has_value()) << "dn is always known";
}

TEST(MappingParse, AttributeDescriptions) {
  EXPECT_TRUE(is_attribute_description("proxyAddresses"));
  EXPECT_TRUE(is_attribute_description("cn;lang-de;x-1"));
  EXPECT_TRUE(is_attribute_description("msExch-Recipient2"));
  EXPECT_FALSE(is_attribute_description(""));
  EXPECT_FALSE(is_attribute_description("2cn"));
  EXPECT_FALSE(is_attribute_description("given_name"));
  EXPECT_FALSE(is_attribute_description("cn;"));
  EXPECT_FALSE(is_attribute_description("cn;;x"));
  EXPECT_FALSE(is_attribute_description("display name"));
}

}  // namespace
}  // namespace bridgehead::directory::mapping
