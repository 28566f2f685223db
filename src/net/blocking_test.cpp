#include "net/blocking.hpp"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <thread>
#include <utility>

namespace bridgehead::net {
namespace {

TEST(RunBlocking, RunsOnThePoolAndResumesOnTheCallersExecutor) {
  asio::io_context io;
  asio::thread_pool pool(1);
  const auto io_thread = std::this_thread::get_id();
  std::thread::id worked_on, resumed_on;
  std::string got;
  auto body = [&]() -> awaitable<void> {
    got = co_await run_blocking(pool.get_executor(), [&worked_on] {
      worked_on = std::this_thread::get_id();
      return std::string(100000, 'x');
    });
    resumed_on = std::this_thread::get_id();
    co_await run_blocking(pool.get_executor(), [] {});  // void works too
  };
  std::exception_ptr failure;
  asio::co_spawn(io, body(), [&failure](std::exception_ptr e) { failure = e; });
  io.run();
  pool.join();
  ASSERT_FALSE(failure);
  EXPECT_NE(worked_on, io_thread) << "the work ran on the I/O thread";
  EXPECT_EQ(resumed_on, io_thread) << "the coroutine did not resume on its own executor";
  EXPECT_EQ(got.size(), 100000u);
}

TEST(RunBlocking, AFunctionThatOwnsMemoryIsDestroyedOnce) {
  // With GCC 12 the by-value parameter of run_blocking, a temporary of the caller's
  // co_await, was destroyed twice: a function that captured a string freed it twice (the
  // ASan build reports it; others may crash later). Counted, for builds without ASan.
  struct Counted {
    int* destroyed;
    std::string owned = std::string(1000, 'y');
    Counted(int* d) : destroyed(d) {}
    Counted(Counted&& o) noexcept : destroyed(std::exchange(o.destroyed, nullptr)), owned(std::move(o.owned)) {}
    Counted(const Counted&) = delete;
    ~Counted() {
      if (destroyed != nullptr) ++*destroyed;
    }
  };
  asio::io_context io;
  asio::thread_pool pool(1);
  int destroyed = 0;
  std::size_t got = 0;
  auto body = [&]() -> awaitable<void> {
    auto work = [c = Counted(&destroyed)] { return c.owned.size(); };
    got = co_await run_blocking(pool.get_executor(), std::move(work));
  };
  std::exception_ptr failure;
  asio::co_spawn(io, body(), [&failure](std::exception_ptr e) { failure = e; });
  io.run();
  pool.join();
  ASSERT_FALSE(failure);
  EXPECT_EQ(got, 1000u);
  EXPECT_EQ(destroyed, 1) << "the function's captures were destroyed more than once";
}

TEST(RunBlocking, AnExceptionReachesTheAwaitingCoroutine) {
  asio::io_context io;
  asio::thread_pool pool(1);
  std::string caught;
  auto body = [&]() -> awaitable<void> {
    try {
      co_await run_blocking(pool.get_executor(), []() -> int { throw std::runtime_error("parse failed"); });
    } catch (const std::runtime_error& e) {
      caught = e.what();
    }
  };
  std::exception_ptr failure;
  asio::co_spawn(io, body(), [&failure](std::exception_ptr e) { failure = e; });
  io.run();
  pool.join();
  ASSERT_FALSE(failure);
  EXPECT_EQ(caught, "parse failed");
}

}  // namespace
}  // namespace bridgehead::net
