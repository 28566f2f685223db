#include "core/envelope.hpp"

#include <cstdint>
#include <string_view>
#include <utility>

#include <gtest/gtest.h>

namespace bridgehead {
namespace {

Envelope every_field() {
  Envelope e;
  e.mail_from = "alice@exchange.example";
  e.recipients = {{"bob@notes.example", kNotifyFailure | kNotifyDelay, "rfc822;bob@notes.example"},
                  {"carol@notes.example", kNotifyNever, ""}};
  e.body = BodyType::kBinaryMime;
  e.smtputf8 = true;
  e.ret = DsnRet::kFull;
  e.envid = "QQ314159";
  e.declared_size = 52428800;
  e.helo = "mx.exchange.example";
  e.client_address = "[::1]:40000";
  e.ingress_system = "exchange";
  e.tls = true;
  e.received_at = 1764000000;
  e.route_system = "notes";
  return e;
}

TEST(Envelope, RoundTripsEveryField) {
  const Envelope e = every_field();
  auto back = deserialize_envelope(serialize(e));
  ASSERT_TRUE(back) << back.error().describe();
  EXPECT_EQ(*back, e);
}

TEST(Envelope, BinaryFormRoundTripsEveryField) {
  const Envelope e = every_field();
  const std::string bytes = encode_envelope(e);
  ASSERT_GE(bytes.size(), 2u);
  EXPECT_NE(bytes.front(), '{');
  EXPECT_LT(bytes.size(), serialize(e).size());
  auto back = deserialize_envelope(bytes);
  ASSERT_TRUE(back) << back.error().describe();
  EXPECT_EQ(*back, e);
  EXPECT_TRUE(is_binary_envelope(bytes));
  EXPECT_FALSE(is_binary_envelope(serialize(e)));
}

TEST(Envelope, BinaryFormKeepsExtremeValues) {
  Envelope e;  // the null sender, no recipients, every string empty
  for (std::int64_t at : {std::int64_t{0}, std::int64_t{-1}, std::int64_t{-86400}, INT64_MIN, INT64_MAX}) {
    e.received_at = at;
    e.declared_size = UINT64_MAX;
    auto back = deserialize_envelope(encode_envelope(e));
    ASSERT_TRUE(back) << at;
    EXPECT_EQ(*back, e) << at;
  }
  e.helo = std::string(70000, 'h');  // a length that takes three varint bytes
  auto back = deserialize_envelope(encode_envelope(e));
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, e);
}

TEST(Envelope, BinaryFormRejectsEveryTruncationAndTrailingBytes) {
  const std::string bytes = encode_envelope(every_field());
  for (std::size_t n = 1; n < bytes.size(); ++n) {
    auto r = deserialize_envelope(std::string_view(bytes).substr(0, n));
    ASSERT_FALSE(r) << "cut at " << n;
    EXPECT_EQ(r.error().code, ErrorCode::kCorrupt);
  }
  auto r = deserialize_envelope(bytes + "x");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("bytes after the end"), std::string::npos) << r.error().message;
}

TEST(Envelope, BinaryFormRejectsOutOfRangeValues) {
  Envelope e;
  const std::string good = encode_envelope(e);
  // Layout of an empty envelope: magic, version, from (0), count (0), body, utf8, ret, ...
  auto with = [&](std::size_t at, char c) {
    std::string s = good;
    s[at] = c;
    return deserialize_envelope(s);
  };
  EXPECT_FALSE(with(1, 2)) << "unknown version";
  EXPECT_FALSE(with(4, 9)) << "unknown body type";
  EXPECT_FALSE(with(5, 2)) << "a flag that is neither 0 nor 1";
  EXPECT_FALSE(with(6, 7)) << "unknown RET";
  // A recipient count far past the record's end is refused before anything is reserved.
  std::string huge = good.substr(0, 3) + std::string("\xff\xff\xff\xff\x0f", 5) + good.substr(4);
  auto r = deserialize_envelope(huge);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kCorrupt);
  Envelope odd;
  odd.ret = static_cast<DsnRet>(3);
  EXPECT_FALSE(has_valid_values(odd));
  EXPECT_TRUE(has_valid_values(Envelope{}));
}

TEST(Envelope, JsonFormRejectsOutOfRangeValuesAsTheBinaryFormDoes) {
  const std::string good = serialize(Envelope{});
  ASSERT_TRUE(deserialize_envelope(good));
  for (auto [from, to] : {std::pair{"\"body\":0", "\"body\":9"}, std::pair{"\"ret\":0", "\"ret\":-1"}}) {
    std::string bad = good;
    const auto at = bad.find(from);
    ASSERT_NE(at, std::string::npos) << good;
    bad.replace(at, std::string_view(from).size(), to);
    auto r = deserialize_envelope(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, ErrorCode::kCorrupt);
  }
}

TEST(Envelope, RouteSystemIsOptionalSoOlderRecordsStillRead) {
  Envelope e;
  e.mail_from = "a@b.example";
  const std::string text = serialize(e);
  EXPECT_EQ(text.find("route"), std::string::npos);
  auto back = deserialize_envelope(text);
  ASSERT_TRUE(back);
  EXPECT_TRUE(back->route_system.empty());
}

TEST(Envelope, RejectsGarbageAsCorrupt) {
  for (std::string_view bad : {"", "{", "[]", "{\"v\":1}", "{\"v\":99,\"from\":\"\"}",
                               // a float far out of int's range (fuzz_envelope found it undefined)
                               "{\"v\":1.3e88,\"from\":\"\"}", "{\"v\":1.0,\"from\":\"\"}"}) {
    auto r = deserialize_envelope(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, ErrorCode::kCorrupt);
  }
}

}  // namespace
}  // namespace bridgehead
