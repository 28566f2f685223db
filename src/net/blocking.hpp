// Running blocking work (big MIME parses, key derivation, fsyncs) off the I/O thread: the
// one way a coroutine hands a function to a worker pool and continues where it was.
#pragma once

#include <type_traits>
#include <utility>

#include "net/asio.hpp"

namespace bridgehead::net {

/// Runs `fn()` on `pool` (e.g. a thread_pool's executor) and resumes the awaiting coroutine
/// on its own executor with fn's result; an exception thrown by fn is rethrown there.
/// Whatever fn refers to must live until the co_await completes (by value is safest).
/// Pass a named function object (`co_await run_blocking(pool, std::move(work))`), never a
/// lambda written in the call: GCC 12 destroys a lambda temporary inside a co_await
/// expression twice, which frees whatever it owns (a captured string) twice.
template <typename F>
awaitable<std::invoke_result_t<std::decay_t<F>&>> run_blocking(asio::any_io_executor pool, F&& fn) {
  using R = std::invoke_result_t<std::decay_t<F>&>;
  // Not a coroutine itself: the lambda handed to co_spawn here would otherwise be such a
  // temporary inside this function's own co_await (test
  // RunBlocking.AFunctionThatOwnsMemoryIsDestroyedOnce). co_spawn dispatches its
  // completion to the awaiting handler's associated executor, which for use_awaitable is
  // the executor of the coroutine awaiting here.
  return asio::co_spawn(
      std::move(pool), [fn = std::forward<F>(fn)]() mutable -> awaitable<R> { co_return fn(); }, asio::use_awaitable);
}

}  // namespace bridgehead::net
