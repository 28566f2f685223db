// dsn: decides which recipient outcomes the sender must hear about (RFC 3461 NOTIFY) and
// composes the RFC 3464 delivery status notification message for them. Pure: no I/O, no
// clock reads (the caller passes `now`). It does not send the DSN: its envelope (MAIL FROM:<>,
// RCPT TO:<original sender>, BODY=8BITMIME when the result has 8-bit octets) and its
// queueing are the caller's business, as is collecting outcomes and retry times.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/envelope.hpp"

namespace bridgehead::dsn {

/// RFC 3464 section 2.3.3 action values.
enum class Action { kFailed, kDelayed, kDelivered, kRelayed, kExpanded };

/// Without RET, a failure report returns the whole message up to this size and only its
/// headers above it (RFC 3461 4.3 leaves the choice to the implementation).
inline constexpr std::size_t kFullReturnLimit = 256 * 1024;

struct RecipientReport {
  std::string final_recipient;     ///< the address as we tried it (no angle brackets)
  std::string original_recipient;  ///< ORCPT as in the envelope ("rfc822;x@y"), or empty
  Action action = Action::kFailed;
  std::string status;                 ///< RFC 3463 code "5.1.1"; a malformed one becomes X.0.0
  std::string remote_mta;             ///< "dns; mx.example" (a bare host gets "dns; "), or empty
  std::string diagnostic;             ///< "smtp; 550 5.1.1 user unknown" (bare text gets "smtp; "), or empty
  std::int64_t last_attempt = 0;      ///< unix seconds, 0 = omit
  std::int64_t will_retry_until = 0;  ///< unix seconds, delays only, 0 = omit
};

struct Report {
  std::string reporting_mta;                ///< our host name
  std::string envid;                        ///< ENVID of the original envelope, or empty
  std::int64_t arrival_date = 0;            ///< unix seconds, 0 = omit
  std::string original_sender;              ///< To: of the DSN; never empty (see needs_dsn)
  std::vector<RecipientReport> recipients;  ///< only those needs_dsn() accepted
  DsnRet ret = DsnRet::kUnspecified;
};

/// Whether `rcpt`'s outcome must be reported: never for the null sender (no bounce of a
/// bounce), then NOTIFY (NEVER; SUCCESS for delivered/relayed/expanded; FAILURE; DELAY),
/// with absent NOTIFY meaning FAILURE,DELAY (RFC 3461 4.1). Cannot fail.
bool needs_dsn(const Envelope& original, const Recipient& rcpt, Action action);

/// The report builder for one recipient: final recipient and ORCPT copied from `rcpt`.
RecipientReport report_for(const Recipient& rcpt, Action action, std::string status);

/// The RFC 3464 action keyword ("failed", "delayed", ...).
std::string_view to_string(Action action);

/// Composes the whole DSN (RFC 5322 headers, multipart/report; report-type=delivery-status
/// with a text/plain explanation, the message/delivery-status fields, and the original as
/// message/rfc822 or text/rfc822-headers). `original` is the original message (CRLF lines;
/// bare LF/CR are normalised); `now` gives Date and the Message-ID. Output: CRLF, lines of at
/// most 998 octets, 7-bit headers. It has 8-bit octets only when the returned original does
/// (that part is then labelled 8bit). Never fails: odd input is sanitised, not rejected.
std::string compose(const Report& report, std::string_view original, std::int64_t now);

}  // namespace bridgehead::dsn
