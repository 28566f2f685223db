#include "queue/schedule.hpp"

#include <gtest/gtest.h>

namespace bridgehead::queue {
namespace {

using smtp::client::Outcome;
using smtp::client::RecipientResult;
using spool::RecipientStatus;

constexpr std::int64_t kArrival = 1'800'000'000;  // unix seconds
constexpr std::int64_t kHour = 3600;

// Delays 1h, 2h; lifetime 10h; delay notice after 3h.
RetrySchedule schedule() {
  RetryOptions o;
  o.delays = {std::chrono::hours(1), std::chrono::hours(2)};
  o.lifetime = std::chrono::hours(10);
  o.delay_notice_after = std::chrono::hours(3);
  auto s = RetrySchedule::create(o);
  if (!s) throw std::runtime_error(s.error().describe());
  return *s;
}

Envelope envelope(std::uint8_t notify = kNotifyNone, std::string sender = "ann@exchange.example") {
  Envelope e;
  e.mail_from = std::move(sender);
  e.received_at = kArrival;
  e.recipients = {Recipient{"carol@notes.example", notify, ""}};
  return e;
}

AttemptResult server(Outcome outcome, int code, const std::string& text) {
  smtp::client::ServerReply reply;
  reply.code = code;
  reply.lines = {text};
  return AttemptResult{.recipient = RecipientResult::from_reply(0, outcome, reply), .remote = "127.0.0.1:2526"};
}

// Our own description, no reply from any server (connection refused, destination held).
AttemptResult no_answer(std::string why, std::string status_without_reply = "") {
  return AttemptResult{
      .recipient = {.index = 0, .outcome = Outcome::kDeferred, .reply = std::move(why), .from_server = false},
      .status_without_reply = std::move(status_without_reply),
      .remote = "127.0.0.1:2526"};
}

spool::RecipientState fresh() { return spool::RecipientState{}; }

TEST(Schedule, DeliveredAndRelayedWithoutNotifySuccessSendsNothing) {
  const auto d = decide(envelope(), fresh(), server(Outcome::kDelivered, 250, "2.0.0 ok"), schedule(), kArrival + 5);
  EXPECT_EQ(d.verdict, Verdict::kDelivered);
  EXPECT_EQ(d.state.status, RecipientStatus::kDelivered);
  EXPECT_EQ(d.state.attempts, 1u);
  EXPECT_EQ(d.state.last_attempt, kArrival + 5);
  EXPECT_EQ(d.state.reply, "250 2.0.0 ok");
  EXPECT_EQ(d.state.remote, "127.0.0.1:2526");
  EXPECT_FALSE(d.notice);
}

TEST(Schedule, NotifySuccessIsRelayedUnlessTheNextHopTookTheRequest) {
  auto a = server(Outcome::kDelivered, 250, "2.1.5 queued as 12");
  auto d = decide(envelope(kNotifySuccess), fresh(), a, schedule(), kArrival);
  ASSERT_TRUE(d.notice);
  EXPECT_EQ(d.notice->action, dsn::Action::kRelayed);
  EXPECT_EQ(d.notice->status, "2.1.5");
  a.dsn_relayed = true;  // the next hop reports success itself (RFC 3461 4.1)
  EXPECT_FALSE(decide(envelope(kNotifySuccess), fresh(), a, schedule(), kArrival).notice);
  a.final_delivery = true;  // Maildir, LMTP: we are the last hop, so we report it
  d = decide(envelope(kNotifySuccess), fresh(), a, schedule(), kArrival);
  ASSERT_TRUE(d.notice);
  EXPECT_EQ(d.notice->action, dsn::Action::kDelivered);
}

TEST(Schedule, FailedSendsAFailureNoticeWithTheServersCode) {
  const auto d = decide(envelope(), fresh(), server(Outcome::kFailed, 550, "5.1.1 no such user"), schedule(), kArrival);
  EXPECT_EQ(d.verdict, Verdict::kFailed);
  EXPECT_EQ(d.state.status, RecipientStatus::kFailed);
  ASSERT_TRUE(d.notice);
  EXPECT_EQ(d.notice->action, dsn::Action::kFailed);
  EXPECT_EQ(d.notice->status, "5.1.1");
  EXPECT_FALSE(d.notice->will_retry_until);
}

TEST(Schedule, AFailureWithoutAnEnhancedCodeOrOfTheWrongClassIsReportedAsTheClassAlone) {
  EXPECT_EQ(decide(envelope(), fresh(), server(Outcome::kFailed, 554, "no"), schedule(), kArrival).notice->status,
            "5.0.0");
  EXPECT_EQ(
      decide(envelope(), fresh(), server(Outcome::kFailed, 550, "2.0.0 odd"), schedule(), kArrival).notice->status,
      "5.0.0");
}

TEST(Schedule, NoFailureNoticeForNotifyNeverNotifyDelayOnlyOrANullSender) {
  const auto refused = server(Outcome::kFailed, 550, "5.1.1 no such user");
  EXPECT_FALSE(decide(envelope(kNotifyNever), fresh(), refused, schedule(), kArrival).notice);
  EXPECT_FALSE(decide(envelope(kNotifyDelay), fresh(), refused, schedule(), kArrival).notice);
  EXPECT_FALSE(decide(envelope(kNotifyNone, ""), fresh(), refused, schedule(), kArrival).notice);
  EXPECT_TRUE(decide(envelope(kNotifyFailure | kNotifySuccess), fresh(), refused, schedule(), kArrival).notice);
}

TEST(Schedule, DeferredIsRetriedAtTheNextDelayWithoutANoticeBeforeItsTime) {
  const auto busy = server(Outcome::kDeferred, 451, "4.3.0 try later");
  auto d = decide(envelope(), fresh(), busy, schedule(), kArrival + 10);
  EXPECT_EQ(d.verdict, Verdict::kDeferred);
  EXPECT_EQ(d.state.status, RecipientStatus::kDeferred);
  EXPECT_EQ(d.state.next_attempt, kArrival + 10 + kHour);
  EXPECT_FALSE(d.notice);
  d = decide(envelope(), d.state, busy, schedule(), kArrival + kHour + 10);
  EXPECT_EQ(d.state.attempts, 2u);
  EXPECT_EQ(d.state.next_attempt, kArrival + 3 * kHour + 10);  // the second delay, 2h
  EXPECT_FALSE(d.notice);
}

TEST(Schedule, TheDelayNoticeGoesOnceWithTheServersCodeAndTheRetryLimit) {
  const auto busy = server(Outcome::kDeferred, 452, "4.2.2 mailbox full");
  auto d = decide(envelope(), fresh(), busy, schedule(), kArrival + 3 * kHour);
  ASSERT_TRUE(d.notice);
  EXPECT_EQ(d.notice->action, dsn::Action::kDelayed);
  EXPECT_EQ(d.notice->status, "4.2.2");
  EXPECT_EQ(d.notice->will_retry_until, kArrival + 10 * kHour);
  EXPECT_TRUE(d.state.delay_notice_sent);
  // The next deferral sends no second one.
  d = decide(envelope(), d.state, busy, schedule(), kArrival + 5 * kHour);
  EXPECT_FALSE(d.notice);
  EXPECT_TRUE(d.state.delay_notice_sent);
}

TEST(Schedule, ADelayNoticeWithoutAServerReplySaysNoAnswerOrWhatTheQueueKnows) {
  auto d = decide(envelope(), fresh(), no_answer("connection refused by 127.0.0.1:2526"), schedule(),
                  kArrival + 4 * kHour);
  ASSERT_TRUE(d.notice);
  EXPECT_EQ(d.notice->status, "4.4.1");  // RFC 3463: no answer from host
  EXPECT_EQ(d.state.reply, "connection refused by 127.0.0.1:2526");
  // Held (the connector's ID is locked): nothing was sent, the reason is the queue's own.
  d = decide(envelope(), fresh(), no_answer("not attempted: the connector ID is locked", "4.3.5"), schedule(),
             kArrival + 4 * kHour);
  EXPECT_EQ(d.verdict, Verdict::kDeferred);
  ASSERT_TRUE(d.notice);
  EXPECT_EQ(d.notice->status, "4.3.5");
}

TEST(Schedule, NoDelayNoticeUnlessNotifyAsksForIt) {
  const auto busy = server(Outcome::kDeferred, 451, "4.3.0 try later");
  for (std::uint8_t notify : {std::uint8_t(kNotifyNever), std::uint8_t(kNotifyFailure), std::uint8_t(kNotifySuccess)}) {
    const auto d = decide(envelope(notify), fresh(), busy, schedule(), kArrival + 4 * kHour);
    EXPECT_FALSE(d.notice) << int(notify);
    EXPECT_FALSE(d.state.delay_notice_sent) << int(notify);
  }
  EXPECT_TRUE(decide(envelope(kNotifyDelay), fresh(), busy, schedule(), kArrival + 4 * kHour).notice);
  EXPECT_FALSE(decide(envelope(kNotifyNone, ""), fresh(), busy, schedule(), kArrival + 4 * kHour).notice);
}

TEST(Schedule, DeferredPastTheLifetimeExpiresAsAFailureWith447) {
  const auto busy = server(Outcome::kDeferred, 451, "4.3.0 try later");
  auto d = decide(envelope(), fresh(), busy, schedule(), kArrival + 10 * kHour);
  EXPECT_EQ(d.verdict, Verdict::kExpired);
  EXPECT_EQ(d.state.status, RecipientStatus::kFailed);
  ASSERT_TRUE(d.notice);
  EXPECT_EQ(d.notice->action, dsn::Action::kFailed);
  EXPECT_EQ(d.notice->status, "4.4.7");
  EXPECT_EQ(d.state.reply, "451 4.3.0 try later");
  // Just before the end it is still a deferral, retried no later than the expiry.
  d = decide(envelope(), fresh(), busy, schedule(), kArrival + 10 * kHour - 60);
  EXPECT_EQ(d.verdict, Verdict::kDeferred);
  EXPECT_EQ(d.state.next_attempt, kArrival + 10 * kHour);
  EXPECT_FALSE(decide(envelope(kNotifyNever), fresh(), busy, schedule(), kArrival + 11 * kHour).notice);
}

}  // namespace
}  // namespace bridgehead::queue
