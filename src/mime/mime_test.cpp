#include "mime/mime.hpp"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace bridgehead::mime {
namespace {

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start < s.size()) {
    const auto end = s.find("\r\n", start);
    EXPECT_NE(end, std::string::npos) << "not CRLF-terminated: " << s.substr(start);
    if (end == std::string::npos) break;
    out.push_back(s.substr(start, end - start));
    start = end + 2;
  }
  return out;
}

// The column a header's value starts at: after its name and colon.
std::size_t after(std::string_view name) { return name.size() + 1; }

std::string unfold(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s.compare(i, 2, "\r\n") == 0) {
      ++i;
      continue;
    }
    out += s[i];
  }
  return out;
}

TEST(InitGmime, OnceFromManyThreads) {
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) threads.emplace_back([] { init_gmime(); });
  for (auto& t : threads) t.join();
  init_gmime();
}

TEST(Base64, Rfc4648Vectors) {
  const std::pair<std::string, std::string> vectors[] = {
      {"", ""},
      {"f", "Zg=="},
      {"fo", "Zm8="},
      {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="},
      {"fooba", "Zm9vYmE="},
      {"foobar", "Zm9vYmFy"},
      {std::string("\0\xff\xfe", 3), "AP/+"},
  };
  for (const auto& [in, out] : vectors) EXPECT_EQ(base64_encode(in), out) << in;
}

TEST(Base64, Rfc2045LinesOf76) {
  const std::string out = base64_encode(std::string(150, 'A'), 76);
  const auto lines = lines_of(out);
  ASSERT_EQ(lines.size(), 3u) << out;
  EXPECT_EQ(lines[0].size(), 76u);
  EXPECT_EQ(lines[1].size(), 76u);
  EXPECT_EQ(lines[2], "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB");
  EXPECT_EQ(unfold(out), base64_encode(std::string(150, 'A')));
  std::string one_line;
  for (int i = 0; i < 19; ++i) one_line += "QUFB";
  EXPECT_EQ(base64_encode(std::string(57, 'A'), 76), one_line + "\r\n");
  EXPECT_EQ(base64_encode("", 76), "");
}

TEST(QuotedPrintable, EscapesEqualsEightBitAndWhitespaceBeforeALineEnd) {
  const std::pair<std::string, std::string> cases[] = {
      {"x=y caf\xc3\xa9\r\n", "x=3Dy caf=C3=A9\r\n"},
      {"From me\r\n.\r\n", "From me\r\n.\r\n"},  // left to dot-stuffing and mbox writers
      {"bare\nlf\n", "bare\r\nlf\r\n"},
      {"trailing  \r\ntab\t\r\n", "trailing =20\r\ntab=09\r\n"},
  };
  for (const auto& [in, out] : cases) EXPECT_EQ(qp_encode(in), out) << in;
}

TEST(QuotedPrintable, SoftBreaksKeepLinesWithin76) {
  const std::string long_line = std::string(100, 'a') + "\xc3\xa9" + std::string(100, 'b') + "\r\n";
  const std::string out = qp_encode(long_line);
  const auto lines = lines_of(out);
  ASSERT_GE(lines.size(), 3u) << out;
  EXPECT_EQ(lines[0], std::string(75, 'a') + "=");
  for (const auto& l : lines) EXPECT_LE(l.size(), 76u) << l;
  std::string joined;  // soft breaks removed
  for (std::size_t i = 0; i < lines.size(); ++i) {
    joined += lines[i];
    if (!joined.empty() && joined.back() == '=') joined.pop_back();
  }
  EXPECT_EQ(joined, std::string(100, 'a') + "=C3=A9" + std::string(100, 'b'));
}

TEST(EncodedWords, NonAsciiNamesInQOrB) {
  EXPECT_EQ(encode_header_words("J\xc3\xbcrgen M\xc3\xbcller", "utf-8"), "=?utf-8?Q?J=C3=BCrgen_M=C3=BCller?=");
  EXPECT_EQ(encode_header_words("\xc3\xa9t\xc3\xa9", "utf-8"), "=?utf-8?B?w6l0w6k=?=");
  // Cyrillic: B is far shorter than Q.
  EXPECT_EQ(encode_header_words("\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82", "utf-8"),
            "=?utf-8?B?0J/RgNC40LLQtdGC?=");
  EXPECT_EQ(encode_header_words("r\xe9sum\xe9", "unknown-8bit"), "=?unknown-8bit?Q?r=E9sum=E9?=");
  // Only what a phrase allows stays plain.
  EXPECT_EQ(encode_header_words("caf\xc3\xa9 a.b", "utf-8"), "=?utf-8?Q?caf=C3=A9_a=2Eb?=");
}

TEST(EncodedWords, LongTextIsSplitWithoutCuttingACharacter) {
  std::string text;
  for (int i = 0; i < 40; ++i) text += "\xc3\xa9t\xc3\xa9 ";
  const std::string out = encode_header_words(text, "utf-8");
  std::size_t start = 0;
  int words = 0;
  while (start < out.size()) {
    auto end = out.find(' ', start);
    if (end == std::string::npos) end = out.size();
    const std::string word = out.substr(start, end - start);
    EXPECT_LE(word.size(), 75u) << word;
    EXPECT_TRUE(is_encoded_word(word)) << word;
    // A split inside "\xc3\xa9" would leave a word ending in =C3.
    EXPECT_FALSE(word.ends_with("=C3?=")) << word;
    ++words;
    start = end + 1;
  }
  EXPECT_GT(words, 1);
}

TEST(EncodedWords, RecognisesTheForm) {
  EXPECT_TRUE(is_encoded_word("=?utf-8?q?Bj=C3=B6rn?="));
  EXPECT_TRUE(is_encoded_word("=?iso-8859-1?B?w6k=?="));
  EXPECT_FALSE(is_encoded_word("=?utf-8?Bj?="));
  EXPECT_FALSE(is_encoded_word("=??Q?x?="));
  EXPECT_FALSE(is_encoded_word("plain"));
}

TEST(Rfc2231, ShortValueOnOneLine) {
  EXPECT_EQ(encode_param("name", "R\xc3\xa9sum\xc3\xa9.pdf", "utf-8"), "name*=utf-8''R%C3%A9sum%C3%A9.pdf");
  EXPECT_EQ(encode_param("filename", "a b;c", "unknown-8bit"), "filename*=unknown-8bit''a%20b%3Bc");
}

TEST(Rfc2231, LongNonAsciiFilenameIsContinued) {
  const std::string value =
      "R\xc3\xa9sum\xc3\xa9 de Jos\xc3\xa9 Mar\xc3\xad"
      "a Garc\xc3\xad"
      "a L\xc3\xb3pez, versi\xc3\xb3n final.pdf";
  const std::string out = encode_param("filename", value, "utf-8");
  EXPECT_EQ(out,
            "filename*0*=utf-8''R%C3%A9sum%C3%A9%20de%20Jos%C3%A9%20Mar%C3%ADa%20Garc%C3%ADa;\r\n"
            " filename*1*=%20L%C3%B3pez%2C%20versi%C3%B3n%20final.pdf");
}

TEST(Fold, BreaksBeforeWhitespaceAt78AndKeepsEveryOctet) {
  std::string value;
  for (int i = 0; i < 30; ++i) value += " word" + std::to_string(i);
  const std::string out = fold_header(after("Subject"), value);
  const auto lines = lines_of("Subject:" + out + "\r\n");
  ASSERT_GT(lines.size(), 1u);
  for (const auto& l : lines) EXPECT_LE(l.size(), 78u) << l;
  EXPECT_EQ(lines[0], "Subject: word0 word1 word2 word3 word4 word5 word6 word7 word8 word9 word10");
  EXPECT_EQ(unfold(out), value);
}

TEST(Fold, ShortValuesAndDoubleSpacesStayAsTheyAre) {
  EXPECT_EQ(fold_header(after("Subject"), "  two  spaces\t tab"), "  two  spaces\t tab");
  EXPECT_EQ(fold_header(after("X"), ""), "");
}

TEST(Fold, ExistingFoldsStayAndEachLineIsFoldedOnItsOwn) {
  const std::string value = " first\r\n second " + std::string(70, 'x') + " tail";
  EXPECT_EQ(fold_header(after("X"), value), " first\r\n second " + std::string(70, 'x') + "\r\n tail");
}

TEST(Fold, ARunWithoutWhitespaceStaysWholeAndNoLineIsOnlyWhitespace) {
  const std::string word(100, 'z');
  EXPECT_EQ(fold_header(after("Subject"), " " + word + " next"), "\r\n " + word + "\r\n next");
  EXPECT_EQ(fold_header(after("Subject"), " " + word), "\r\n " + word);
  const std::string spaces = " " + std::string(100, ' ');
  EXPECT_EQ(fold_header(after("Subject"), spaces), spaces);
}

TEST(Fold, AnotherWidth) { EXPECT_EQ(fold_header(after("To"), " aaaa bbbb cccc", 12), " aaaa\r\n bbbb cccc"); }

}  // namespace
}  // namespace bridgehead::mime
