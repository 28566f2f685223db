#include "directory/dn.hpp"

#include <gtest/gtest.h>

namespace bridgehead::directory {
namespace {

Dn dn(std::string_view text) {
  auto parsed = Dn::parse(text);
  EXPECT_TRUE(parsed) << text << ": " << parsed.error().describe();
  return parsed ? *parsed : Dn();
}

Ava ava(std::string type, std::string value, bool hex = false) {
  Ava a;
  a.type = std::move(type);
  a.value = std::move(value);
  a.hex = hex;
  return a;
}

TEST(Dn, ParsesMultiValuedRdnsEscapesAndSpacesAroundSeparators) {
  const Dn d = dn("cn=Doe\\, John + uid=jdoe , ou = Sales,o=Acme");
  ASSERT_EQ(d.size(), 3u);
  EXPECT_EQ(d.rdns()[0].avas, (std::vector<Ava>{ava("cn", "Doe, John"), ava("uid", "jdoe")}));
  EXPECT_EQ(d.rdns()[1].avas, (std::vector<Ava>{ava("ou", "Sales")}));
  EXPECT_EQ(d.rdns()[2].avas, (std::vector<Ava>{ava("o", "Acme")}));
  EXPECT_EQ(d.to_string(), "cn=Doe\\, John+uid=jdoe,ou=Sales,o=Acme");
}

TEST(Dn, HexPairEscapesAndHexValues) {
  EXPECT_EQ(dn("cn=Doe\\2C John").first_rdn().avas[0].value, "Doe, John");
  EXPECT_EQ(dn("cn=J\\C3\\BCrgen").first_rdn().avas[0].value, "J\xC3\xBCrgen");
  EXPECT_EQ(dn("cn=a\\00b").first_rdn().avas[0].value, std::string("a\0b", 3));
  const Dn h = dn("cn=#04024869,o=Acme");
  EXPECT_EQ(h.first_rdn().avas[0], ava("cn", std::string("\x04\x02Hi"), true));
  EXPECT_EQ(h.to_string(), "cn=#04024869,o=Acme");
  EXPECT_EQ(dn("cn=#0402486A").to_string(), "cn=#0402486a");
}

TEST(Dn, UnescapedSpacesAtTheEdgesOfAValueAreNotPartOfIt) {
  EXPECT_EQ(dn("cn=  a   b  ,o=x").first_rdn().avas[0].value, "a   b");
  EXPECT_EQ(dn("cn=a\\ ").first_rdn().avas[0].value, "a ");
  EXPECT_EQ(dn("cn=a \\ ").first_rdn().avas[0].value, "a  ");
  EXPECT_EQ(dn("cn=\\  a").first_rdn().avas[0].value, "  a");
  EXPECT_EQ(dn("cn=a=b#c").first_rdn().avas[0].value, "a=b#c");
  EXPECT_EQ(dn("cn=,o=x").first_rdn().avas[0].value, "");
  EXPECT_TRUE(dn("").empty());
  EXPECT_TRUE(dn("   ").empty());
}

TEST(Dn, EscapeDnValueEscapesWhatRfc4514Requires) {
  EXPECT_EQ(escape_dn_value("Doe, John"), "Doe\\, John");
  EXPECT_EQ(escape_dn_value("a+b\"c\\d<e>f;g=h"), "a\\+b\\\"c\\\\d\\<e\\>f\\;g\\=h");
  EXPECT_EQ(escape_dn_value("#1 a#"), "\\#1 a#");
  EXPECT_EQ(escape_dn_value(" lead and trail "), "\\ lead and trail\\ ");
  EXPECT_EQ(escape_dn_value(" "), "\\ ");
  EXPECT_EQ(escape_dn_value(std::string("nul\0here\n", 9)), "nul\\00here\\0A");
  EXPECT_EQ(escape_dn_value("J\xC3\xBCrgen"), "J\xC3\xBCrgen");
  EXPECT_EQ(escape_dn_value("bad\xFF"), "bad\\FF");
  EXPECT_EQ(escape_dn_value(""), "");
}

TEST(Dn, EveryEscapedValueParsesBackToItself) {
  const std::vector<std::string> values = {"Doe, John",
                                           " #x ",
                                           "  ",
                                           "a\\b",
                                           "\"quoted\"",
                                           "a+b=c;d<e>f",
                                           std::string("\0\x01\x7F", 3),
                                           "\xFF\xFE",
                                           "J\xC3\xBCrgen M\xC3\xBCller",
                                           "#",
                                           "trailing  ",
                                           "x"};
  for (const std::string& v : values) {
    Rdn rdn;
    rdn.avas.push_back(ava("cn", v));
    const Dn d(std::vector<Rdn>{rdn, Rdn{{ava("o", "Acme")}}});
    const std::string text = d.to_string();
    auto back = Dn::parse(text);
    ASSERT_TRUE(back) << text << ": " << back.error().describe();
    EXPECT_EQ(back->rdns(), d.rdns()) << text;
  }
}

TEST(Dn, ComparesLikeADirectory) {
  EXPECT_EQ(dn("CN=John  Doe,OU=Sales,O=Acme"), dn("cn=john doe, ou=sales, o=acme"));
  EXPECT_EQ(dn("2.5.4.3=John,0.9.2342.19200300.100.1.25=example"), dn("cn=JOHN,dc=Example"));
  EXPECT_EQ(dn("cn=a+uid=b,o=x"), dn("UID=B+CN=A,o=x"));
  EXPECT_EQ(dn("cn=#04024869"), dn("cn=HI"));
  EXPECT_EQ(dn("cn=Doe\\2C John"), dn("cn=doe\\, john"));
  EXPECT_FALSE(dn("cn=a,o=x") == dn("cn=a,o=y"));
  EXPECT_FALSE(dn("cn=a b") == dn("cn=ab"));
  EXPECT_FALSE(dn("cn=a") == dn("sn=a"));
  EXPECT_FALSE(dn("cn=a,o=x") == dn("o=x"));
  EXPECT_FALSE(dn("uid=#3003020101") == dn("uid=0"));
  EXPECT_EQ(dn("uid=#3003020101").normalized(), "uid=#3003020101");
  EXPECT_EQ(dn("CN=John  Doe+UID=j,O=Acme").normalized(), "cn=john doe+uid=j,o=acme");
  EXPECT_EQ(dn("cn=\\#x").normalized(), "cn=\\#x");  // a string value never passes for a hex one
}

TEST(Dn, ParentChildAndWithin) {
  const Dn d = dn("cn=John,ou=Sales,o=Acme");
  EXPECT_EQ(d.parent().to_string(), "ou=Sales,o=Acme");
  EXPECT_EQ(d.parent().parent().parent(), Dn());
  EXPECT_TRUE(Dn().parent().empty());
  EXPECT_EQ(format_rdn(d.first_rdn()), "cn=John");
  EXPECT_TRUE(d.is_within(dn("OU=sales,o=ACME")));
  EXPECT_TRUE(d.is_within(d));
  EXPECT_TRUE(d.is_within(Dn()));
  EXPECT_FALSE(d.is_within(dn("ou=Marketing,o=Acme")));
  EXPECT_FALSE(d.parent().is_within(d));
  EXPECT_FALSE(dn("cn=John,o=Acme2").is_within(dn("o=Acme")));
  Rdn rdn;
  rdn.avas.push_back(ava("cn", "Doe, Jane"));
  EXPECT_EQ(d.parent().child(rdn).to_string(), "cn=Doe\\, Jane,ou=Sales,o=Acme");
}

struct BadDn {
  std::string text;
  std::size_t offset;
  std::string says;
};

TEST(Dn, EveryBadDnNamesTheOffsetAndWhatWasExpected) {
  const std::vector<BadDn> cases = {
      {"cn", 2, "expected '=' after the attribute type 'cn'"},
      {"c n=x", 2, "expected '=' after the attribute type 'c'"},
      {"=x", 0, "expected an attribute type"},
      {"cn=a,", 5, "expected an attribute type"},
      {"cn=a+", 5, "expected an attribute type"},
      {"cn=a;o=b", 4, "';' must be escaped"},
      {"cn=a\"b", 4, "'\"' must be escaped"},
      {"cn=<b>", 3, "'<' must be escaped"},
      {std::string("cn=a\0b", 6), 4, "NUL"},
      {"cn=a\\", 4, "ends in '\\'"},
      {"cn=a\\zz", 4, "'\\z' is not an escape"},
      {"cn=a\\4", 4, "expected two hex digits"},
      {"cn=a\\4x", 4, "expected two hex digits"},
      {"cn=#", 4, "expected hex digits after '#'"},
      {"cn=#123", 4, "even number of hex digits"},
      {"cn=#12 x", 7, "expected ',' or '+'"},
      {"2.05.4=x", 2, "must not start with 0"},
      {"2=x", 0, "at least two components"},
      {"1.=x", 2, "expected a digit in the OID"},
  };
  for (const BadDn& c : cases) {
    auto parsed = Dn::parse(c.text);
    ASSERT_FALSE(parsed) << c.text;
    EXPECT_EQ(parsed.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(parsed.error().message.find("at offset " + std::to_string(c.offset) + ":"), std::string::npos)
        << c.text << ": " << parsed.error().message;
    EXPECT_NE(parsed.error().message.find(c.says), std::string::npos) << c.text << ": " << parsed.error().message;
    EXPECT_FALSE(parsed.error().remedy.empty());
  }
}

}  // namespace
}  // namespace bridgehead::directory
