#include "net/deadline.hpp"

#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <memory>
#include <thread>

namespace bridgehead::net {
namespace {

using namespace std::chrono_literals;
using Clock = Deadline::Clock;

// Only lower bounds on how long something took, and upper bounds far above it: the machine
// running the tests is shared and may be slow.
struct Counted {
  asio::io_context io;
  int expiries = 0;
  Deadline deadline{io.get_executor(), [this] { ++expiries; }};

  // Runs what is due, for 20s at the most; how long that took.
  Clock::duration run() {
    const auto start = Clock::now();
    io.restart();
    io.run_for(20s);
    return Clock::now() - start;
  }
};

TEST(Deadline, ExpiresOnceWhenItPasses) {
  Counted c;
  const auto start = Clock::now();
  c.deadline.arm(20ms);
  EXPECT_FALSE(c.deadline.expired());
  c.io.run();
  EXPECT_EQ(c.expiries, 1);
  EXPECT_TRUE(c.deadline.expired());
  EXPECT_GE(Clock::now() - start, 20ms);
}

TEST(Deadline, MovedLaterItWaitsForTheNewDeadline) {
  Counted c;
  const auto start = Clock::now();
  c.deadline.arm(30ms);
  asio::steady_timer later(c.io, 10ms);
  later.async_wait([&](error_code) { c.deadline.arm(150ms); });
  c.io.run();
  EXPECT_EQ(c.expiries, 1);
  EXPECT_GE(Clock::now() - start, 160ms);
}

TEST(Deadline, MovedEarlierItExpiresAtTheEarlierOne) {
  Counted c;
  c.deadline.arm(1h);
  c.deadline.arm(20ms);
  EXPECT_LT(c.run(), 10s);
  EXPECT_EQ(c.expiries, 1);
}

TEST(Deadline, DisarmedItNeverExpiresAndLeavesNoWaitBehind) {
  Counted c;
  c.deadline.arm(1h);
  c.deadline.disarm();
  EXPECT_LT(c.run(), 10s) << "a wait is still pending";
  EXPECT_EQ(c.expiries, 0);
  EXPECT_FALSE(c.deadline.expired());
}

TEST(Deadline, ArmedAgainAfterExpiryItStartsOver) {
  Counted c;
  c.deadline.arm(5ms);
  c.io.run();
  ASSERT_TRUE(c.deadline.expired());
  c.deadline.arm(5ms);
  EXPECT_FALSE(c.deadline.expired());
  c.run();
  EXPECT_EQ(c.expiries, 2);
}

TEST(Deadline, AScopeDisarmsItWhenItEnds) {
  Counted c;
  {
    Deadline::Scope scope(c.deadline, 1h);
  }
  EXPECT_LT(c.run(), 10s);
  EXPECT_EQ(c.expiries, 0);

  auto scope = std::make_unique<Deadline::Scope>(c.deadline, 5ms);
  c.run();
  EXPECT_EQ(c.expiries, 1);
  scope.reset();
  EXPECT_TRUE(c.deadline.expired()) << "what the scope's operation needs to know after it";
}

TEST(Deadline, DestroyedWhileItsExpiryIsQueuedItDoesNotExpire) {
  asio::io_context io;
  int expiries = 0;
  // Both timers are due before run() looks, so both handlers are queued together; the first
  // destroys the Deadline, whose handler then finds nothing to expire.
  asio::steady_timer first(io, 1ms);
  auto deadline = std::make_unique<Deadline>(io.get_executor(), [&] { ++expiries; });
  deadline->arm(2ms);
  first.async_wait([&](error_code) { deadline.reset(); });
  std::this_thread::sleep_for(20ms);
  io.run();
  EXPECT_EQ(expiries, 0);
}

TEST(Deadline, ItsExpiryCancelsThePendingReadOfASocket) {
  asio::io_context io;
  asio::local::stream_protocol::socket ours(io), theirs(io);
  asio::local::connect_pair(ours, theirs);
  Deadline deadline(io.get_executor(), [&] {
    error_code ignored;
    ours.cancel(ignored);
  });
  std::array<char, 16> buf{};
  error_code read_ec;
  deadline.arm(10ms);
  ours.async_read_some(asio::buffer(buf), [&](error_code ec, std::size_t) { read_ec = ec; });
  io.run_for(20s);
  EXPECT_EQ(read_ec, asio::error::operation_aborted);
  EXPECT_TRUE(deadline.expired());
}

}  // namespace
}  // namespace bridgehead::net
