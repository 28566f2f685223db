// smtp/client: the outbound side. An SMTP (RFC 5321) or LMTP (RFC 2033) client connection that
// hands one message at a time to a next hop and reports, per recipient, what the next hop
// answered. It owns the wire protocol (EHLO/LHLO, STARTTLS policy, PIPELINING, SIZE,
// 8BITMIME, SMTPUTF8, DSN pass-through, dot-stuffing, RSET between messages). It does not
// own retries, bounces or the queue: every outcome is returned, never acted upon.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/envelope.hpp"
#include "core/expected.hpp"
#include "net/asio.hpp"
#include "smtp/client/content_source.hpp"
#include "smtp/client/reply_reader.hpp"
#include "smtp/client/tls_policy.hpp"

namespace bridgehead::smtp::client {

namespace asio = net::asio;
using net::awaitable;

struct ClientOptions {
  bool lmtp = false;
  std::string helo_name = "localhost";  ///< our name in EHLO/LHLO
  TlsPolicy tls = TlsPolicy::kOpportunistic;
  std::string ca_file;          ///< PEM CA bundle for kRequired; empty = the system's default paths
  /// The name the certificate must carry with kRequired (DNS names, no partial wildcards;
  /// an IP address is matched against the certificate's IP addresses), and the SNI sent.
  /// Empty: the host given to open(). There is no way to skip the name check.
  std::string verify_name;
  /// Name resolution and the TCP connect together.
  std::chrono::seconds connect_timeout{30};
  /// Per reply, the greeting and the TLS handshake included (RFC 5321 4.5.3.2 values are the upper end).
  std::chrono::seconds command_timeout{300};
  std::chrono::seconds data_timeout{600};     ///< for the reply to the final "."
  /// Called for 8-bit content when the server lacks 8BITMIME (RFC 6152 downgrade). Its error
  /// fails every recipient of the message permanently with the error's message. When unset,
  /// such content fails with 5.6.3. It blocks (a MIME parse of the whole message): it runs
  /// on `blocking`.
  std::function<Expected<std::string>(std::string_view)> downgrade_8bit;
  /// Where blocking work runs (a worker pool's executor); empty: on the calling coroutine's
  /// thread, which only tests should want.
  asio::any_io_executor blocking;
  /// Optional hook on the TLS context before the handshake (client certificate, issue 4).
  std::function<void(asio::ssl::context&)> configure_tls;
};

/// What the server offered in its EHLO/LHLO reply.
struct Capabilities {
  bool esmtp = false;  ///< EHLO/LHLO was accepted (false: fell back to HELO)
  bool pipelining = false, eight_bit_mime = false, smtputf8 = false, dsn = false;
  bool starttls = false, enhanced_status_codes = false, chunking = false;
  std::uint64_t size = 0;  ///< SIZE limit, 0 = none given
};

/// How one reply (or the absence of one) counts for a recipient.
enum class Outcome {
  kDelivered,  ///< 2xx to the final "." (SMTP) or this recipient's post-DATA reply (LMTP)
  kDeferred,   ///< 4xx, or a connection/TLS/timeout failure: try again later
  kFailed,     ///< 5xx: bounce
};

struct RecipientResult {
  std::size_t index = 0;  ///< into Envelope::recipients
  Outcome outcome = Outcome::kDeferred;
  /// The server's reply as one line, "550 5.1.1 <x@y>: user unknown" (multi-line replies
  /// joined with " "), or our own description when there was no reply ("connection refused
  /// by 127.0.0.1:25", "timed out waiting for the reply to DATA").
  std::string reply;
  bool from_server = false;  ///< reply is the server's own answer (goes into Diagnostic-Code)
  /// The reply's code and RFC 3463 enhanced code, typed so nobody parses them back out of
  /// `reply`: 250 and "2.0.0"; for our own description the code we stand for (451 "4.3.0"
  /// for a Maildir write that failed); 0 and "" when there is none (connection refused).
  int code = 0;
  std::string enhanced{};

  /// The outcome a server's reply gave recipient `index`.
  static RecipientResult from_reply(std::size_t index, Outcome outcome, const ServerReply& reply);
};

struct TransactionResult {
  std::vector<RecipientResult> recipients;  ///< one per requested index, same order
  bool dsn_relayed = false;  ///< the server offered DSN and got NOTIFY/ORCPT/RET/ENVID
  bool reusable = false;     ///< the connection can take another message (after RSET)
  std::string remote;        ///< "127.0.0.1:2526" (for Remote-MTA)
  /// The RFC 3463 code for reports on recipients without a server reply ("4.3.5" when the
  /// attempt was not made); empty: the caller's default.
  std::string status_without_reply;
};

/// One open connection to a next hop. Not thread-safe: one coroutine at a time. Its timers
/// complete on the executor given to open(): with an io_context run by several threads,
/// pass a strand.
class Connection {
 public:
  /// Connects to `host:port`, reads the greeting, says EHLO (LHLO for LMTP), and does
  /// STARTTLS per the policy (then EHLO again). Fails transient for refused, timeout,
  /// greeting 4xx/421, a required STARTTLS not offered, or a failed TLS handshake or
  /// certificate check; permanent for a 5xx greeting. The message says which and where.
  static awaitable<Expected<std::unique_ptr<Connection>>> open(asio::any_io_executor ex, std::string host,
                                                                std::uint16_t port, ClientOptions options);
  ~Connection();

  const Capabilities& capabilities() const;
  bool tls_active() const;
  std::string remote() const;  ///< "127.0.0.1:2526"

  /// Sends one message to the recipients `indices` of `envelope`: MAIL FROM (BODY=, SMTPUTF8,
  /// SIZE=, RET/ENVID when DSN is offered), RCPT TO per recipient (NOTIFY/ORCPT when DSN is
  /// offered), then DATA with the dot-stuffed content if any recipient was accepted. With
  /// PIPELINING, MAIL/RCPT/DATA go in one write. Sends RSET first when the connection has
  /// carried a message before. `content` is the message as spooled (CRLF lines; a bare LF
  /// is sent as CRLF, a missing final CRLF is added). Never fails as a whole: connection
  /// trouble makes every still-open recipient kDeferred and the connection not reusable.
  /// Refusals decided before MAIL (SMTPUTF8 or 8BITMIME missing, SIZE exceeded) are
  /// kFailed with our own reply (from_server false) and leave the connection reusable.
  /// An index outside `envelope.recipients` is a broken invariant: std::out_of_range.
  awaitable<TransactionResult> send(const Envelope& envelope, std::vector<std::size_t> indices,
                                    std::string_view content);
  /// The same, with the content read from `content` piece by piece while it is sent: one
  /// piece and one write buffer in memory, never the whole message (except to downgrade it,
  /// which reads it whole and converts it on options.blocking). A piece that cannot be read
  /// after DATA was accepted breaks the connection before the end of data (nothing partial
  /// is delivered) and defers the recipients with the read error.
  awaitable<TransactionResult> send(const Envelope& envelope, std::vector<std::size_t> indices,
                                    ContentSource& content);

  /// QUIT and close; errors are ignored.
  awaitable<void> close();

 private:
  struct Impl;
  explicit Connection(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace bridgehead::smtp::client
