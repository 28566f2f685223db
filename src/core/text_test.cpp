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

}  // namespace
}  // namespace bridgehead
