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
template <typename F>
awaitable<std::invoke_result_t<F&>> run_blocking(asio::any_io_executor pool, F fn) {
  using R = std::invoke_result_t<F&>;
  // co_spawn dispatches its completion to the awaiting handler's associated executor,
  // which for use_awaitable is the executor of the coroutine awaiting here.
  co_return co_await asio::co_spawn(
      std::move(pool), [fn = std::move(fn)]() mutable -> awaitable<R> { co_return fn(); }, asio::use_awaitable);
}

}  // namespace bridgehead::net
