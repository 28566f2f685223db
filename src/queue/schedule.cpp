#include "queue/schedule.hpp"

namespace bridgehead::queue {
namespace {

using spool::RecipientStatus;

// The reply's own RFC 3463 code when it is of the class the outcome implies, else class.0.0
// (a "550" without an enhanced code, or one that contradicts its reply code).
std::string status_of(const smtp::client::RecipientResult& r, char klass) {
  if (!r.enhanced.empty() && r.enhanced.front() == klass) return r.enhanced;
  return std::string(1, klass) + ".0.0";
}

}  // namespace

Decision decide(const Envelope& envelope, const spool::RecipientState& before, const AttemptResult& attempt,
                const RetrySchedule& schedule, std::int64_t now) {
  const auto& rr = attempt.recipient;
  const Recipient& rcpt = envelope.recipients[before.index];
  const TimePoint arrival = from_unix(envelope.received_at);
  Decision d;
  d.state = before;
  d.state.attempts += 1;
  d.state.last_attempt = now;
  d.state.reply = rr.reply;
  d.state.remote = attempt.remote;
  switch (rr.outcome) {
    case smtp::client::Outcome::kDelivered: {
      d.state.status = RecipientStatus::kDelivered;
      d.verdict = Verdict::kDelivered;
      // A next hop that took our NOTIFY reports success itself (RFC 3461 4.1).
      const auto action = attempt.final_delivery ? dsn::Action::kDelivered : dsn::Action::kRelayed;
      if ((attempt.final_delivery || !attempt.dsn_relayed) && dsn::needs_dsn(envelope, rcpt, action)) {
        d.notice = Notice{action, status_of(rr, '2'), std::nullopt};
      }
      break;
    }
    case smtp::client::Outcome::kFailed:
      d.state.status = RecipientStatus::kFailed;
      d.verdict = Verdict::kFailed;
      if (dsn::needs_dsn(envelope, rcpt, dsn::Action::kFailed)) {
        d.notice = Notice{dsn::Action::kFailed, status_of(rr, '5'), std::nullopt};
      }
      break;
    case smtp::client::Outcome::kDeferred:
      if (schedule.expired(arrival, from_unix(now))) {
        d.state.status = RecipientStatus::kFailed;
        d.verdict = Verdict::kExpired;
        if (dsn::needs_dsn(envelope, rcpt, dsn::Action::kFailed)) {
          d.notice = Notice{dsn::Action::kFailed, "4.4.7", std::nullopt};  // RFC 3463: delivery time expired
        }
        break;
      }
      d.state.status = RecipientStatus::kDeferred;
      d.verdict = Verdict::kDeferred;
      d.state.next_attempt = to_unix(schedule.next_attempt(arrival, d.state.attempts, from_unix(now)));
      if (schedule.delay_notice_due(arrival, from_unix(now), d.state.delay_notice_sent) &&
          dsn::needs_dsn(envelope, rcpt, dsn::Action::kDelayed)) {
        d.state.delay_notice_sent = true;
        // No answer at all (refused, timeout, TLS): RFC 3463 4.4.1, "no answer from host".
        std::string status = rr.from_server                         ? status_of(rr, '4')
                             : attempt.status_without_reply.empty() ? std::string("4.4.1")
                                                                    : attempt.status_without_reply;
        d.notice = Notice{dsn::Action::kDelayed, std::move(status),
                          to_unix(arrival + schedule.options().lifetime)};
      }
      break;
  }
  return d;
}

}  // namespace bridgehead::queue
