// Starting a coroutine. Outside net/, `co_spawn` is written nowhere but through these
// (scripts/check-net-only, ctest label lint), so every coroutine's end, and an exception
// escaping it, goes to a handler that deals with it rather than a bare `detached`.
#pragma once

#include <concepts>
#include <exception>
#include <string>
#include <utility>

#include "net/asio.hpp"

namespace bridgehead::net {

/// Starts `coro` on `ex`; when it ends, `on_done` runs on `ex` with the exception that escaped
/// it (null when it returned). For a caller that must act on its end (free what the coroutine
/// used, count it) or hand the exception on (a test); log it there, or use spawn_logged.
template <typename OnDone>
  requires std::invocable<OnDone&, std::exception_ptr>
void spawn(const asio::any_io_executor& ex, awaitable<void> coro, OnDone on_done) {
  asio::co_spawn(ex, std::move(coro), std::move(on_done));
}

/// Starts `coro` on `ex`; an exception escaping it is logged with `what` instead of lost.
void spawn_logged(const asio::any_io_executor& ex, awaitable<void> coro, std::string what);

}  // namespace bridgehead::net
