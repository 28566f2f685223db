// The schedule decision: what one next hop's answer for one recipient means — the
// recipient's new state, and whether a notice goes to the sender and which. A pure
// function of (the recipient's state, the answer, the retry schedule, now): no I/O, no
// clock, no counters. The queue manager acts on what it returns (records the state,
// queues the notice, counts and logs the verdict); keeping the deciding apart from the
// acting is what lets every outcome be tested on its own (queue/schedule_test.cpp).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "core/envelope.hpp"
#include "dsn/dsn.hpp"
#include "queue/retry_schedule.hpp"
#include "smtp/client/connection.hpp"
#include "spool/spool.hpp"

namespace bridgehead::queue {

/// One recipient's part of one attempt, as the transport reported it.
struct AttemptResult {
  smtp::client::RecipientResult recipient;  ///< outcome and the typed reply
  /// A success is final delivery (Maildir, LMTP: "delivered"), not a hand-off ("relayed").
  bool final_delivery = false;
  /// The next hop took our NOTIFY/ORCPT/RET/ENVID, so it reports success itself.
  bool dsn_relayed = false;
  /// RFC 3463 code for a deferral without the server's answer ("4.3.5": the destination
  /// is held); empty: 4.4.1, no answer from the host.
  std::string status_without_reply{};
  std::string remote{};  ///< "127.0.0.1:2526", "maildir"
};

enum class Verdict {
  kDelivered,  ///< final or relayed
  kFailed,     ///< refused for good by the next hop, or by us (unroutable, conversion)
  kDeferred,   ///< tried again at state.next_attempt
  kExpired,    ///< deferred past the lifetime: failed with 4.4.7
};

/// A notice to the sender about this recipient (RFC 3464).
struct Notice {
  dsn::Action action = dsn::Action::kFailed;
  std::string status;  ///< RFC 3463, "5.1.1"
  /// Delay notices: until when the message is retried (unix seconds).
  std::optional<std::int64_t> will_retry_until;
};

struct Decision {
  spool::RecipientState state;  ///< what to record
  Verdict verdict = Verdict::kDeferred;
  std::optional<Notice> notice;  ///< none: NOTIFY, a null sender or the next hop said no
};

/// Decides what `attempt` means for recipient `before.index` of `envelope`. Never fails.
/// `now` is unix seconds; the envelope's received_at is the arrival the lifetime and the
/// delay notice count from.
Decision decide(const Envelope& envelope, const spool::RecipientState& before, const AttemptResult& attempt,
                const RetrySchedule& schedule, std::int64_t now);

}  // namespace bridgehead::queue
