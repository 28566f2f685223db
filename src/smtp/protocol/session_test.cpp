#include "smtp/protocol/session.hpp"

#include <gtest/gtest.h>

#include "smtp/protocol/data_decoder.hpp"

namespace bridgehead::smtp {
namespace {

SessionOptions options() {
  SessionOptions o;
  o.hostname = "bridge.example";
  o.max_message_size = 1000;
  o.max_recipients = 3;
  o.max_junk_commands = 5;
  o.max_errors = 50;
  o.starttls_available = true;
  return o;
}

// Refuses anyone at unknown.example, like an address book would.
std::optional<Reply> check(const std::string& address) {
  if (address.ends_with("@unknown.example")) return Reply{550, "5.1.1", "User unknown"};
  if (address.ends_with("@down.example")) return Reply{451, "4.3.0", "Directory unavailable"};
  return std::nullopt;
}

class SessionTest : public testing::Test {
 protected:
  Session s{options(), check};

  Action expect(std::string_view line, int code, const std::string& enhanced,
                NextStep next = NextStep::kContinue) {
    auto a = s.on_line(line);
    EXPECT_TRUE(a.reply) << line;
    if (a.reply) {
      EXPECT_EQ(a.reply->code, code) << line << " -> " << a.reply->render();
      EXPECT_EQ(a.reply->enhanced, enhanced) << line << " -> " << a.reply->render();
    }
    EXPECT_EQ(a.next, next) << line;
    return a;
  }
  void ehlo() { expect("EHLO client.example", 250, ""); }
  void start_transaction() {
    ehlo();
    expect("MAIL FROM:<alice@exchange.example>", 250, "2.1.0");
    expect("RCPT TO:<bob@notes.example>", 250, "2.1.5");
  }
};

void expect_reply(const Action& a, int code, const std::string& enhanced,
                  NextStep next = NextStep::kContinue) {
  ASSERT_TRUE(a.reply);
  EXPECT_EQ(a.reply->code, code) << a.reply->render();
  EXPECT_EQ(a.reply->enhanced, enhanced) << a.reply->render();
  EXPECT_EQ(a.next, next);
}

TEST_F(SessionTest, Greeting) {
  EXPECT_EQ(s.greeting().code, 220);
  EXPECT_EQ(s.greeting().render().rfind("220 bridge.example", 0), 0u);
  EXPECT_EQ(s.state(), SessionState::kConnected);
}

TEST_F(SessionTest, EhloListsExtensionsInOrder) {
  auto a = expect("EHLO client.example", 250, "");
  EXPECT_EQ(
      a.reply->render(),
      "250-bridge.example\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-8BITMIME\r\n"
      "250-ENHANCEDSTATUSCODES\r\n250-DSN\r\n250-SMTPUTF8\r\n250-CHUNKING\r\n250 STARTTLS\r\n");
  EXPECT_EQ(s.state(), SessionState::kReady);
  EXPECT_TRUE(s.esmtp());
  EXPECT_EQ(s.helo(), "client.example");
}

TEST(Session, EhloOmitsStarttlsWhenNotAvailableOrActive) {
  for (auto [available, active] :
       {std::pair{false, false}, std::pair{true, true}, std::pair{false, true}}) {
    auto o = options();
    o.starttls_available = available;
    o.tls_active = active;
    Session s(o, nullptr);
    auto a = s.on_line("EHLO c.example");
    ASSERT_TRUE(a.reply);
    EXPECT_EQ(a.reply->render().find("STARTTLS"), std::string::npos);
    EXPECT_NE(a.reply->render().find("250 CHUNKING\r\n"), std::string::npos);
  }
}

TEST_F(SessionTest, HeloIsPlainAndDisablesEsmtpParameters) {
  auto a = expect("HELO client.example", 250, "");
  EXPECT_EQ(a.reply->render(), "250 bridge.example\r\n");
  EXPECT_FALSE(s.esmtp());
  expect("MAIL FROM:<a@b.example> SIZE=10", 555, "5.5.4");
  expect("MAIL FROM:<a@b.example> BODY=8BITMIME", 555, "5.5.4");
  expect("MAIL FROM:<a@b.example>", 250, "2.1.0");
  expect("RCPT TO:<b@c.example> NOTIFY=NEVER", 555, "5.5.4");
  expect("RCPT TO:<b@c.example>", 250, "2.1.5");
}

TEST_F(SessionTest, FullTransactionFillsTheEnvelope) {
  ehlo();
  expect("MAIL FROM:<alice@Exchange.Example> SIZE=500 BODY=8BITMIME RET=HDRS ENVID=Q+2B1", 250,
         "2.1.0");
  expect("RCPT TO:<bob@notes.example> NOTIFY=FAILURE,DELAY ORCPT=rfc822;bob@notes.example", 250,
         "2.1.5");
  expect("RCPT TO:<carol@notes.example>", 250, "2.1.5");
  EXPECT_EQ(s.state(), SessionState::kRcpt);
  const Envelope& e = s.envelope();
  EXPECT_EQ(e.mail_from, "alice@Exchange.Example");  // domain kept as given
  EXPECT_EQ(e.declared_size, 500u);
  EXPECT_EQ(e.body, BodyType::k8BitMime);
  EXPECT_EQ(e.ret, DsnRet::kHeaders);
  EXPECT_EQ(e.envid, "Q+1");
  EXPECT_EQ(e.helo, "client.example");
  EXPECT_FALSE(e.tls);
  EXPECT_FALSE(e.smtputf8);
  ASSERT_EQ(e.recipients.size(), 2u);
  EXPECT_EQ(e.recipients[0], (Recipient{"bob@notes.example", kNotifyFailure | kNotifyDelay,
                                        "rfc822;bob@notes.example"}));
  EXPECT_EQ(e.recipients[1], (Recipient{"carol@notes.example", kNotifyNone, ""}));
  expect("DATA", 354, "", NextStep::kReadData);
  EXPECT_EQ(s.state(), SessionState::kData);
  auto end = s.on_message_end(std::nullopt, std::string("4F2A"));
  expect_reply(end, 250, "2.0.0");
  EXPECT_EQ(end.reply->text, "Ok: queued as 4F2A");
  EXPECT_EQ(s.state(), SessionState::kReady);
  EXPECT_TRUE(s.envelope().recipients.empty());
  // A second transaction on the same connection.
  expect("MAIL FROM:<>", 250, "2.1.0");
  EXPECT_EQ(s.envelope().mail_from, "");
}

TEST_F(SessionTest, RecipientsRefusedForSyntaxAlsoMakeDataA554) {
  ehlo();
  expect("MAIL FROM:<a@exchange.example>", 250, "2.1.0");
  auto bad = s.on_line("rcpt TO:<no closing bracket");
  ASSERT_TRUE(bad.reply);
  EXPECT_GE(bad.reply->code, 500);
  expect("DATA", 554, "5.5.1");
}

TEST_F(SessionTest, PipelinedBatchWithRejectedRecipientsGetsDataRefused) {
  ehlo();
  // RFC 2920: the client sends the whole batch, then reads the replies in order.
  const std::vector<std::pair<std::string, int>> batch = {{"MAIL FROM:<a@exchange.example>", 250},
                                                          {"RCPT TO:<x@unknown.example>", 550},
                                                          {"RCPT TO:<y@unknown.example>", 550},
                                                          {"DATA", 554}};
  for (const auto& [line, code] : batch) {
    auto a = s.on_line(line);
    ASSERT_TRUE(a.reply);
    EXPECT_EQ(a.reply->code, code) << line;
    EXPECT_EQ(a.next, NextStep::kContinue) << line;
  }
  EXPECT_EQ(s.state(), SessionState::kMail);
  expect("RSET", 250, "2.0.0");
  EXPECT_EQ(s.state(), SessionState::kReady);
}

TEST_F(SessionTest, PipelinedBatchWithOneGoodRecipientReadsData) {
  ehlo();
  expect("MAIL FROM:<a@exchange.example>", 250, "2.1.0");
  expect("RCPT TO:<x@unknown.example>", 550, "5.1.1");
  expect("RCPT TO:<y@down.example>", 451, "4.3.0");
  expect("RCPT TO:<bob@notes.example>", 250, "2.1.5");
  expect("DATA", 354, "", NextStep::kReadData);
  ASSERT_EQ(s.envelope().recipients.size(), 1u);
  EXPECT_EQ(s.envelope().recipients[0].address, "bob@notes.example");
}

TEST_F(SessionTest, WrongSequence) {
  expect("MAIL FROM:<a@b.example>", 503, "5.5.1");
  expect("RCPT TO:<a@b.example>", 503, "5.5.1");
  expect("DATA", 503, "5.5.1");
  ehlo();
  expect("RCPT TO:<a@b.example>", 503, "5.5.1");
  expect("DATA", 503, "5.5.1");
  expect("MAIL FROM:<a@b.example>", 250, "2.1.0");
  expect("DATA", 503, "5.5.1");                     // no RCPT tried at all
  expect("MAIL FROM:<a@b.example>", 503, "5.5.1");  // nested
  EXPECT_EQ(s.state(), SessionState::kMail);
}

TEST_F(SessionTest, EhloAgainResetsTheTransaction) {
  start_transaction();
  expect("EHLO other.example", 250, "");
  EXPECT_EQ(s.state(), SessionState::kReady);
  EXPECT_TRUE(s.envelope().recipients.empty());
  expect("DATA", 503, "5.5.1");
  expect("HELO third.example", 250, "");
  EXPECT_EQ(s.helo(), "third.example");
}

TEST_F(SessionTest, SizeOverLimitIsRefusedAtMail) {
  ehlo();
  expect("MAIL FROM:<a@b.example> SIZE=1001", 552, "5.3.4");
  expect("MAIL FROM:<a@b.example> SIZE=99999999999999999999999", 552, "5.3.4");
  expect("MAIL FROM:<a@b.example> SIZE=1000", 250, "2.1.0");
}

TEST_F(SessionTest, TooManyRecipients) {
  ehlo();
  expect("MAIL FROM:<a@b.example>", 250, "2.1.0");
  for (int i = 0; i < 3; ++i)
    expect("RCPT TO:<r" + std::to_string(i) + "@b.example>", 250, "2.1.5");
  expect("RCPT TO:<r4@b.example>", 452, "4.5.3");
  EXPECT_EQ(s.envelope().recipients.size(), 3u);
  expect("DATA", 354, "", NextStep::kReadData);
}

TEST_F(SessionTest, NullCheckAcceptsEveryone) {
  Session open(options(), nullptr);
  open.on_line("EHLO c.example");
  open.on_line("MAIL FROM:<a@b.example>");
  auto a = open.on_line("RCPT TO:<x@unknown.example>");
  expect_reply(a, 250, "2.1.5");
}

TEST_F(SessionTest, Utf8RecipientNeedsSmtputf8Transaction) {
  const std::string utf8 = "RCPT TO:<j\xc3\xb8rn@b\xc3\xa4r.example>";
  ehlo();
  expect("MAIL FROM:<a@b.example>", 250, "2.1.0");
  expect(utf8, 553, "5.6.7");
  expect("RSET", 250, "2.0.0");
  expect("MAIL FROM:<a@b.example> SMTPUTF8", 250, "2.1.0");
  EXPECT_TRUE(s.envelope().smtputf8);
  expect(utf8, 250, "2.1.5");
  expect("RSET", 250, "2.0.0");
  expect("MAIL FROM:<j\xc3\xb8rn@b.example>", 553, "5.6.7");
}

TEST_F(SessionTest, InjectionInCommandsIsRefused) {
  ehlo();
  expect("MAIL FROM:<a@b.example>", 250, "2.1.0");
  expect("RCPT TO:<b@c.example>\r\nDATA", 500, "5.5.2");
  expect(std::string("RCPT TO:<b@c.example\0>", 22), 500, "5.5.2");
  EXPECT_TRUE(s.envelope().recipients.empty());
}

TEST_F(SessionTest, SimpleCommands) {
  expect("NOOP", 250, "2.0.0");
  expect("VRFY bob", 252, "2.5.0");
  expect("EXPN staff", 502, "5.5.1");
  expect("HELP", 214, "2.0.0");
  expect("AUTH PLAIN AAAA", 502, "5.5.1");
  expect("FROB", 500, "5.5.1");
  expect("RSET", 250, "2.0.0");
  EXPECT_EQ(s.state(), SessionState::kConnected);
  expect("QUIT", 221, "2.0.0", NextStep::kClose);
  EXPECT_EQ(s.state(), SessionState::kClosed);
  expect("NOOP", 421, "4.7.0", NextStep::kClose);
}

TEST_F(SessionTest, RsetAbortsTransaction) {
  start_transaction();
  expect("RSET", 250, "2.0.0");
  EXPECT_EQ(s.state(), SessionState::kReady);
  EXPECT_TRUE(s.envelope().recipients.empty());
  EXPECT_EQ(s.envelope().mail_from, "");
}

TEST_F(SessionTest, ParseErrorsComeThrough) {
  ehlo();
  expect("MAIL FROM:<a@b.example> FOO=1", 555, "5.5.4");
  expect("DATA now", 501, "5.5.4");
  expect("RCPT TO:<>", 553, "5.1.3");  // syntax is checked before sequence
}

TEST_F(SessionTest, LineTooLong) { expect_reply(s.on_line_too_long(), 500, "5.5.2"); }

TEST_F(SessionTest, JunkLimitBeforeMail) {
  for (int i = 0; i < 5; ++i)
    expect(i % 2 ? "NOOP" : "XJUNK", i % 2 ? 250 : 500, i % 2 ? "2.0.0" : "5.5.1");
  expect("RSET", 421, "4.7.0", NextStep::kClose);
  EXPECT_EQ(s.state(), SessionState::kClosed);
}

TEST_F(SessionTest, JunkIsNotCountedOnceMailHappened) {
  ehlo();
  expect("MAIL FROM:<a@b.example>", 250, "2.1.0");
  for (int i = 0; i < 20; ++i) expect("NOOP", 250, "2.0.0");
}

TEST(Session, ErrorLimitCloses) {
  auto o = options();
  o.max_errors = 3;
  Session s(o, check);
  s.on_line("EHLO c.example");
  s.on_line("MAIL FROM:<a@b.example>");
  for (int i = 0; i < 3; ++i) expect_reply(s.on_line("RCPT TO:<x@unknown.example>"), 550, "5.1.1");
  expect_reply(s.on_line("RCPT TO:<x@unknown.example>"), 421, "4.7.0", NextStep::kClose);
  EXPECT_EQ(s.state(), SessionState::kClosed);
}

TEST_F(SessionTest, MessageEndVerdictAndStorageFailures) {
  start_transaction();
  expect("DATA", 354, "", NextStep::kReadData);
  auto a = s.on_message_end(Reply{550, "5.6.0", "bare LF"}, std::string("ID1"));
  expect_reply(a, 550, "5.6.0");
  EXPECT_EQ(s.state(), SessionState::kReady);
  expect("MAIL FROM:<a@b.example>", 250, "2.1.0");
  expect("RCPT TO:<b@c.example>", 250, "2.1.5");
  expect("DATA", 354, "", NextStep::kReadData);
  auto b = s.on_message_end(std::nullopt, tl::unexpected<Reply>(Reply{452, "4.3.1", "Spool full"}));
  expect_reply(b, 452, "4.3.1");
  EXPECT_EQ(s.state(), SessionState::kReady);
}

TEST_F(SessionTest, DataThenContentThroughTheDecoder) {
  start_transaction();
  expect("DATA", 354, "", NextStep::kReadData);
  DataDecoder d(DataDecoder::Mode::kData, ContentLimits{});
  std::string out;
  const std::string wire = "Subject: x\r\n\r\nhi\n.\r\n.\r\nQUIT\r\n";
  const auto n = d.feed(wire, out);
  ASSERT_TRUE(d.done());
  expect_reply(s.on_message_end(d.verdict(), std::string("Q1")), 550, "5.6.0");
  expect(wire.substr(n, wire.size() - n - 2), 221, "2.0.0", NextStep::kClose);
}

TEST_F(SessionTest, BdatFlow) {
  start_transaction();
  auto a = s.on_line("BDAT 10");
  EXPECT_FALSE(a.reply);
  EXPECT_EQ(a.next, NextStep::kReadBdatChunk);
  EXPECT_EQ(s.state(), SessionState::kBdat);
  EXPECT_EQ(s.last_command().bdat_size, 10u);
  EXPECT_FALSE(s.last_command().bdat_last);
  EXPECT_FALSE(s.discarding_content());
  expect_reply(s.on_bdat_chunk(10, std::nullopt), 250, "2.0.0");
  EXPECT_EQ(s.state(), SessionState::kBdat);
  expect("DATA", 503, "5.5.1");
  expect("RCPT TO:<late@b.example>", 503, "5.5.1");
  a = s.on_line("BDAT 5 LAST");
  EXPECT_FALSE(a.reply);
  EXPECT_EQ(a.next, NextStep::kReadBdatChunk);
  EXPECT_TRUE(s.last_command().bdat_last);
  auto end = s.on_message_end(std::nullopt, std::string("B1"));
  expect_reply(end, 250, "2.0.0");
  EXPECT_EQ(s.state(), SessionState::kReady);
}

TEST_F(SessionTest, BdatZeroLast) {
  start_transaction();
  auto a = s.on_line("BDAT 0 LAST");
  EXPECT_EQ(a.next, NextStep::kReadBdatChunk);
  EXPECT_FALSE(a.reply);
  expect_reply(s.on_message_end(std::nullopt, std::string("Z")), 250, "2.0.0");
}

TEST_F(SessionTest, BdatVerdictOnIntermediateChunkResetsTransaction) {
  start_transaction();
  s.on_line("BDAT 10");
  expect_reply(s.on_bdat_chunk(10, Reply{552, "5.3.4", "too big"}), 552, "5.3.4");
  EXPECT_EQ(s.state(), SessionState::kReady);
  // The client had pipelined the next chunk: it is still consumed, then refused.
  auto a = s.on_line("BDAT 10 LAST");
  EXPECT_EQ(a.next, NextStep::kReadBdatChunk);
  EXPECT_TRUE(s.discarding_content());
  expect_reply(s.on_message_end(std::nullopt, std::string("X")), 503, "5.5.1");
  EXPECT_EQ(s.state(), SessionState::kReady);
}

TEST_F(SessionTest, BdatWithoutRecipientsIsReadThenRefused) {
  ehlo();
  expect("MAIL FROM:<a@b.example>", 250, "2.1.0");
  expect("RCPT TO:<x@unknown.example>", 550, "5.1.1");
  auto a = s.on_line("BDAT 20");
  EXPECT_FALSE(a.reply);
  EXPECT_EQ(a.next, NextStep::kReadBdatChunk);  // the 20 bytes must not be read as commands
  EXPECT_TRUE(s.discarding_content());
  expect_reply(s.on_bdat_chunk(20, std::nullopt), 554, "5.5.1");
  EXPECT_EQ(s.state(), SessionState::kReady);
  EXPECT_FALSE(s.discarding_content());
}

TEST_F(SessionTest, BdatWithoutRecipientsLastChunk) {
  ehlo();
  expect("MAIL FROM:<a@b.example>", 250, "2.1.0");
  expect("RCPT TO:<x@unknown.example>", 550, "5.1.1");
  EXPECT_EQ(s.on_line("BDAT 3 LAST").next, NextStep::kReadBdatChunk);
  expect_reply(s.on_message_end(std::nullopt, std::string("never")), 554, "5.5.1");
}

TEST_F(SessionTest, BdatBeforeMailOrEhloIsReadThenRefused) {
  EXPECT_EQ(s.on_line("BDAT 4 LAST").next, NextStep::kReadBdatChunk);
  expect_reply(s.on_message_end(std::nullopt, std::string("never")), 503, "5.5.1");
  EXPECT_EQ(s.state(), SessionState::kConnected);
  ehlo();
  EXPECT_EQ(s.on_line("BDAT 4").next, NextStep::kReadBdatChunk);
  expect_reply(s.on_bdat_chunk(4, std::nullopt), 503, "5.5.1");
  ehlo();
  expect("MAIL FROM:<a@b.example>", 250, "2.1.0");
  EXPECT_EQ(s.on_line("BDAT 4").next, NextStep::kReadBdatChunk);
  expect_reply(s.on_bdat_chunk(4, std::nullopt), 503, "5.5.1");  // no RCPT tried
}

TEST_F(SessionTest, BdatWithDecoderAcrossChunks) {
  start_transaction();
  DataDecoder d(DataDecoder::Mode::kBdat, ContentLimits{});
  std::string out;
  ASSERT_EQ(s.on_line("BDAT 7").next, NextStep::kReadBdatChunk);
  d.feed("Hello\r\n", out);
  expect_reply(s.on_bdat_chunk(7, d.verdict()), 250, "2.0.0");
  ASSERT_EQ(s.on_line("BDAT 6 LAST").next, NextStep::kReadBdatChunk);
  d.feed("world\r", out);
  d.finish(out);
  expect_reply(s.on_message_end(d.verdict(), std::string("Q")), 550, "5.6.0");
}

TEST_F(SessionTest, Starttls) {
  ehlo();
  expect("STARTTLS", 220, "2.0.0", NextStep::kStartTls);
  s.on_tls_started();
  EXPECT_TRUE(s.tls_active());
  EXPECT_EQ(s.state(), SessionState::kConnected);
  EXPECT_EQ(s.helo(), "");
  expect("MAIL FROM:<a@b.example>", 503, "5.5.1");  // EHLO forgotten (RFC 3207 4.2)
  auto a = expect("EHLO client.example", 250, "");
  EXPECT_EQ(a.reply->render().find("STARTTLS"), std::string::npos);
  expect("STARTTLS", 503, "5.5.1");
  expect("MAIL FROM:<a@b.example>", 250, "2.1.0");
  EXPECT_TRUE(s.envelope().tls);
}

TEST_F(SessionTest, StarttlsDuringTransactionIsRefused) {
  start_transaction();
  expect("STARTTLS", 503, "5.5.1");
  EXPECT_EQ(s.state(), SessionState::kRcpt);
}

// The listener drops content in progress whenever transaction() moves on: every way a
// transaction ends or is reset must move it, and nothing inside a transaction may.
TEST_F(SessionTest, EveryResetStartsANewTransactionNumber) {
  auto in_bdat = [&] {
    start_transaction();
    auto a = s.on_line("BDAT 25");
    EXPECT_EQ(a.next, NextStep::kReadBdatChunk);
    const auto n = s.transaction();
    expect_reply(s.on_bdat_chunk(25, std::nullopt), 250, "2.0.0");
    expect("NOOP", 250, "2.0.0");
    expect("DATA", 503, "5.5.1");
    expect("MAIL FROM:<x@b.example>", 503, "5.5.1");
    expect("STARTTLS", 503, "5.5.1");
    EXPECT_EQ(s.on_line_too_long().reply->code, 500);
    EXPECT_EQ(s.transaction(), n) << "a refused command inside the transaction is no reset";
    EXPECT_EQ(s.state(), SessionState::kBdat);
    return n;
  };
  auto n = in_bdat();
  expect("RSET", 250, "2.0.0");
  EXPECT_NE(s.transaction(), n) << "RSET";
  n = in_bdat();
  expect("EHLO again.example", 250, "");
  EXPECT_NE(s.transaction(), n) << "EHLO";
  n = in_bdat();
  expect("HELO again.example", 250, "");
  EXPECT_NE(s.transaction(), n) << "HELO";
  n = in_bdat();
  expect_reply(s.on_bdat_chunk(1, Reply{552, "5.3.4", "too big"}), 552, "5.3.4");
  EXPECT_NE(s.transaction(), n) << "a refused chunk";
  n = in_bdat();
  ASSERT_TRUE(s.on_line("BDAT 1 LAST").next == NextStep::kReadBdatChunk);
  expect_reply(s.on_message_end(std::nullopt, tl::unexpected(Reply{452, "4.3.1", "full"})), 452, "4.3.1");
  EXPECT_NE(s.transaction(), n) << "a failed end of message";
  expect("RSET", 250, "2.0.0");
  n = s.transaction();
  expect("STARTTLS", 220, "2.0.0", NextStep::kStartTls);
  s.on_tls_started();
  EXPECT_NE(s.transaction(), n) << "STARTTLS";
}

TEST(Session, RequiredTlsRefusesMailUntilStarttls) {
  auto o = options();
  o.require_tls = true;
  Session s(o, nullptr);
  s.on_line("EHLO c.example");
  expect_reply(s.on_line("MAIL FROM:<a@b.example>"), 530, "5.7.0");
  EXPECT_EQ(s.state(), SessionState::kReady);
  expect_reply(s.on_line("STARTTLS"), 220, "2.0.0", NextStep::kStartTls);
  s.on_tls_started();
  s.on_line("EHLO c.example");
  expect_reply(s.on_line("MAIL FROM:<a@b.example>"), 250, "2.1.0");

  // No certificate to offer (yet): temporary, so the sender keeps the message.
  o.starttls_available = false;
  Session locked(o, nullptr);
  locked.on_line("EHLO c.example");
  expect_reply(locked.on_line("MAIL FROM:<a@b.example>"), 454, "4.7.0");
}

TEST(Session, StarttlsNotOffered) {
  auto o = options();
  o.starttls_available = false;
  Session s(o, nullptr);
  s.on_line("EHLO c.example");
  expect_reply(s.on_line("STARTTLS"), 454, "4.7.0");
}

TEST_F(SessionTest, PlaintextPipelinedAfterStarttlsIsNotExecuted) {
  ehlo();
  expect("STARTTLS", 220, "2.0.0", NextStep::kStartTls);
  // A listener bug that fed the injected line anyway must not run it (CVE-2011-0411).
  expect("MAIL FROM:<evil@b.example>", 421, "4.7.0", NextStep::kClose);
  EXPECT_TRUE(s.envelope().mail_from.empty());
}

}  // namespace
}  // namespace bridgehead::smtp
