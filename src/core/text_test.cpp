#include "core/text.hpp"

#include <gtest/gtest.h>

#include <string>

namespace bridgehead {
namespace {

TEST(EscapeControl, KeepsPrintableAsciiAndValidUtf8) {
  EXPECT_EQ(escape_control("250 2.0.0 Ok: queued as 4F3A"), "250 2.0.0 Ok: queued as 4F3A");
  EXPECT_EQ(escape_control("550 Empf\xc3\xa4nger unbekannt \xe2\x82\xac \xf0\x9f\x93\xa7"),
            "550 Empf\xc3\xa4nger unbekannt \xe2\x82\xac \xf0\x9f\x93\xa7");
  EXPECT_EQ(escape_control(""), "");
}

TEST(EscapeControl, LineBreaksCannotForgeALogLine) {
  EXPECT_EQ(escape_control("451 busy\r\n2026-01-01 [info] delivered"), "451 busy\\r\\n2026-01-01 [info] delivered");
  EXPECT_EQ(escape_control("a\rb\nc\td"), "a\\rb\\nc\\td");
}

TEST(EscapeControl, OtherControlsDelAndC1AreHexEscaped) {
  EXPECT_EQ(escape_control(std::string("\x1b[31mred\x7f\x00z", 11)), "\\x1B[31mred\\x7F\\x00z");
  EXPECT_EQ(escape_control("\xc2\x9b"
                           "2J"),
            "\\xC2\\x9B2J");                          // C1 CSI in UTF-8
  EXPECT_EQ(escape_control("\xc2\xa0"), "\xc2\xa0");  // U+00A0 is not a control
}

TEST(EscapeControl, InvalidUtf8IsEscapedOctetByOctet) {
  EXPECT_EQ(escape_control("caf\xe9!"), "caf\\xE9!");                     // Latin-1
  EXPECT_EQ(escape_control("\xc0\xaf"), "\\xC0\\xAF");                    // overlong "/"
  EXPECT_EQ(escape_control("\xed\xa0\x80"), "\\xED\\xA0\\x80");           // a surrogate
  EXPECT_EQ(escape_control("\xe2\x82"), "\\xE2\\x82");                    // truncated
  EXPECT_EQ(escape_control("\xf4\x90\x80\x80"), "\\xF4\\x90\\x80\\x80");  // above U+10FFFF
  EXPECT_EQ(escape_control("\x80x"), "\\x80x");                           // lone continuation
}

TEST(EscapeControl, BackslashIsEscapedSoEscapesAreUnambiguous) {
  EXPECT_EQ(escape_control("a\\r\\nb"), "a\\\\r\\\\nb");
  EXPECT_NE(escape_control("\\r"), escape_control("\r"));
}

TEST(FindLineBreak, FindsTheFirstCrOrLfAtEveryPosition) {
  // Every position around the 16-octet steps, each break kind, and text with none.
  for (std::size_t len : {0u, 1u, 15u, 16u, 17u, 31u, 32u, 33u, 100u}) {
    const std::string plain(len, 'x');
    EXPECT_EQ(find_line_break(plain), len);
    for (std::size_t at = 0; at < len; ++at) {
      for (char brk : {'\r', '\n'}) {
        std::string s = plain;
        s[at] = brk;
        if (at + 1 < len) s[len - 1] = brk == '\r' ? '\n' : '\r';  // a later break is not the first
        EXPECT_EQ(find_line_break(s), at) << "len " << len << " at " << at;
      }
    }
  }
  // Octets above 127 and NUL are not breaks (a signed compare must not confuse them).
  std::string high(40, '\xff');
  high[5] = '\0';
  high[37] = '\n';
  EXPECT_EQ(find_line_break(high), 37u);
}

TEST(Has8Bit, FindsAnOctetAbove127AnywhereAndOnlyThen) {
  for (std::size_t len : {0u, 1u, 63u, 64u, 65u, 128u, 200u}) {
    const std::string ascii(len, '\x7f');
    EXPECT_FALSE(has_8bit(ascii)) << len;
    for (std::size_t at = 0; at < len; ++at) {
      std::string s = ascii;
      s[at] = '\x80';
      EXPECT_TRUE(has_8bit(s)) << "len " << len << " at " << at;
    }
  }
}

TEST(Utf8, ValidSequencesOfEveryLength) {
  EXPECT_TRUE(is_valid_utf8(""));
  EXPECT_TRUE(is_valid_utf8(std::string("a\0b", 3)));  // NUL is ASCII
  EXPECT_TRUE(is_valid_utf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\xa7"));
  EXPECT_TRUE(is_valid_utf8("\xed\x9f\xbf"));      // U+D7FF, just below the surrogates
  EXPECT_TRUE(is_valid_utf8("\xf4\x8f\xbf\xbf"));  // U+10FFFF
  const std::string_view s = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x93\xa7";
  EXPECT_EQ(utf8_sequence_length(s, 0), 1u);
  EXPECT_EQ(utf8_sequence_length(s, 1), 2u);
  EXPECT_EQ(utf8_sequence_length(s, 3), 3u);
  EXPECT_EQ(utf8_sequence_length(s, 6), 4u);
  EXPECT_EQ(utf8_sequence_length(s, 2), 0u);  // a continuation octet
}

TEST(Utf8, OverlongsSurrogatesTruncatedAndOutOfRangeAreInvalid) {
  for (const char* bad : {"\xc0\xaf", "\xc1\xbf", "\xe0\x80\xaf", "\xf0\x80\x80\xaf",  // overlong
                          "\xed\xa0\x80", "\xed\xbf\xbf",                              // surrogates
                          "\xe2\x82", "\xf0\x9f\x93", "\xc3",                          // truncated
                          "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xff",              // above U+10FFFF
                          "\x80", "caf\xe9", "\xc3\x28"}) {
    EXPECT_FALSE(is_valid_utf8(bad)) << escape_control(bad);
  }
}

TEST(AsciiCase, LowerAndCompareFoldOnlyAsciiLetters) {
  EXPECT_EQ(to_lower('Q'), 'q');
  EXPECT_EQ(to_lower('@'), '@');
  EXPECT_EQ(to_lower("MAIL From:<A@Example.COM> \xc3\x84"), "mail from:<a@example.com> \xc3\x84");
  EXPECT_TRUE(iequals("Content-Type", "content-TYPE"));
  EXPECT_FALSE(iequals("Content-Type", "Content-Typ"));
  EXPECT_FALSE(iequals("@", "`"));  // 0x40 and 0x60 differ by the case bit but are no letters
  EXPECT_FALSE(iequals("\xc3\x84", "\xc3\xa4"));
  EXPECT_TRUE(istarts_with("RCPT TO:<x>", "rcpt"));
  EXPECT_TRUE(istarts_with("x", ""));
  EXPECT_FALSE(istarts_with("RCP", "rcpt"));
}

TEST(Trim, SpaceAndTabByDefaultOrTheBlanksGiven) {
  EXPECT_EQ(trim(" \t value \t"), "value");
  EXPECT_EQ(trim("  "), "");
  EXPECT_EQ(trim(""), "");
  EXPECT_EQ(trim("a b"), "a b");
  EXPECT_EQ(trim("\r\n value\r\n"), "\r\n value\r\n");
  EXPECT_EQ(trim("\r\n value\r\n", " \t\r\n"), "value");
}

// seven_bit's with_charset measures offsets from the trimmed view: an all-blank value
// (an empty Content-Type) gave a default view and an offset of -2^46 (found by fuzz_seven_bit).
TEST(Trim, NothingLeftIsStillAViewIntoTheText) {
  const std::string_view blank = " \t ";
  const auto t = trim(blank);
  EXPECT_TRUE(t.empty());
  EXPECT_EQ(t.data(), blank.data() + blank.size());
}

TEST(Grouped, PutsACommaBetweenThousands) {
  EXPECT_EQ(grouped(0), "0");
  EXPECT_EQ(grouped(999), "999");
  EXPECT_EQ(grouped(1000), "1,000");
  EXPECT_EQ(grouped(40000), "40,000");
  EXPECT_EQ(grouped(1234567), "1,234,567");
}

TEST(EditDistance, CountsTranspositionsAsOneAndIgnoresAsciiCase) {
  EXPECT_EQ(edit_distance("smtp", "smtp"), 0u);
  EXPECT_EQ(edit_distance("SMTP", "smtp"), 0u);
  EXPECT_EQ(edit_distance("smpt", "smtp"), 1u);
  EXPECT_EQ(edit_distance("frist", "first"), 1u);  // so 'first' wins over 'list' (2)
  EXPECT_EQ(edit_distance("frist", "list"), 2u);
  EXPECT_EQ(edit_distance("", "abc"), 3u);
  EXPECT_EQ(edit_distance("abc", ""), 3u);
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
  EXPECT_EQ(edit_distance("ca", "abc"), 3u);  // OSA: a transposed pair is not edited again
}

}  // namespace
}  // namespace bridgehead
