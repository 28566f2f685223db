// Bridges callback-style completions that run on a foreign thread (the spool's writer)
// back into a coroutine on its own executor.
#pragma once

#include <memory>
#include <utility>

#include "core/expected.hpp"
#include "net/asio.hpp"

namespace bridgehead::net {

/// Calls start(callback) and suspends until the callback runs (on any thread); resumes on
/// the awaiting coroutine's executor with the callback's Expected<T>.
template <typename T, typename Start>
awaitable<Expected<T>> await_completion(Start start) {
  return asio::async_initiate<decltype(asio::use_awaitable), void(Expected<T>)>(
      [start = std::move(start)](auto handler) mutable {
        auto ex = asio::get_associated_executor(handler);
        auto shared = std::make_shared<decltype(handler)>(std::move(handler));
        start([shared, ex](Expected<T> result) mutable {
          asio::post(ex, [shared, result = std::move(result)]() mutable {
            (*shared)(std::move(result));
          });
        });
      },
      asio::use_awaitable);
}

}  // namespace bridgehead::net
