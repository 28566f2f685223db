// How the queue manager hands a message to a destination system: one delivery attempt for
// some recipients of one message, with an outcome per recipient. Two kinds: SMTP/LMTP
// through smtp/client (idle connections are kept and reused with RSET), and local Maildir
// through maildir/ (blocking fsyncs run on a small thread pool, off the I/O thread).
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/envelope.hpp"
#include "maildir/maildir.hpp"
#include "net/asio.hpp"
#include "smtp/client/connection.hpp"

namespace bridgehead::queue {

using smtp::client::Outcome;
using smtp::client::RecipientResult;
using smtp::client::TransactionResult;

class Transport {
 public:
  virtual ~Transport() = default;
  /// "127.0.0.1:2526", "Maildir below /srv/mail": for activity lines and logs.
  virtual std::string describe() const = 0;
  /// Whether a success is final delivery (Maildir, LMTP: the DSN action is "delivered") or
  /// a hand-off to another relay (SMTP: "relayed" unless the next hop took the DSN request).
  virtual bool final_delivery() const = 0;
  /// One attempt; never fails as a whole (trouble is a per-recipient kDeferred, a content
  /// read that fails included). Runs on the I/O thread; may be called by several
  /// coroutines at once (up to the concurrency). `content` is read once, front to back.
  virtual net::awaitable<TransactionResult> deliver(const Envelope& envelope, std::vector<std::size_t> indices,
                                                    smtp::client::ContentSource& content) = 0;
  /// Closes what is kept open between attempts (the destination has nothing to do).
  virtual net::awaitable<void> release() { co_return; }
};

struct SmtpTarget {
  std::string host;
  std::uint16_t port = 0;
  smtp::client::ClientOptions options;
};

std::unique_ptr<Transport> make_smtp_transport(net::asio::any_io_executor io, SmtpTarget target);

/// `pool` runs the blocking Maildir writes; it must outlive the transport.
std::unique_ptr<Transport> make_maildir_transport(net::asio::thread_pool& pool, std::filesystem::path root,
                                                  std::string hostname);

}  // namespace bridgehead::queue
