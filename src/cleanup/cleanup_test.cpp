#include "cleanup/cleanup.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace bridgehead::cleanup {
namespace {

using smtp::ContentLimits;
using smtp::ContentPosition;
using smtp::DataDecoder;
using Mode = DataDecoder::Mode;

// What the listener does with a message: decodes it (whole, or one octet at a time as a
// slow client sends it), hands its header section to cleanup, and answers with the first
// problem either found.
struct Outcome {
  std::optional<smtp::Reply> reply;
  Message message;
};

Outcome receive(std::string_view wire, ContentLimits limits, unsigned max_received, bool bytewise = false,
                Mode mode = Mode::kData, std::vector<std::shared_ptr<const Step>> steps = {}) {
  DataDecoder d(mode, limits);
  std::string out;
  if (bytewise) {
    for (std::size_t i = 0; i < wire.size() && !d.done(); ++i) d.feed(wire.substr(i, 1), out);
  } else {
    d.feed(wire, out);
  }
  if (mode == Mode::kBdat) d.finish(out);
  Outcome o;
  o.message.envelope.helo = "client.example";
  o.message.envelope.recipients = {{"bob@notes.example", 0, ""}};
  o.message.queue_id = "QID";
  const auto end = header_section_end(out).value_or(out.size());
  o.message.headers = out.substr(0, end);
  Cleanup c({.hostname = "bridge.example", .max_received_headers = max_received, .steps = std::move(steps)});
  std::optional<Refusal> refusal;
  if (auto r = c.run(o.message, 0); !r) refusal = r.error();
  o.reply = first_problem(d.verdict(), d.verdict_at(), refusal);
  return o;
}

std::string received_headers(int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += "Received: from hop" + std::to_string(i) + "\r\n";
  return s;
}

void expect_code(const Outcome& o, int code, const std::string& enhanced) {
  ASSERT_TRUE(o.reply) << "no refusal, expected " << code;
  EXPECT_EQ(o.reply->code, code) << o.reply->render();
  EXPECT_EQ(o.reply->enhanced, enhanced);
}

TEST(LoopCheck, TooManyReceivedHeadersIsAMailLoop) {
  for (bool bytewise : {false, true}) {
    EXPECT_FALSE(receive(received_headers(3) + "\r\n.\r\n", {}, 3, bytewise).reply);
    expect_code(receive(received_headers(4) + "\r\n.\r\n", {}, 3, bytewise), 554, "5.4.6");
  }
  // Case-insensitive, and only whole field names.
  expect_code(receive("RECEIVED: a\r\nreceived: b\r\nReCeIvEd: c\r\nreceived : d\r\n\r\n.\r\n", {}, 3), 554,
              "5.4.6");
  EXPECT_FALSE(
      receive("X-Received: a\r\nX-Received: b\r\nX-Received: c\r\nX-Received: d\r\n\r\n.\r\n", {}, 3).reply);
  // Continuation lines and the body do not count.
  EXPECT_FALSE(
      receive(received_headers(3) + " Received: folded\r\n\tReceived: x\r\n\r\nReceived: body\r\n.\r\n", {}, 3)
          .reply);
  EXPECT_FALSE(receive(received_headers(3) + "\r\n" + received_headers(5) + ".\r\n", {}, 3).reply);
  // A dot-stuffed field is still a field once unstuffed.
  expect_code(receive(received_headers(3) + ".Received: x\r\n\r\n.\r\n", {}, 3), 554, "5.4.6");
  // BDAT content, whose header section has no empty line.
  expect_code(receive(received_headers(2), {}, 1, true, Mode::kBdat), 554, "5.4.6");
}

TEST(LoopCheck, PositionIsTheColonOfTheFieldOverTheLimit) {
  const std::string h = "Received: a\r\nSubject: s\r\nreceived  : b\r\n\r\n";
  EXPECT_FALSE(received_over_limit(h, 2));
  const auto at = received_over_limit(h, 1);
  ASSERT_TRUE(at);
  EXPECT_EQ(at->octet, h.find(" : b") + 1);
  EXPECT_EQ(at->check, ContentPosition::Check::kHeader);
  // A name longer than any spelling of Received with blanks is not looked at.
  EXPECT_FALSE(received_over_limit("Received: a\r\nreceived         : b\r\n", 1));
  EXPECT_TRUE(received_over_limit("Received: a\r\nreceived        : b\r\n", 1));
}

// The decoder and the loop check look at the same octets in two passes; the reply is the
// one a single pass would give: the first problem in the content, on the same octet the
// line length before the header field before the size.
TEST(LoopCheck, FirstProblemWinsWhicheverPassFindsIt) {
  struct Case {
    std::size_t line;
    std::uint64_t size;
    unsigned received;
    std::string in;
    int code;
  };
  for (const auto& c : {Case{1000, 12, 0, "Received: x\r\n\r\n.\r\n", 554},
                        Case{1000, 7, 0, "Received: x\r\n\r\n.\r\n", 552},
                        Case{9, 1000, 0, "Received: x\r\n\r\n.\r\n", 500},
                        Case{10, 1000, 0, "Received: x\r\n\r\n.\r\n", 500},  // both on the colon
                        Case{11, 1000, 0, "Received: x\r\n\r\n.\r\n", 554},
                        Case{1000, 1000, 0, "Subject: a\nReceived: x\r\n\r\n.\r\n", 550},
                        Case{1000, 1000, 0, "Received: x\nSubject: a\r\n\r\n.\r\n", 554},
                        Case{1000, 1000, 0, "Received: x\r\n\r\n" + std::string(2000, 'b') + "\r\n.\r\n", 554}}) {
    ContentLimits l;
    l.max_line_length = c.line;
    l.max_message_size = c.size;
    for (bool bytewise : {false, true}) {
      expect_code(receive(c.in, l, c.received, bytewise), c.code,
                  c.code == 552   ? "5.3.4"
                  : c.code == 500 ? "5.5.2"
                  : c.code == 550 ? "5.6.0"
                                  : "5.4.6");
    }
  }
}

TEST(HeaderSection, EndsAfterItsEmptyLine) {
  EXPECT_EQ(header_section_end("A: b\r\n\r\nbody\r\n"), 8u);
  EXPECT_EQ(header_section_end("\r\nbody\r\n"), 2u);  // no fields at all
  EXPECT_FALSE(header_section_end("A: b\r\nC: d\r\n"));
  EXPECT_FALSE(header_section_end(""));
  // Found when any octet of the empty line's CRLF CRLF is new since the last call.
  const std::string s = "A: b\r\n\r\nx";
  for (std::size_t from = 0; from < 8; ++from) EXPECT_EQ(header_section_end(s, from), 8u) << from;
}

class Rewrite : public Step {
 public:
  std::string_view name() const override { return "rewrite"; }
  tl::expected<void, smtp::Reply> apply(Message& m) const override {
    m.envelope.recipients.front().address = "bob@exchange.example";
    m.headers.insert(0, "X-Step: 1\r\n");
    return {};
  }
};

class Count : public Step {
 public:
  std::string_view name() const override { return "count"; }
  tl::expected<void, smtp::Reply> apply(Message& m) const override {
    m.headers.insert(0, "X-Count: " + std::to_string(m.headers.size()) + "\r\n");
    return {};
  }
};

class Refuse : public Step {
 public:
  std::string_view name() const override { return "refuse"; }
  tl::expected<void, smtp::Reply> apply(Message&) const override {
    return tl::unexpected(smtp::Reply{451, "4.3.0", "Address book not loaded yet"});
  }
};

TEST(Cleanup, StepsRunInOrderThenTheTraceHeaderGoesOnTop) {
  auto o = receive("Subject: s\r\n\r\nbody\r\n.\r\n", {}, 50, false, Mode::kData,
                   {std::make_shared<Rewrite>(), std::make_shared<Count>()});
  ASSERT_FALSE(o.reply);
  EXPECT_EQ(o.message.envelope.recipients.front().address, "bob@exchange.example");
  const std::string& h = o.message.headers;
  ASSERT_TRUE(h.starts_with("Received: from client.example (unknown)\r\n\tby bridge.example (Bridgehead) with ESMTP id QID"))
      << h;
  // The trace header names the recipient as received, not as a step rewrote it.
  EXPECT_NE(h.find("for <bob@notes.example>;"), std::string::npos) << h;
  // Count ran after Rewrite: it counted Rewrite's field.
  const std::string fields = h.substr(h.find("\r\n", h.find("for <")) + 2);
  EXPECT_EQ(fields, "X-Count: 25\r\nX-Step: 1\r\nSubject: s\r\n\r\n");
}

TEST(Cleanup, AStepRefusesWithItsOwnReplyAndNothingIsTraced) {
  auto o = receive("Subject: s\r\n\r\nbody\r\n.\r\n", {}, 50, false, Mode::kData,
                   {std::make_shared<Refuse>(), std::make_shared<Rewrite>()});
  expect_code(o, 451, "4.3.0");
  EXPECT_EQ(o.reply->text, "Address book not loaded yet");
  EXPECT_EQ(o.message.headers.find("Received:"), std::string::npos);
  // The step after the refusing one never ran.
  EXPECT_EQ(o.message.envelope.recipients.front().address, "bob@notes.example");
  // A transfer problem in the header section comes before the step's refusal.
  expect_code(receive("Subject: s\n\r\nbody\r\n.\r\n", {}, 50, false, Mode::kData, {std::make_shared<Refuse>()}),
              550, "5.6.0");
}

TEST(Cleanup, ALoopIsRefusedBeforeAnyStepRuns) {
  auto o = receive(received_headers(2) + "\r\n.\r\n", {}, 1, false, Mode::kData, {std::make_shared<Rewrite>()});
  expect_code(o, 554, "5.4.6");
  EXPECT_EQ(o.message.envelope.recipients.front().address, "bob@notes.example");
}

TEST(ReceivedHeader, Rfc5321Form) {
  Envelope e;
  e.helo = "mx.exchange.example";
  e.client_address = "192.0.2.1:40000";
  e.tls = true;
  e.recipients = {{"bob@notes.example", 0, ""}};
  const std::string h = make_received_header(e, "bridge.example", "4F2A", 1795604400, true);
  std::string unfolded = h;
  for (std::size_t p; (p = unfolded.find("\r\n\t")) != std::string::npos;)
    unfolded.replace(p, 3, " ");
  EXPECT_EQ(
      unfolded,
      "Received: from mx.exchange.example ([192.0.2.1]) by bridge.example (Bridgehead) with "
      "ESMTPS id 4F2A for <bob@notes.example>; Wed, 25 Nov 2026 11:00:00 +0000\r\n");
}

TEST(ReceivedHeader, ClientAddressIsAnAddressLiteralWithoutPort) {
  Envelope e;
  e.helo = "h.example";
  auto first_line = [&](std::string client) {
    e.client_address = std::move(client);
    const std::string h = make_received_header(e, "me.example", "ID", 0, true);
    return h.substr(0, h.find("\r\n"));
  };
  EXPECT_EQ(first_line("127.0.0.1:2525"), "Received: from h.example ([127.0.0.1])");
  EXPECT_EQ(first_line("[2001:db8::1]:40000"), "Received: from h.example ([IPv6:2001:db8::1])");
  EXPECT_EQ(first_line("::1"), "Received: from h.example ([IPv6:::1])");
  EXPECT_EQ(first_line("192.0.2.7"), "Received: from h.example ([192.0.2.7])");
  EXPECT_EQ(first_line(""), "Received: from h.example (unknown)");
  EXPECT_EQ(first_line("[]:1"), "Received: from h.example (unknown)");
}

TEST(ReceivedHeader, ForOnlyWithOneRecipientAndProtocolNames) {
  Envelope e;
  e.helo = "h.example";
  e.recipients = {{"a@x.example", 0, ""}, {"b@x.example", 0, ""}};
  auto h = make_received_header(e, "me.example", "ID", 0, true);
  EXPECT_EQ(h.find(" for "), std::string::npos);
  EXPECT_NE(h.find("with ESMTP id ID;"), std::string::npos);
  EXPECT_NE(h.find("Thu, 01 Jan 1970 00:00:00 +0000\r\n"), std::string::npos);
  EXPECT_NE(make_received_header(e, "me", "ID", 0, false).find("with SMTP id"), std::string::npos);
  e.smtputf8 = true;
  EXPECT_NE(make_received_header(e, "me", "ID", 0, true).find("with UTF8SMTP id"),
            std::string::npos);
  e.tls = true;
  EXPECT_NE(make_received_header(e, "me", "ID", 0, true).find("with UTF8SMTPS id"),
            std::string::npos);
}

TEST(ReceivedHeader, NeverInjectsAndStaysUnder998) {
  Envelope e;
  e.helo = "evil\r\nX-Injected: yes\r\n" + std::string(5000, 'a');
  e.client_address = "1.2.3.4\n:5";
  e.recipients = {{std::string(3000, 'r') + "\r\n@x", 0, ""}};
  const auto h = make_received_header(e, "me.example", "ID\r\n", 0, true);
  ASSERT_GE(h.size(), 2u);
  EXPECT_EQ(h.substr(h.size() - 2), "\r\n");
  std::size_t line_start = 0;
  for (std::size_t i = 0; i < h.size(); ++i) {
    const auto c = static_cast<unsigned char>(h[i]);
    if (c == '\n') {
      ASSERT_GT(i, 0u);
      EXPECT_EQ(h[i - 1], '\r');
      EXPECT_LE(i + 1 - line_start, 1000u);  // 998 + CRLF
      line_start = i + 1;
      if (i + 1 < h.size()) {
        EXPECT_EQ(h[i + 1], '\t') << "a line that is not a continuation";
      }
    } else if (c == '\r') {
      EXPECT_EQ(h[i + 1], '\n');
    } else {
      EXPECT_TRUE(c == '\t' || (c >= 0x20 && c < 0x7F)) << int(c);
    }
  }
  EXPECT_EQ(h.find("X-Injected: yes\r\n"), std::string::npos);
}

}  // namespace
}  // namespace bridgehead::cleanup
