#include "net/deadline.hpp"

#include <cstdint>
#include <utility>

namespace bridgehead::net {

struct Deadline::State : std::enable_shared_from_this<State> {
  State(asio::any_io_executor ex, std::function<void()> fn) : timer(std::move(ex)), expire(std::move(fn)) {}

  // Sets the timer to the deadline. A wait started before is superseded: its handler, run
  // with operation_aborted (or success, if it was already queued), sees another generation.
  void wait() {
    const std::uint64_t gen = ++generation;
    waiting = true;
    timer.expires_at(deadline);
    timer.async_wait([weak = weak_from_this(), gen](error_code) {
      auto self = weak.lock();
      if (!self || self->generation != gen) return;
      self->waiting = false;
      if (!self->armed) return;
      // The deadline moved later while the timer ran: wait for the rest.
      if (Clock::now() < self->deadline) {
        self->wait();
        return;
      }
      self->armed = false;
      self->expired = true;
      self->expire();
    });
  }

  asio::steady_timer timer;
  std::function<void()> expire;
  Clock::time_point deadline{};
  std::uint64_t generation = 0;
  bool armed = false;
  bool waiting = false;  // a wait of the current generation is pending
  bool expired = false;
};

Deadline::Deadline(asio::any_io_executor ex, std::function<void()> expire)
    : state_(std::make_shared<State>(std::move(ex), std::move(expire))) {}

Deadline::~Deadline() { disarm(); }

void Deadline::arm(Clock::duration timeout) {
  State& s = *state_;
  s.deadline = Clock::now() + timeout;
  s.armed = true;
  s.expired = false;
  if (!s.waiting || s.timer.expiry() > s.deadline) s.wait();
}

void Deadline::disarm() {
  State& s = *state_;
  s.armed = false;
  if (!s.waiting) return;
  ++s.generation;
  s.waiting = false;
  s.timer.cancel();
}

bool Deadline::expired() const { return state_->expired; }

}  // namespace bridgehead::net
