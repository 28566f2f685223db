#include "smtp/client/reply_reader.hpp"

#include <gtest/gtest.h>

#include "smtp/client/connection.hpp"

namespace bridgehead::smtp::client {
namespace {

using Status = ReplyReader::Status;

TEST(ReplyReader, SingleLineReply) {
  ReplyReader r;
  r.append("250 2.1.0 Ok\r\n");
  ServerReply reply;
  ASSERT_EQ(r.next(reply), Status::kComplete);
  EXPECT_EQ(reply.code, 250);
  EXPECT_EQ(reply.one_line(), "250 2.1.0 Ok");
  EXPECT_EQ(r.next(reply), Status::kNeedMore);
  EXPECT_EQ(r.buffered(), 0u);
}

TEST(ReplyReader, MultiLineReplyIsJoinedWithSpacesAndTheRepeatedEnhancedCodeOnce) {
  ReplyReader r;
  r.append("550-5.1.1 <x@y>: Recipient address rejected:\r\n550 5.1.1 user unknown\r\n");
  ServerReply reply;
  ASSERT_EQ(r.next(reply), Status::kComplete);
  EXPECT_EQ(reply.code, 550);
  ASSERT_EQ(reply.lines.size(), 2u);
  EXPECT_EQ(reply.one_line(), "550 5.1.1 <x@y>: Recipient address rejected: user unknown");
}

TEST(ReplyReader, ReplyArrivingInPiecesIsCompleteOnlyWithItsLastLine) {
  ReplyReader r;
  ServerReply reply;
  r.append("220-mx.example ESMTP\r\n220");
  EXPECT_EQ(r.next(reply), Status::kNeedMore);
  r.append(" ready\r");
  EXPECT_EQ(r.next(reply), Status::kNeedMore);
  r.append("\n354 go on\r\n");
  ASSERT_EQ(r.next(reply), Status::kComplete);
  EXPECT_EQ(reply.one_line(), "220 mx.example ESMTP ready");
  ASSERT_EQ(r.next(reply), Status::kComplete);
  EXPECT_EQ(reply.code, 354);
}

TEST(ReplyReader, PipelinedRepliesComeOutInOrder) {
  ReplyReader r;
  r.append("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550 5.1.1 no\r\n354 End data\r\n");
  ServerReply reply;
  std::vector<int> codes;
  while (r.next(reply) == Status::kComplete) codes.push_back(reply.code);
  EXPECT_EQ(codes, (std::vector<int>{250, 250, 550, 354}));
}

TEST(ReplyReader, BareCodeAndBareLfAreAccepted) {
  ReplyReader r;
  r.append("250\n");
  ServerReply reply;
  ASSERT_EQ(r.next(reply), Status::kComplete);
  EXPECT_EQ(reply.one_line(), "250");
}

TEST(ReplyReader, GarbageIsMalformed) {
  for (std::string bad :
       {"hello there\r\n", "25 short\r\n", "250_x\r\n", "150 one hundred\r\n", "250-first\r\n550 second\r\n"}) {
    ReplyReader r;
    r.append(bad);
    ServerReply reply;
    EXPECT_EQ(r.next(reply), Status::kMalformed) << bad;
    EXPECT_FALSE(r.malformed_line().empty());
  }
}

// Issue 8: reply text goes into logs, error messages, the queue listing and DSNs; what a
// server sends there must not break a line or carry terminal escapes.
TEST(ReplyReader, ControlCharactersAndInvalidUtf8InReplyTextAreEscaped) {
  ReplyReader r;
  r.append("550-5.1.1 bad\rforged\x1b[2J\r\n550 5.1.1 caf\xe9 \xc3\xa4 \\ \x7f end\r\n");
  ServerReply reply;
  ASSERT_EQ(r.next(reply), Status::kComplete);
  EXPECT_EQ(reply.one_line(), "550 5.1.1 bad\\rforged\\x1B[2J caf\\xE9 \xc3\xa4 \\\\ \\x7F end");

  ReplyReader bad;
  bad.append("hello\x1b]0;owned\x07 there\r\n");
  ASSERT_EQ(bad.next(reply), Status::kMalformed);
  EXPECT_EQ(bad.malformed_line(), "hello\\x1B]0;owned\\x07 there");
}

TEST(ReplyReader, EndlessLineIsMalformed) {
  ReplyReader r;
  r.append("250 " + std::string(ReplyReader::kMaxReply + 10, 'x'));
  ServerReply reply;
  EXPECT_EQ(r.next(reply), Status::kMalformed);
}

TEST(ParseCapabilities, ReadsKnownKeywordsCaseInsensitively) {
  ServerReply ehlo{250,
                   {"mx.example", "pipelining", "SIZE 10240000", "8BITMIME", "SmtpUtf8", "DSN", "STARTTLS",
                    "ENHANCEDSTATUSCODES", "CHUNKING", "AUTH PLAIN LOGIN", "X-UNKNOWN 1"}};
  Capabilities caps;
  caps.esmtp = true;
  parse_capabilities(ehlo, caps);
  EXPECT_TRUE(caps.pipelining);
  EXPECT_EQ(caps.size, 10240000u);
  EXPECT_TRUE(caps.eight_bit_mime);
  EXPECT_TRUE(caps.smtputf8);
  EXPECT_TRUE(caps.dsn);
  EXPECT_TRUE(caps.starttls);
  EXPECT_TRUE(caps.enhanced_status_codes);
  EXPECT_TRUE(caps.chunking);
}

TEST(ParseCapabilities, TheGreetingLineIsNotAKeywordAndSizeWithoutNumberIsNoLimit) {
  ServerReply ehlo{250, {"PIPELINING", "SIZE"}};
  Capabilities caps;
  caps.dsn = true;  // reset by the parse
  parse_capabilities(ehlo, caps);
  EXPECT_FALSE(caps.pipelining);
  EXPECT_FALSE(caps.dsn);
  EXPECT_EQ(caps.size, 0u);
}

}  // namespace
}  // namespace bridgehead::smtp::client
