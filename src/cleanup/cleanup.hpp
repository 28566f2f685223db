// The cleanup stage: what is done once per message between the end of its header section
// and the 250, whatever the message is and wherever it goes next. In order: the loop check
// (too many Received: fields), the steps of its direction (address rewriting and content
// conversion, per system the mail arrives from), then our trace header on top. Pure, no
// I/O: the listener runs it on the worker pool when the direction has steps (needs_pool), and a refusal is the SMTP
// reply the client gets instead of the 250, so a message that cannot be processed is never accepted.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/envelope.hpp"
#include "core/expected.hpp"
#include "smtp/protocol/data_decoder.hpp"
#include "smtp/protocol/reply.hpp"

namespace bridgehead::cleanup {

/// A message as the cleanup stage sees it: its envelope and its header section. The body
/// streams past to the spool; the header section is held until cleanup has run.
struct Message {
  Envelope envelope;    ///< as received (client, HELO, TLS filled in); a step may rewrite it
  std::string headers;  ///< the header section as received, its empty line included if it had one
  std::string queue_id;
  bool esmtp = true;  ///< EHLO rather than HELO, for the trace header's protocol name
};

/// Why cleanup refuses a message, and where in its content the problem is: a problem the
/// content decoder found earlier in the stream is reported instead (first_problem).
struct Refusal {
  smtp::Reply reply;
  smtp::ContentPosition at;
};

/// One step of a direction, run on every message arriving from its system.
class Step {
 public:
  virtual ~Step() = default;
  /// Names the step in log lines and refusals.
  virtual std::string_view name() const = 0;
  /// Rewrites the envelope or the header section in place, or refuses the message with the
  /// reply the client is to get (4xx: try again later; 5xx: never).
  virtual tl::expected<void, smtp::Reply> apply(Message& message) const = 0;
};

struct Options {
  std::string hostname;                            ///< our name, in the trace header
  unsigned max_received_headers = 50;              ///< more is a mail loop (554 5.4.6)
  std::vector<std::shared_ptr<const Step>> steps;  ///< this direction's, in order
};

class Cleanup {
 public:
  explicit Cleanup(Options options);

  /// Runs the loop check, then each step, then prepends the trace header to
  /// message.headers. On a refusal the message is left as it was.
  tl::expected<void, Refusal> run(Message& message, std::int64_t unix_time) const;

  const Options& options() const { return options_; }
  /// Whether run() is worth a trip to the worker pool: only with direction steps (rewriting,
  /// conversion). Without them it is the loop check and the trace header, a scan of the
  /// header section that costs less than the trip's two thread switches (make bench: about
  /// 0.1 ms of CPU per message on a 4 KB relay), so the listener runs it where it is.
  bool needs_pool() const { return !options_.steps.empty(); }

 private:
  Options options_;
};

/// Offset just past the empty line that ends the header section of `content` (decoded,
/// CRLF lines), or nullopt while it has not ended. Only octets from `from` on are new to
/// the caller; the three before it are looked at again for a CRLF CRLF cut in two.
std::optional<std::size_t> header_section_end(std::string_view content, std::size_t from = 0);

/// The loop check alone: the position of the Received: field that is one over `max`
/// (case-insensitive field name, blanks before the colon allowed; continuation lines and
/// the body never count), or nullopt.
std::optional<smtp::ContentPosition> received_over_limit(std::string_view headers, unsigned max);

/// The Received: trace header (RFC 5321 4.4) we prepend to accepted content, CRLF-ended
/// and folded under 998 octets. The client is named by its HELO and, in parentheses, its
/// address as an RFC 5321 address literal taken from envelope.client_address ("ip:port").
/// `with` is the RFC 3848 protocol type derived from the envelope: SMTP, ESMTP, ESMTPS,
/// UTF8SMTP, UTF8SMTPS.
std::string make_received_header(const Envelope& envelope, std::string_view our_hostname, std::string_view queue_id,
                                 std::int64_t unix_time, bool esmtp);

/// The reply for a message both the decoder and cleanup may have found a problem in: the
/// one that comes first in the content, as if one pass had checked every byte in order.
std::optional<smtp::Reply> first_problem(const std::optional<smtp::Reply>& decoder_verdict,
                                         smtp::ContentPosition decoder_at, const std::optional<Refusal>& refusal);

}  // namespace bridgehead::cleanup
