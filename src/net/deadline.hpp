// A deadline for the I/O of one connection: when it passes, a given action runs (it cancels
// the socket, so the pending operation completes with operation_aborted). The listener's
// sessions and the outbound connections both time out through it. It owns no socket.
#pragma once

#include <chrono>
#include <functional>
#include <memory>

#include "net/asio.hpp"

namespace bridgehead::net {

/// One timer for a connection's successive deadlines. Moving the deadline later (each read
/// and write of a session does) costs no timer operation; the timer is set again only when
/// it wakes early or the deadline moves earlier. Not thread-safe: use it on its executor.
class Deadline {
 public:
  using Clock = std::chrono::steady_clock;

  /// `expire` runs on `ex` when an armed deadline passes, at most once per arm, and never
  /// after this Deadline is destroyed.
  Deadline(asio::any_io_executor ex, std::function<void()> expire);
  ~Deadline();
  Deadline(const Deadline&) = delete;
  Deadline& operator=(const Deadline&) = delete;

  /// The deadline is now + timeout, replacing any earlier one; expired() is false again.
  void arm(Clock::duration timeout);
  /// No deadline until the next arm(); the timer is cancelled, so an idle connection holds
  /// no pending wait (an io_context with nothing else to do returns from run()).
  void disarm();
  /// Whether the last armed deadline passed (and `expire` ran).
  bool expired() const;

  /// Arms `deadline` for the scope of one operation and disarms it when the scope ends.
  class Scope {
   public:
    Scope(Deadline& deadline, Clock::duration timeout) : deadline_(deadline) { deadline_.arm(timeout); }
    ~Scope() { deadline_.disarm(); }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    Deadline& deadline_;
  };

 private:
  struct State;
  // Shared with the timer's handler, which holds it weakly: a handler already queued when
  // the timer is cancelled or destroyed still runs (with success, if the timer had expired).
  std::shared_ptr<State> state_;
};

}  // namespace bridgehead::net
