#include "smtp/client/wire_encoding.hpp"

#include <gtest/gtest.h>

#include "core/envelope.hpp"

namespace bridgehead::smtp::client {
namespace {

std::string stuffed(std::string_view content) {
  std::string out;
  append_dot_stuffed(content, out);
  return out;
}

TEST(Xtext, EncodesPlusEqualsAndNonPrintables) {
  EXPECT_EQ(xtext_encode("user@example.com"), "user@example.com");
  EXPECT_EQ(xtext_encode("a+b=c d"), "a+2Bb+3Dc+20d");
  EXPECT_EQ(xtext_encode("\xc3\xa9"), "+C3+A9");
}

TEST(Xtext, OrcptKeepsTheTypeAndEncodesTheAddress) {
  EXPECT_EQ(orcpt_param("rfc822;first+tag@example.com"), "rfc822;first+2Btag@example.com");
  EXPECT_EQ(orcpt_param("no-type@example.com"), "");
  EXPECT_EQ(orcpt_param(""), "");
}

TEST(Notify, FlagsInRfcOrder) {
  EXPECT_EQ(notify_param(kNotifyNone), "");
  EXPECT_EQ(notify_param(kNotifyNever), "NEVER");
  EXPECT_EQ(notify_param(kNotifyDelay | kNotifySuccess), "SUCCESS,DELAY");
  EXPECT_EQ(notify_param(kNotifySuccess | kNotifyFailure | kNotifyDelay), "SUCCESS,FAILURE,DELAY");
}

TEST(EightBit, FindsAnyHighOctet) {
  EXPECT_FALSE(has_8bit("plain ascii\r\n"));
  EXPECT_TRUE(has_8bit("caf\xc3\xa9\r\n"));
  EXPECT_TRUE(has_8bit(std::string(5000, 'a') + "\x80"));
}

TEST(DotStuffing, LeadingDotsAreDoubledAndTheTerminatorAdded) {
  EXPECT_EQ(stuffed("a\r\n.b\r\n..c\r\n.\r\nd\r\n"), "a\r\n..b\r\n...c\r\n..\r\nd\r\n.\r\n");
  EXPECT_EQ(stuffed(".first\r\n"), "..first\r\n.\r\n");
}

TEST(DotStuffing, MissingFinalCrlfIsAddedAndBareLfBecomesCrlf) {
  EXPECT_EQ(stuffed("a\r\nlast"), "a\r\nlast\r\n.\r\n");
  EXPECT_EQ(stuffed("a\n.b\nc"), "a\r\n..b\r\nc\r\n.\r\n");
  EXPECT_EQ(stuffed("x\r\n."), "x\r\n..\r\n.\r\n");
  EXPECT_EQ(stuffed(""), ".\r\n");
}

TEST(DotStuffing, SmugglingAttemptStaysInsideTheMessage) {
  // "\n.\r\n" is an end-of-data to a lax server; stuffed and normalized it is a line "..".
  EXPECT_EQ(stuffed("a\n.\r\nMAIL FROM:<x>\r\n"), "a\r\n..\r\nMAIL FROM:<x>\r\n.\r\n");
}

TEST(MessageSize, CountsTheAddedCrlf) {
  EXPECT_EQ(message_size("a\r\n"), 3u);
  EXPECT_EQ(message_size("a"), 3u);
  EXPECT_EQ(message_size(""), 0u);
}

}  // namespace
}  // namespace bridgehead::smtp::client
