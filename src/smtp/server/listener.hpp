// The SMTP ingress listener of one system: accepts connections, runs one inbound session
// coroutine per client (smtp::Session decides the replies), hands each message's header
// section to the cleanup stage (on the worker pool), streams the content to the spool and
// answers 250 only after the spool has made it durable. Owns sockets, TLS, timeouts and
// connection limits; not the protocol rules, not what cleanup does, not the storage format.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "cleanup/cleanup.hpp"
#include "events/message_event.hpp"
#include "status/process.hpp"
#include "core/expected.hpp"
#include "net/asio.hpp"
#include "smtp/protocol/data_decoder.hpp"
#include "smtp/protocol/session.hpp"
#include "smtp/server/server_settings.hpp"
#include "spool/spool.hpp"

namespace bridgehead::smtp {

/// Connection counts shared by every listener of the daemon, so that max_sessions and
/// max_sessions_per_client hold across all of them. Touched on the I/O thread only.
struct SessionBudget {
  unsigned total = 0;
  std::map<std::string, unsigned> per_client;
};

struct ListenerOptions {
  std::string system;                       ///< name of the system whose mail arrives here
  net::tcp::endpoint endpoint;
  SessionOptions session;                   ///< hostname, limits; starttls_available is derived from `tls`
  ContentLimits content;
  std::size_t max_line_length = ServerSettings{}.max_line_length;  ///< command lines, including CRLF
  unsigned max_sessions = ServerSettings{}.max_sessions;
  unsigned max_sessions_per_client = ServerSettings{}.max_sessions_per_client;
  std::chrono::seconds command_timeout{ServerSettings{}.command_timeout_seconds};
  std::chrono::seconds data_timeout{ServerSettings{}.data_timeout_seconds};
  std::shared_ptr<net::asio::ssl::context> tls;  ///< null: STARTTLS not offered
  std::shared_ptr<SessionBudget> budget;         ///< shared by all listeners; null: this one's own
  /// This system's direction of the cleanup stage: every message goes through it before
  /// its 250. Null: a listener of its own with the defaults and no steps.
  std::shared_ptr<const cleanup::Cleanup> cleanup;
  /// Where cleanup runs: the worker pool, never the I/O thread. Null: the I/O thread (tests).
  net::asio::any_io_executor blocking;
  /// Runs on the I/O thread once a message is durable (before its 250 goes out): how the
  /// queue manager learns of new mail without polling the spool.
  std::function<void(spool::MessageId, const Envelope&, std::uint64_t size)> on_queued;
  /// Where each message's end is published: received (the 250) or refused. The listener's
  /// counters (messages_accepted, bytes_accepted, messages_refused) are a subscriber of it,
  /// for this system's events. Null: a bus of the listener's own, with only those counters.
  events::EventBus* events = nullptr;
};

/// A listener for `system`'s mail with the [smtp] settings; the rest (endpoint, TLS,
/// cleanup, callbacks) is the caller's to fill in.
ListenerOptions listener_options(const ServerSettings& settings, std::string system, std::string hostname);

class Listener {
 public:
  Listener(net::asio::io_context& io, ListenerOptions options, spool::Spool& spool,
           RecipientCheck check, std::shared_ptr<status::Process> process);
  ~Listener();
  /// Binds and starts accepting; fails (transient kUnavailable) when the port is taken.
  Expected<void> start();
  /// Stops accepting and asks every session to end: each says 421 4.3.2 and closes as
  /// soon as it is not waiting for the spool. Messages not yet committed are dropped
  /// (they never got a 250).
  void stop();
  /// The TLS context for STARTTLS from now on (null: STARTTLS no longer offered). Sessions
  /// already in TLS keep theirs. On the I/O thread.
  void set_tls(std::shared_ptr<net::asio::ssl::context> tls);
  /// Sessions still open (the daemon waits for 0 before it exits).
  std::size_t active_sessions() const;
  net::tcp::endpoint local_endpoint() const;

  struct State;  // shared with the sessions, which may outlive the listener briefly

 private:
  net::awaitable<void> accept_loop();
  net::asio::io_context& io_;
  std::shared_ptr<State> state_;
  net::tcp::acceptor acceptor_;
};

}  // namespace bridgehead::smtp
