#include "smtp/client/wire_encoding.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

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

// An independent statement of the rules, octet by octet: a "." starting a line gets
// another, an LF without a CR before it becomes CRLF, a last line without a line break
// gets a CRLF, and ".\r\n" ends the data.
std::string reference_stuffed(std::string_view in) {
  std::string out;
  bool line_start = true;
  char prev = '\0';
  for (char c : in) {
    if (line_start && c == '.') out += '.';
    if (c == '\n' && prev != '\r') out += '\r';
    out += c;
    line_start = c == '\n';
    prev = c;
  }
  if (!line_start) out += "\r\n";
  return out + ".\r\n";
}

std::string stuffed_in_pieces(std::string_view in, const std::vector<std::size_t>& cuts) {
  DotStuffer stuffer;
  std::string out;
  std::size_t from = 0;
  for (std::size_t cut : cuts) {
    stuffer.append(in.substr(from, cut - from), out);
    from = cut;
  }
  stuffer.append(in.substr(from), out);
  stuffer.finish(out);
  return out;
}

// Every string of up to 7 octets over ".", "\r", "\n", "x": split at every position, at
// every pair of positions, and one octet per piece, the result is the whole-message one.
TEST(DotStuffer, EveryContentSplitAnywhereStuffsLikeTheWholeMessage) {
  constexpr char kAlphabet[] = {'.', '\r', '\n', 'x'};
  std::size_t checked = 0;
  for (std::size_t len = 0; len <= 7; ++len) {
    std::size_t combos = 1;
    for (std::size_t k = 0; k < len; ++k) combos *= 4;
    for (std::size_t n = 0; n < combos; ++n) {
      std::string in;
      for (std::size_t k = 0, v = n; k < len; ++k, v /= 4) in += kAlphabet[v % 4];
      const std::string want = reference_stuffed(in);
      ASSERT_EQ(stuffed(in), want) << "whole: " << testing::PrintToString(in);
      for (std::size_t a = 0; a <= len; ++a) {
        ASSERT_EQ(stuffed_in_pieces(in, {a}), want) << testing::PrintToString(in) << " cut at " << a;
        for (std::size_t b = a; b <= len; ++b) {
          ASSERT_EQ(stuffed_in_pieces(in, {a, b}), want) << testing::PrintToString(in) << " cut at " << a << ", " << b;
        }
      }
      std::vector<std::size_t> every;
      for (std::size_t k = 1; k < len; ++k) every.push_back(k);
      ASSERT_EQ(stuffed_in_pieces(in, every), want) << "octet by octet: " << testing::PrintToString(in);
      ++checked;
    }
  }
  EXPECT_EQ(checked, 21845u);  // 4^0 + ... + 4^7
}

TEST(DotStuffer, CrlfDotSplitAtEveryPositionOfARealMessageIsStuffed) {
  const std::string in = "Subject: x\r\n\r\n.hidden\r\n.\r\nMAIL FROM:<x>\r\n..\r\nend\n.\nlast";
  const std::string want = reference_stuffed(in);
  EXPECT_EQ(want,
            "Subject: x\r\n\r\n..hidden\r\n..\r\nMAIL FROM:<x>\r\n...\r\nend\r\n..\r\nlast\r\n.\r\n");
  for (std::size_t a = 0; a <= in.size(); ++a) {
    EXPECT_EQ(stuffed_in_pieces(in, {a}), want) << "cut at " << a;
  }
}

// Long content goes through the sixteen-octet scan: dots, bare CRs and LFs and CRLFs at
// every offset of a block and across block edges, cut at random places, are stuffed as
// the octet-by-octet reference does.
TEST(DotStuffer, LongContentStuffsLikeTheReferenceWhereverTheSpecialOctetsFall) {
  std::mt19937 rng(8);  // fixed: a failure names a reproducible input
  for (int round = 0; round < 3000; ++round) {
    std::string in;
    const std::size_t len = rng() % 120;
    for (std::size_t k = 0; k < len; ++k) {
      const auto r = rng() % 16;
      in += r < 10 ? "x" : r < 12 ? "\r\n" : r == 12 ? "\r" : r == 13 ? "\n" : ".";  // mostly proper lines
    }
    const std::string want = reference_stuffed(in);
    ASSERT_EQ(stuffed(in), want) << testing::PrintToString(in);
    std::vector<std::size_t> cuts;
    for (std::size_t c = 0; c < 3 && !in.empty(); ++c) cuts.push_back(rng() % (in.size() + 1));
    std::sort(cuts.begin(), cuts.end());
    ASSERT_EQ(stuffed_in_pieces(in, cuts), want) << testing::PrintToString(in);
  }
  // One dot-started line after 64 KiB of ordinary lines, and a bare LF near the end.
  std::string big;
  while (big.size() < 65536) big += "0123456789012345678901234567890123456789012345678901234567890123456789abcd\r\n";
  big += ".dot\r\nlast\nline";
  EXPECT_EQ(stuffed(big), reference_stuffed(big));
}

TEST(DotStuffer, EmptyPiecesChangeNothing) {
  EXPECT_EQ(stuffed_in_pieces(".a\r\n", {0, 0, 1, 1, 3, 3, 4}), "..a\r\n.\r\n");
  EXPECT_EQ(stuffed_in_pieces("", {0, 0}), ".\r\n");
}

TEST(MessageSize, CountsTheAddedCrlf) {
  EXPECT_EQ(message_size("a\r\n"), 3u);
  EXPECT_EQ(message_size("a"), 3u);
  EXPECT_EQ(message_size(""), 0u);
}

}  // namespace
}  // namespace bridgehead::smtp::client
