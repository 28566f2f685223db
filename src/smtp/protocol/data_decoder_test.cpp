#include "smtp/protocol/data_decoder.hpp"

#include <gtest/gtest.h>

#include <random>

namespace bridgehead::smtp {
namespace {

using Mode = DataDecoder::Mode;

struct Result {
  std::string out;
  std::size_t consumed = 0;
  bool done = false;
  std::optional<Reply> verdict;
};

ContentLimits limits(BareLinefeedPolicy policy = BareLinefeedPolicy::kReject) {
  ContentLimits l;
  l.bare_linefeed = policy;
  return l;
}

Result decode(std::string_view in, ContentLimits l = limits(), Mode mode = Mode::kData) {
  DataDecoder d(mode, l);
  Result r;
  r.consumed = d.feed(in, r.out);
  if (mode == Mode::kBdat) d.finish(r.out);
  r.done = d.done();
  r.verdict = d.verdict();
  return r;
}

// Feeds `in` in pieces ending at the given split points, as a socket would deliver it.
Result decode_split(std::string_view in, const std::vector<std::size_t>& cuts,
                    ContentLimits l = limits(), Mode mode = Mode::kData) {
  DataDecoder d(mode, l);
  Result r;
  std::size_t pos = 0;
  for (std::size_t i = 0; i <= cuts.size() && !d.done(); ++i) {
    const std::size_t end = i < cuts.size() ? cuts[i] : in.size();
    const auto piece = in.substr(pos, end - pos);
    const auto n = d.feed(piece, r.out);
    r.consumed += n;
    EXPECT_LE(n, piece.size());
    if (!d.done()) {
      EXPECT_EQ(n, piece.size());
    }
    pos = end;
  }
  if (mode == Mode::kBdat) d.finish(r.out);
  r.done = d.done();
  r.verdict = d.verdict();
  return r;
}

Result decode_bytewise(std::string_view in, ContentLimits l = limits(), Mode mode = Mode::kData) {
  std::vector<std::size_t> cuts;
  for (std::size_t i = 1; i < in.size(); ++i) cuts.push_back(i);
  return decode_split(in, cuts, l, mode);
}

void expect_code(const Result& r, int code, const std::string& enhanced) {
  ASSERT_TRUE(r.verdict) << "no verdict, expected " << code;
  EXPECT_EQ(r.verdict->code, code) << r.verdict->render();
  EXPECT_EQ(r.verdict->enhanced, enhanced);
}

TEST(DataDecoder, EndsAtCrLfDotCrLfAndStopsThere) {
  const std::string in = "Subject: hi\r\n\r\nbody\r\n.\r\nQUIT\r\n";
  auto r = decode(in);
  EXPECT_TRUE(r.done);
  EXPECT_FALSE(r.verdict);
  EXPECT_EQ(r.out, "Subject: hi\r\n\r\nbody\r\n");
  EXPECT_EQ(in.substr(r.consumed), "QUIT\r\n");
}

TEST(DataDecoder, DotOnFirstLineEndsAnEmptyMessage) {
  auto r = decode(".\r\nNOOP\r\n");
  EXPECT_TRUE(r.done);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.consumed, 3u);
}

TEST(DataDecoder, DotUnstuffing) {
  auto r = decode("..x\r\n..\r\n...\r\na.b\r\n.\r\n");
  EXPECT_TRUE(r.done);
  EXPECT_FALSE(r.verdict);
  EXPECT_EQ(r.out, ".x\r\n.\r\n..\r\na.b\r\n");
  EXPECT_EQ(decode("..first\r\n.\r\n").out, ".first\r\n");  // the stream start is a line start
}

TEST(DataDecoder, NotDoneWithoutTerminator) {
  auto r = decode("line\r\n.\r");
  EXPECT_FALSE(r.done);
  EXPECT_EQ(r.consumed, 8u);
  EXPECT_EQ(r.out, "line\r\n");
}

// Every SMTP-smuggling variant: none may end DATA, whatever the policy.
const std::vector<std::string> kSmuggling = {"\n.\r\n",     "\r\n.\n",     "\r.\r\n",
                                             "\r\r\n.\r\n", "\n.\n",       "\r.\r",
                                             "\n.\r\r\n",   "\r\n.\r\r\n", "\n\r\n.\r\n"};

TEST(DataDecoder, SmugglingSequencesNeverEndDataAndAreRejected) {
  for (const auto& seq : kSmuggling) {
    const std::string in = "Subject: x\r\n\r\nbody" + seq + "MAIL FROM:<evil@x.example>\r\n";
    for (auto r : {decode(in), decode_bytewise(in)}) {
      EXPECT_FALSE(r.done) << testing::PrintToString(seq);
      EXPECT_EQ(r.consumed, in.size()) << testing::PrintToString(seq);
      expect_code(r, 550, "5.6.0");
      ASSERT_TRUE(r.verdict);
      EXPECT_NE(r.verdict->text.find("bare"), std::string::npos);
    }
    // The real terminator that follows still ends it, with the verdict kept.
    auto end = decode(in + "\r\n.\r\n");
    EXPECT_TRUE(end.done) << testing::PrintToString(seq);
    expect_code(end, 550, "5.6.0");
  }
}

TEST(DataDecoder, SmugglingSequencesNeverEndDataWhenNormalized) {
  for (const auto& seq : kSmuggling) {
    const std::string in = "body" + seq + "MAIL FROM:<evil@x.example>\r\n";
    auto r = decode(in, limits(BareLinefeedPolicy::kNormalize));
    EXPECT_FALSE(r.done) << testing::PrintToString(seq);
    EXPECT_EQ(r.consumed, in.size());
    EXPECT_FALSE(r.verdict) << testing::PrintToString(seq);
    // Normalized output: every CR is followed by LF and every LF preceded by CR.
    for (std::size_t i = 0; i < r.out.size(); ++i) {
      if (r.out[i] == '\r') {
        EXPECT_TRUE(i + 1 < r.out.size() && r.out[i + 1] == '\n');
      } else if (r.out[i] == '\n') {
        EXPECT_TRUE(i > 0 && r.out[i - 1] == '\r');
      }
    }
    // The smuggled command stays content.
    EXPECT_NE(r.out.find("MAIL FROM:<evil@x.example>\r\n"), std::string::npos);
  }
}

TEST(DataDecoder, NormalizeTurnsBareLineEndsIntoCrLf) {
  auto r = decode("a\nb\rc\r\r\nd\r\n.\r\n", limits(BareLinefeedPolicy::kNormalize));
  EXPECT_TRUE(r.done);
  EXPECT_FALSE(r.verdict);
  EXPECT_EQ(r.out, "a\r\nb\r\nc\r\n\r\nd\r\n");
  // A stray bare LF does not stop a later real terminator from ending the message.
  auto stray = decode("a\nb\r\n.\r\n", limits(BareLinefeedPolicy::kNormalize));
  EXPECT_TRUE(stray.done);
  EXPECT_EQ(stray.out, "a\r\nb\r\n");
  // A dot after a bare line end is content, not dot-stuffing.
  EXPECT_EQ(decode("a\n..\r\n.\r\n", limits(BareLinefeedPolicy::kNormalize)).out, "a\r\n..\r\n");
}

TEST(DataDecoder, TerminatorSplitAtEveryPoint) {
  const std::string in = "Subject: s\r\n\r\nhello\r\n.\r\nRSET\r\n";
  const auto body_end = in.find("\r\n.\r\n");
  for (std::size_t cut = body_end; cut <= body_end + 5; ++cut) {
    for (std::size_t cut2 = cut; cut2 <= body_end + 5; ++cut2) {
      auto r = decode_split(in, {cut, cut2});
      EXPECT_TRUE(r.done) << cut << "," << cut2;
      EXPECT_EQ(r.out, "Subject: s\r\n\r\nhello\r\n");
      EXPECT_EQ(r.consumed, in.size() - 6);
    }
  }
}

TEST(DataDecoder, ByteAtATimeAndRandomSplitsMatchWholeFeed) {
  std::string in = "Received: from a\r\nReceived: from b\r\nSubject: t\r\n\r\n";
  for (int i = 0; i < 50; ++i) in += "..line " + std::to_string(i) + "\r\n.x\r\n\r\n";
  in += ".\r\nQUIT\r\n";
  const auto whole = decode(in);
  ASSERT_TRUE(whole.done);
  ASSERT_FALSE(whole.verdict);
  auto bytewise = decode_bytewise(in);
  EXPECT_EQ(bytewise.out, whole.out);
  EXPECT_EQ(bytewise.consumed, whole.consumed);
  EXPECT_TRUE(bytewise.done);
  std::mt19937 rng(42);
  for (int round = 0; round < 200; ++round) {
    std::vector<std::size_t> cuts;
    std::size_t pos = 0;
    while (true) {
      pos += std::uniform_int_distribution<std::size_t>(0, 9)(rng);
      if (pos >= in.size()) break;
      cuts.push_back(pos);
    }
    auto r = decode_split(in, cuts);
    EXPECT_EQ(r.out, whole.out) << round;
    EXPECT_EQ(r.consumed, whole.consumed) << round;
    EXPECT_TRUE(r.done);
    EXPECT_FALSE(r.verdict);
  }
}

TEST(DataDecoder, LineLengthLimitIncludesCrLf) {
  ContentLimits l = limits();
  l.max_line_length = 10;
  EXPECT_FALSE(decode("12345678\r\n.\r\n", l).verdict);
  auto r = decode("123456789\r\n.\r\n", l);
  EXPECT_TRUE(r.done);
  expect_code(r, 500, "5.5.2");
  expect_code(decode_bytewise("123456789\r\n.\r\n", l), 500, "5.5.2");
  // The stuffing dot counts: it was on the wire.
  expect_code(decode("..2345678\r\n.\r\n", l), 500, "5.5.2");
  EXPECT_FALSE(decode("..234567\r\n.\r\n", l).verdict);
}

TEST(DataDecoder, SizeLimitStopsAppendingButKeepsConsuming) {
  ContentLimits l = limits();
  l.max_message_size = 10;
  const std::string in = "0123456789abcdef\r\nmore\r\n.\r\nQUIT\r\n";
  auto r = decode(in, l);
  EXPECT_TRUE(r.done);
  expect_code(r, 552, "5.3.4");
  EXPECT_EQ(r.out, "0123456789");
  EXPECT_EQ(in.substr(r.consumed), "QUIT\r\n");
  auto b = decode_bytewise(in, l);
  EXPECT_EQ(b.out, "0123456789");
  expect_code(b, 552, "5.3.4");
  EXPECT_FALSE(decode("01234567\r\n.\r\n", l).verdict);  // exactly 10 octets is fine
}

TEST(DataDecoder, SizeCountsDecodedOctets) {
  DataDecoder d(Mode::kData, limits());
  std::string out;
  d.feed("..ab\r\n.\r\n", out);
  EXPECT_EQ(d.size(), 5u);
  EXPECT_EQ(out.size(), 5u);
}

TEST(DataDecoder, FirstVerdictWins) {
  ContentLimits l = limits();
  l.max_line_length = 10;
  l.max_message_size = 20;
  auto r = decode("a\nbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\r\n.\r\n", l);
  expect_code(r, 550, "5.6.0");
  auto s = decode("bbbbbbbbbbbbbbbbbbbbbbbbbbbbb\na\r\n.\r\n", l);
  expect_code(s, 500, "5.5.2");
}

TEST(DataDecoder, FirstVerdictDoesNotDependOnHowTheStreamIsSplit) {
  struct Case {
    std::size_t line;
    std::uint64_t size;
    std::string in;
    int code;
  };
  for (const auto& c :
       {Case{7, 3, "abcdefgh\r\n.\r\n", 552}, Case{4, 5, "abcdefgh\r\n.\r\n", 500}}) {
    ContentLimits l = limits();
    l.max_line_length = c.line;
    l.max_message_size = c.size;
    expect_code(decode(c.in, l), c.code, c.code == 552 ? "5.3.4" : "5.5.2");
    expect_code(decode_bytewise(c.in, l), c.code, c.code == 552 ? "5.3.4" : "5.5.2");
  }
}

TEST(DataDecoder, FeedAfterDoneConsumesNothing) {
  DataDecoder d(Mode::kData, limits());
  std::string out;
  EXPECT_EQ(d.feed(".\r\n", out), 3u);
  EXPECT_TRUE(d.done());
  EXPECT_EQ(d.feed("more", out), 0u);
  EXPECT_EQ(out, "");
}

TEST(DataDecoder, BdatHasNoDotHandlingAndConsumesEverything) {
  const std::string in = "a\r\n.\r\n..b\r\n";
  auto r = decode(in, limits(), Mode::kBdat);
  EXPECT_EQ(r.consumed, in.size());
  EXPECT_FALSE(r.done);
  EXPECT_FALSE(r.verdict);
  EXPECT_EQ(r.out, in);
}

TEST(DataDecoder, BdatCrLfSplitAcrossChunks) {
  DataDecoder d(Mode::kBdat, limits());
  std::string out;
  d.feed("line one\r", out);
  d.feed("\nline two\r", out);
  d.feed("\n", out);
  d.finish(out);
  EXPECT_FALSE(d.verdict());
  EXPECT_EQ(out, "line one\r\nline two\r\n");
}

TEST(DataDecoder, BdatBareLineEnds) {
  expect_code(decode("a\nb\r\n", limits(), Mode::kBdat), 550, "5.6.0");
  expect_code(decode("a\rb\r\n", limits(), Mode::kBdat), 550, "5.6.0");
  // A CR at the very end of the last chunk is bare too.
  expect_code(decode("a\r\nb\r", limits(), Mode::kBdat), 550, "5.6.0");
  auto n = decode("a\nb\rc\r", limits(BareLinefeedPolicy::kNormalize), Mode::kBdat);
  EXPECT_FALSE(n.verdict);
  EXPECT_EQ(n.out, "a\r\nb\r\nc\r\n");
}

TEST(DataDecoder, BdatLimits) {
  ContentLimits l = limits();
  l.max_line_length = 10;
  expect_code(decode("123456789\r\n", l, Mode::kBdat), 500, "5.5.2");
  l = limits();
  l.max_message_size = 4;
  auto r = decode("abcdefgh", l, Mode::kBdat);
  expect_code(r, 552, "5.3.4");
  EXPECT_EQ(r.out, "abcd");
}

}  // namespace
}  // namespace bridgehead::smtp
