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
  EXPECT_EQ(escape_control("\xc2\x9b" "2J"), "\\xC2\\x9B2J");  // C1 CSI in UTF-8
  EXPECT_EQ(escape_control("\xc2\xa0"), "\xc2\xa0");             // U+00A0 is not a control
}

TEST(EscapeControl, InvalidUtf8IsEscapedOctetByOctet) {
  EXPECT_EQ(escape_control("caf\xe9!"), "caf\\xE9!");                // Latin-1
  EXPECT_EQ(escape_control("\xc0\xaf"), "\\xC0\\xAF");               // overlong "/"
  EXPECT_EQ(escape_control("\xed\xa0\x80"), "\\xED\\xA0\\x80");      // a surrogate
  EXPECT_EQ(escape_control("\xe2\x82"), "\\xE2\\x82");               // truncated
  EXPECT_EQ(escape_control("\xf4\x90\x80\x80"), "\\xF4\\x90\\x80\\x80");  // above U+10FFFF
  EXPECT_EQ(escape_control("\x80x"), "\\x80x");                      // lone continuation
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

}  // namespace
}  // namespace bridgehead
