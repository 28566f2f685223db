#include "directory/mapping/text_functions.hpp"

#include <string>

#include <gtest/gtest.h>

namespace bridgehead::directory::mapping {
namespace {

template <typename F>
std::string transformed(F f, std::string_view in) {
  std::string out;
  EXPECT_TRUE(f(in, out)) << in;
  return out;
}

TEST(MappingText, CaseCoversTheLettersOfEuropeanNames) {
  EXPECT_EQ(transformed(lower_text, "JOHN Doe"), "john doe");
  EXPECT_EQ(transformed(upper_text, "john doe"), "JOHN DOE");
  EXPECT_EQ(transformed(lower_text, "MÜLLER ÅSE ÿ"), "müller åse ÿ");
  EXPECT_EQ(transformed(upper_text, "müller åse ÿ"), "MÜLLER ÅSE Ÿ");
  EXPECT_EQ(transformed(upper_text, "łukasz żółć"), "ŁUKASZ ŻÓŁĆ");
  EXPECT_EQ(transformed(lower_text, "ŁUKASZ ŻÓŁĆ ŇŐ"), "łukasz żółć ňő");
  EXPECT_EQ(transformed(upper_text, "straße"), "STRAßE") << "no mapping changes the length";
  EXPECT_EQ(transformed(upper_text, "αβγ ς"), "ΑΒΓ Σ");
  EXPECT_EQ(transformed(lower_text, "ΑΒΓ"), "αβγ");
  EXPECT_EQ(transformed(upper_text, "иван ёж"), "ИВАН ЁЖ");
  EXPECT_EQ(transformed(lower_text, "ИВАН ЁЖ"), "иван ёж");
  EXPECT_EQ(transformed(lower_text, "İı"), "İı") << "the Turkish i has no same-length partner";
  EXPECT_EQ(transformed(upper_text, "日本 x"), "日本 X");
  std::string out;
  EXPECT_FALSE(lower_text("a\xff", out));
  EXPECT_FALSE(upper_text("\xc3", out));
}

TEST(MappingText, ProperStartsEveryWord) {
  EXPECT_EQ(transformed(proper_text, "mary-jane o'neil"), "Mary-Jane O'Neil");
  EXPECT_EQ(transformed(proper_text, "JOHN DOE"), "John Doe");
  EXPECT_EQ(transformed(proper_text, "élodie  durand"), "Élodie  Durand");
  EXPECT_EQ(transformed(proper_text, "o\u2019brien"), "O\u2019Brien");
  EXPECT_EQ(transformed(proper_text, "3RD floor"), "3rd Floor");
  std::string out;
  EXPECT_FALSE(proper_text("\xe2\x82", out));
}

TEST(MappingText, LeftAndSubstrCountCharacters) {
  std::string out;
  ASSERT_TRUE(left_text("Müller", 2, out));
  EXPECT_EQ(out, "Mü");
  ASSERT_TRUE(left_text("Doe", 10, out));
  EXPECT_EQ(out, "Doe");
  ASSERT_TRUE(left_text("Doe", 0, out));
  EXPECT_EQ(out, "");
  ASSERT_TRUE(substr_text("Müller", 2, 3, out));
  EXPECT_EQ(out, "üll");
  ASSERT_TRUE(substr_text("Müller", 2, std::string_view::npos, out));
  EXPECT_EQ(out, "üller");
  ASSERT_TRUE(substr_text("Doe", 9, 2, out));
  EXPECT_EQ(out, "");
  EXPECT_FALSE(left_text("ab\xff", 1, out));
  EXPECT_FALSE(substr_text("ab\xff", 1, 1, out));
}

TEST(MappingText, StripTrimsOrRemovesCharacters) {
  std::string out;
  ASSERT_TRUE(strip_text("  John Doe \t", "", out));
  EXPECT_EQ(out, "John Doe");
  ASSERT_TRUE(strip_text("+1 (555) 123-4567", " ()-", out));
  EXPECT_EQ(out, "+15551234567");
  ASSERT_TRUE(strip_text("a·b·ü", "·", out));
  EXPECT_EQ(out, "abü");
  EXPECT_FALSE(strip_text("a\xff", "", out));
  EXPECT_FALSE(strip_text("a", "\xff", out));
}

TEST(MappingText, ReplaceEveryOccurrenceLeftToRight) {
  std::string out;
  replace_text("a.b.c", ".", "-", out);
  EXPECT_EQ(out, "a-b-c");
  replace_text("aaa", "aa", "b", out);
  EXPECT_EQ(out, "ba");
  replace_text("jdoe@acme.com", "@acme.com", "", out);
  EXPECT_EQ(out, "jdoe");
  replace_text("none", "x", "y", out);
  EXPECT_EQ(out, "none");
}

TEST(MappingText, NamePartsOfDisplayAndFullNames) {
  struct Case {
    std::string_view name;
    std::string_view first;  // "" for no value
    std::string_view last;
  };
  for (const Case& c : std::initializer_list<Case>{
           {"Doe, John", "John", "Doe"},
           {"John Doe", "John", "Doe"},
           {"John Q. Doe", "John", "Doe"},
           {"  John   Doe  ", "John", "Doe"},
           {"Doe, John Q.", "John", "Doe"},
           {"Ludwig van Beethoven", "Ludwig", "van Beethoven"},
           {"Anna Maria de la Cruz", "Anna", "de la Cruz"},
           {"Van Morrison", "Van", "Morrison"},
           {"van Beethoven, Ludwig", "Ludwig", "van Beethoven"},
           {"John Doe Jr.", "John", "Doe"},
           {"John Doe, Jr.", "John", "Doe"},
           {"John Doe III", "John", "Doe"},
           {"John Doe/Sales/Acme", "John", "Doe"},
           {"CN=John Doe/OU=Sales/O=Acme", "John", "Doe"},
           {"cn=Doe\\, John,o=Acme", "John", "Doe"},
           {"Madonna", "", "Madonna"},
           {"Jr.", "", "Jr."},
       }) {
    std::string out;
    std::string why;
    const auto first = name_part(c.name, NamePart::kFirst, out, why);
    EXPECT_EQ(first == Outcome::kValue ? out : std::string(), c.first) << c.name << " " << why;
    EXPECT_EQ(first, c.first.empty() ? Outcome::kNoValue : Outcome::kValue) << c.name;
    EXPECT_EQ(name_part(c.name, NamePart::kLast, out, why), Outcome::kValue) << c.name << " " << why;
    EXPECT_EQ(out, c.last) << c.name;
  }
}

TEST(MappingText, NamePartsOfUnreadableNames) {
  struct Case {
    std::string_view name;
    std::string_view why;
  };
  for (const Case& c : std::initializer_list<Case>{
           {"Doe,", "nothing after its comma"},
           {", John", "nothing before its comma"},
           {"/Sales/Acme", "certifier"},
           {"John Doe/", "part 2 is empty"},
           {"J\xff", "not valid UTF-8"},
       }) {
    std::string out;
    std::string why;
    EXPECT_EQ(name_part(c.name, NamePart::kLast, out, why), Outcome::kBad) << c.name;
    EXPECT_NE(why.find(c.why), std::string::npos) << c.name << ": " << why;
  }
  std::string out;
  std::string why;
  EXPECT_EQ(name_part(" \t", NamePart::kFirst, out, why), Outcome::kNoValue);
  EXPECT_EQ(name_part("", NamePart::kLast, out, why), Outcome::kNoValue);
}

TEST(MappingText, NotesNamesFromAnyFormAndLdapDns) {
  struct Case {
    std::string_view in;
    std::string_view abbreviated;
    std::string_view canonical;
    std::string_view x500;
  };
  for (const Case& c : std::initializer_list<Case>{
           {"cn=John Doe,ou=Sales,o=Acme", "John Doe/Sales/Acme", "CN=John Doe/OU=Sales/O=Acme",
            "CN=John Doe,OU=Sales,O=Acme"},
           {"John Doe/Sales/Acme", "John Doe/Sales/Acme", "CN=John Doe/OU=Sales/O=Acme", "CN=John Doe,OU=Sales,O=Acme"},
           {"CN=John Doe/OU=Sales/O=Acme/C=us", "John Doe/Sales/Acme/US", "CN=John Doe/OU=Sales/O=Acme/C=US",
            "CN=John Doe,OU=Sales,O=Acme,C=US"},
           {"Doe, John/Acme", "Doe, John/Acme", "CN=Doe, John/O=Acme", "CN=Doe\\, John,O=Acme"},
           {"/Sales/Acme", "/Sales/Acme", "OU=Sales/O=Acme", "OU=Sales,O=Acme"},
       }) {
    std::string out;
    std::string why;
    ASSERT_EQ(notes_name(c.in, NameForm::kAbbreviated, out, why), Outcome::kValue) << c.in << ": " << why;
    EXPECT_EQ(out, c.abbreviated);
    ASSERT_EQ(notes_name(c.in, NameForm::kCanonical, out, why), Outcome::kValue) << c.in << ": " << why;
    EXPECT_EQ(out, c.canonical);
    ASSERT_EQ(notes_name(c.in, NameForm::kX500, out, why), Outcome::kValue) << c.in << ": " << why;
    EXPECT_EQ(out, c.x500);
  }
  std::string out;
  std::string why;
  EXPECT_EQ(notes_name("CN=John Doe,OU=Users,DC=acme,DC=com", NameForm::kAbbreviated, out, why), Outcome::kBad);
  EXPECT_NE(why.find("'DC' is not part of a Notes name"), std::string::npos) << why;
  EXPECT_EQ(notes_name("John Doe", NameForm::kX500, out, why), Outcome::kBad);
  EXPECT_NE(why.find("no organization"), std::string::npos) << why;
  EXPECT_EQ(notes_name("  ", NameForm::kX500, out, why), Outcome::kNoValue);
}

}  // namespace
}  // namespace bridgehead::directory::mapping
