#include "identity/names.hpp"

#include <openssl/x509.h>

#include <memory>

#include <gtest/gtest.h>

namespace bridgehead::identity {
namespace {

using NamePtr = std::unique_ptr<X509_NAME, decltype(&X509_NAME_free)>;
NamePtr new_name() { return NamePtr(X509_NAME_new(), &X509_NAME_free); }

NotesName parse(std::string_view s) {
  auto n = parse_notes_name(s);
  EXPECT_TRUE(n) << s << ": " << (n ? "" : n.error().describe());
  return n ? *n : NotesName{};
}

std::string error_of(const Expected<NotesName>& r) {
  EXPECT_FALSE(r) << "expected an error, got " << (r ? r->x500() : "");
  if (r) return {};
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  return r.error().message;
}

TEST(NotesNames, AbbreviatedToX500AndBack) {
  auto n = parse("Exchange Connector/Sales/Acme");
  EXPECT_EQ(n.common_name, "Exchange Connector");
  EXPECT_EQ(n.org_units, std::vector<std::string>{"Sales"});
  EXPECT_EQ(n.organization, "Acme");
  EXPECT_FALSE(n.is_certifier());
  EXPECT_EQ(n.x500(), "CN=Exchange Connector,OU=Sales,O=Acme");
  EXPECT_EQ(n.canonical(), "CN=Exchange Connector/OU=Sales/O=Acme");
  EXPECT_EQ(n.abbreviated(), "Exchange Connector/Sales/Acme");
  auto back = parse_x500_name(n.x500());
  ASSERT_TRUE(back) << back.error().describe();
  EXPECT_EQ(back->abbreviated(), "Exchange Connector/Sales/Acme");
}

TEST(NotesNames, CertifierNamesHaveNoCommonName) {
  auto org = parse("/Acme");
  EXPECT_TRUE(org.is_certifier());
  EXPECT_EQ(org.x500(), "O=Acme");
  EXPECT_EQ(org.abbreviated(), "/Acme");
  EXPECT_EQ(org.canonical(), "O=Acme");
  auto unit = parse("/Sales/Acme");
  EXPECT_TRUE(unit.is_certifier());
  EXPECT_EQ(unit.x500(), "OU=Sales,O=Acme");
  EXPECT_EQ(unit.abbreviated(), "/Sales/Acme");
  EXPECT_EQ(parse_x500_name("OU=Sales,O=Acme")->abbreviated(), "/Sales/Acme");
  EXPECT_EQ(parse("OU=Sales/O=Acme").abbreviated(), "/Sales/Acme");
}

TEST(NotesNames, CountryIsATrailingTwoLetterPart) {
  EXPECT_EQ(parse("Exchange Connector/Sales/Acme/US").x500(), "CN=Exchange Connector,OU=Sales,O=Acme,C=US");
  EXPECT_EQ(parse("/Acme/us").x500(), "O=Acme,C=US");
  EXPECT_EQ(parse("/Acme/us").abbreviated(), "/Acme/US");
  EXPECT_EQ(parse("CN=X/O=Acme/C=de").x500(), "CN=X,O=Acme,C=DE");
  // Three letters is an organization, not a country.
  EXPECT_EQ(parse("X/Sales/Ace").x500(), "CN=X,OU=Sales,O=Ace");
}

TEST(NotesNames, SeveralUnitsInnermostFirst) {
  auto n = parse("Ann/Dev/Sales/Acme");
  EXPECT_EQ(n.org_units, (std::vector<std::string>{"Dev", "Sales"}));
  EXPECT_EQ(n.x500(), "CN=Ann,OU=Dev,OU=Sales,O=Acme");
  EXPECT_EQ(n.parent().abbreviated(), "/Dev/Sales/Acme");
  EXPECT_EQ(n.parent().parent().abbreviated(), "/Sales/Acme");
  EXPECT_EQ(parse("/Acme").parent().abbreviated(), "/Acme");
}

TEST(NotesNames, CanonicalInputAndSpacing) {
  EXPECT_EQ(parse("CN=Exchange Connector/OU=Sales/O=Acme").abbreviated(), "Exchange Connector/Sales/Acme");
  EXPECT_EQ(parse("cn=Exchange Connector / ou=Sales / o=Acme").abbreviated(), "Exchange Connector/Sales/Acme");
  EXPECT_EQ(parse("  Exchange Connector / Sales / Acme ").abbreviated(), "Exchange Connector/Sales/Acme");
  EXPECT_TRUE(parse("exchange connector/SALES/acme").same_as(parse("Exchange Connector/Sales/Acme")));
  EXPECT_FALSE(parse("X/Sales/Acme").same_as(parse("X/Acme")));
}

TEST(NotesNames, SpecialCharactersAreEscapedInX500) {
  auto n = parse("Smith, John+Co <x>/Acme; Inc");
  EXPECT_EQ(n.x500(), "CN=Smith\\, John\\+Co \\<x\\>,O=Acme\\; Inc");
  auto back = parse_x500_name(n.x500());
  ASSERT_TRUE(back) << back.error().describe();
  EXPECT_TRUE(back->same_as(n));
  EXPECT_EQ(parse("#1 Connector/Acme").x500(), "CN=\\#1 Connector,O=Acme");
  EXPECT_EQ(parse("a\\b \"q\"/Acme").x500(), "CN=a\\\\b \\\"q\\\",O=Acme");
}

TEST(NotesNames, X500EscapesAndOids) {
  auto n = parse_x500_name("CN=Zo\\C3\\AB,2.5.4.11=Sales,o=Acme");
  ASSERT_TRUE(n) << n.error().describe();
  EXPECT_EQ(n->common_name, "Zo\xC3\xAB");
  EXPECT_EQ(n->abbreviated(), "Zo\xC3\xAB/Sales/Acme");
  auto spaced = parse_x500_name("CN=Exchange Connector, OU=Sales, O=Acme");
  ASSERT_TRUE(spaced);
  EXPECT_EQ(spaced->x500(), "CN=Exchange Connector,OU=Sales,O=Acme");
}

TEST(NotesNames, ErrorsNameTheBadPart) {
  EXPECT_NE(error_of(parse_notes_name("")).find("empty"), std::string::npos);
  EXPECT_NE(error_of(parse_notes_name("X//Acme")).find("part 2 is empty"), std::string::npos);
  EXPECT_NE(error_of(parse_notes_name("Exchange Connector")).find("no organization"), std::string::npos);
  auto short_org = error_of(parse_notes_name("X/IT"));
  EXPECT_NE(short_org.find("'IT'"), std::string::npos) << short_org;
  EXPECT_NE(short_org.find("3 to 64"), std::string::npos) << short_org;
  EXPECT_NE(error_of(parse_notes_name("A/1/2/3/4/5/Acme")).find("at most 4"), std::string::npos);
  auto long_cn = error_of(parse_notes_name(std::string(65, 'x') + "/Acme"));
  EXPECT_NE(long_cn.find("65 characters"), std::string::npos) << long_cn;
  EXPECT_NE(error_of(parse_notes_name("Bad\tName/Acme")).find("control character"), std::string::npos);
  EXPECT_NE(error_of(parse_notes_name("Bad\xC3(/Acme")).find("UTF-8"), std::string::npos);
  EXPECT_NE(error_of(parse_notes_name("O=Acme/CN=X")).find("CN=X is out of place"), std::string::npos);
  EXPECT_NE(error_of(parse_notes_name("CN=X/L=Paris/O=Acme")).find("'L'"), std::string::npos);
  EXPECT_NE(error_of(parse_notes_name("CN=X/Sales/O=Acme")).find("'Sales'"), std::string::npos);
  EXPECT_NE(error_of(parse_notes_name("X/Acme/U1")).find("'U1'"), std::string::npos);  // not a country, O too short
}

TEST(NotesNames, X500Errors) {
  EXPECT_NE(error_of(parse_x500_name("CN=X,L=Paris,O=Acme")).find("'L'"), std::string::npos);
  EXPECT_NE(error_of(parse_x500_name("CN=X+OU=Y,O=Acme")).find("multi-valued"), std::string::npos);
  EXPECT_NE(error_of(parse_x500_name("CN=#0403,O=Acme")).find("hex"), std::string::npos);
  EXPECT_NE(error_of(parse_x500_name("CN=\\zz,O=Acme")).find("escape"), std::string::npos);
  EXPECT_NE(error_of(parse_x500_name("CN=a;b,O=Acme")).find("unescaped ';'"), std::string::npos);
  EXPECT_NE(error_of(parse_x500_name("CN=X,O=Acme\\")).find("lone"), std::string::npos);
  EXPECT_NE(error_of(parse_x500_name("O=Acme,CN=X")).find("out of place"), std::string::npos);
  EXPECT_NE(error_of(parse_x500_name("CN=X")).find("no organization"), std::string::npos);
  EXPECT_NE(error_of(parse_x500_name("Acme")).find("no '='"), std::string::npos);
}

TEST(NotesNames, X509NameRoundTrip) {
  for (const char* text :
       {"Exchange Connector/Sales/Acme", "/Acme", "/Sales/Acme/US", "Zo\xC3\xAB/Dev/Sales/Acme", "Smith, John/Acme"}) {
    auto n = parse(text);
    auto x = new_name();
    ASSERT_TRUE(to_x509_name(n, x.get()));
    // DER order: the most general part first.
    EXPECT_EQ(OBJ_obj2nid(X509_NAME_ENTRY_get_object(X509_NAME_get_entry(x.get(), 0))),
              n.country.empty() ? NID_organizationName : NID_countryName);
    EXPECT_EQ(x509_name_text(x.get()), n.x500()) << text;
    auto back = from_x509_name(x.get());
    ASSERT_TRUE(back) << back.error().describe();
    EXPECT_TRUE(back->same_as(n)) << text;
    EXPECT_EQ(back->abbreviated(), n.abbreviated());
  }
}

TEST(NotesNames, ForeignX509NamesAreRefused) {
  auto add = [](X509_NAME* n, const char* field, const char* value, int set = 0) {
    ASSERT_EQ(
        X509_NAME_add_entry_by_txt(n, field, MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(value), -1, -1, set),
        1);
  };
  auto reversed = new_name();  // `openssl req -subj /CN=x/O=Acme`: CN first in DER
  add(reversed.get(), "CN", "x");
  add(reversed.get(), "O", "Acme");
  EXPECT_NE(error_of(from_x509_name(reversed.get())).find("out of place"), std::string::npos);
  auto locality = new_name();
  add(locality.get(), "O", "Acme");
  add(locality.get(), "L", "Paris");
  add(locality.get(), "CN", "x");
  EXPECT_NE(error_of(from_x509_name(locality.get())).find("localityName"), std::string::npos);
  auto multi = new_name();
  add(multi.get(), "O", "Acme");
  add(multi.get(), "CN", "x");
  add(multi.get(), "OU", "y", -1);  // joins the CN's RDN
  EXPECT_NE(error_of(from_x509_name(multi.get())).find("multi-valued"), std::string::npos);
  auto empty = new_name();
  EXPECT_FALSE(from_x509_name(empty.get()));
}

}  // namespace
}  // namespace bridgehead::identity
