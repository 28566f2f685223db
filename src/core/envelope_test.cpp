#include "core/envelope.hpp"

#include <gtest/gtest.h>

namespace bridgehead {
namespace {

TEST(Envelope, RoundTripsEveryField) {
  Envelope e;
  e.mail_from = "alice@exchange.example";
  e.recipients = {{"bob@notes.example", kNotifyFailure | kNotifyDelay, "rfc822;bob@notes.example"},
                  {"carol@notes.example", kNotifyNever, ""}};
  e.body = BodyType::k8BitMime;
  e.smtputf8 = true;
  e.ret = DsnRet::kHeaders;
  e.envid = "QQ314159";
  e.declared_size = 4096;
  e.helo = "mx.exchange.example";
  e.client_address = "127.0.0.1:40000";
  e.ingress_system = "exchange";
  e.tls = true;
  e.received_at = 1764000000;
  e.route_system = "exchange";
  auto back = deserialize_envelope(serialize(e));
  ASSERT_TRUE(back) << back.error().describe();
  EXPECT_EQ(*back, e);
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
  for (std::string_view bad : {"", "{", "[]", "{\"v\":1}", "{\"v\":99,\"from\":\"\"}"}) {
    auto r = deserialize_envelope(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, ErrorCode::kCorrupt);
  }
}

}  // namespace
}  // namespace bridgehead
