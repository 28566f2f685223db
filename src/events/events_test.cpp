#include "events/message_event.hpp"
#include "events/tracking_log.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "temp_dir.hpp"

namespace bridgehead::events {
namespace {

std::vector<std::string> lines_of(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::vector<std::string> out;
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

MessageEvent delivered(std::string id) {
  MessageEvent e;
  e.kind = EventKind::kDelivered;
  e.at_ms = 1700000000123;
  e.queue_id = std::move(id);
  e.system = "notes";
  e.sender = "ann@exchange.example";
  e.recipient = "carol@notes.example";
  e.next_hop = "127.0.0.1:2526";
  e.reply = "250 2.0.0 Ok: queued as \xff";
  return e;
}

TEST(EventBus, EverySubscriberGetsEveryEventInOrder) {
  EventBus bus;
  std::vector<std::string> seen;
  bus.subscribe([&](const MessageEvent& e) { seen.push_back("a:" + e.queue_id); });
  bus.subscribe([&](const MessageEvent& e) { seen.push_back("b:" + e.queue_id); });
  bus.publish(delivered("1"));
  bus.publish(delivered("2"));
  EXPECT_EQ(seen, (std::vector<std::string>{"a:1", "b:1", "a:2", "b:2"}));
}

TEST(MessageEvent, AJsonLineHasTheFieldsThatAreSetAndSurvivesInvalidUtf8) {
  const auto j = nlohmann::json::parse(to_json_line(delivered("00000000000000a1")));
  EXPECT_EQ(j["event"], "delivered");
  EXPECT_EQ(j["at_ms"], 1700000000123);
  EXPECT_EQ(j["queue_id"], "00000000000000a1");
  EXPECT_EQ(j["recipient"], "carol@notes.example");
  EXPECT_EQ(j["next_hop"], "127.0.0.1:2526");
  EXPECT_EQ(j["reply"], "250 2.0.0 Ok: queued as \xEF\xBF\xBD");  // U+FFFD
  EXPECT_FALSE(j.contains("detail"));
  EXPECT_FALSE(j.contains("expired"));
  MessageEvent bounce;
  bounce.kind = EventKind::kReceived;
  bounce.queue_id = "b";
  const auto r = nlohmann::json::parse(to_json_line(bounce));
  ASSERT_TRUE(r.contains("sender")) << "the null sender is shown, as \"\"";
  EXPECT_EQ(r["sender"], "");
}

TEST(TrackingLog, WritesOneLinePerEventAndMovesTheFileAsideWhenFull) {
  test_support::TempDir dir;
  auto process = std::make_shared<status::Process>("tracking");
  TrackingLog log({.file = dir.path() / "tracking.jsonl", .max_bytes = 600, .max_pending = 1000}, process);
  ASSERT_TRUE(log.start());
  for (int i = 0; i < 3; ++i) log.add(delivered(std::to_string(i)));
  log.flush();
  auto lines = lines_of(dir.path() / "tracking.jsonl");
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(nlohmann::json::parse(lines[2])["queue_id"], "2");
  // Past 600 bytes the next batch starts a new file; the old one is kept as .1.
  for (int i = 3; i < 6; ++i) {
    log.add(delivered(std::to_string(i)));
    log.flush();
  }
  EXPECT_TRUE(std::filesystem::exists(dir.path() / "tracking.jsonl.1"));
  const auto old = lines_of(dir.path() / "tracking.jsonl.1");
  const auto now = lines_of(dir.path() / "tracking.jsonl");
  EXPECT_EQ(old.size() + now.size(), 6u);
  EXPECT_EQ(nlohmann::json::parse(now.back())["queue_id"], "5");
  EXPECT_EQ(process->snapshot().value("events"), 6u);
  EXPECT_EQ(process->snapshot().value("dropped"), 0u);
  EXPECT_EQ(process->state(), status::ProcessState::kRunning);
}

// Events linger to be written in batches (one write and one wake-up per batch, not per
// event); neither flush() nor shutdown waits the linger out. Were they to, this test would
// hang for an hour and fail on ctest's timeout.
TEST(TrackingLog, FlushAndShutdownWriteAtOnceWhateverTheLinger) {
  test_support::TempDir dir;
  const auto file = dir.path() / "tracking.jsonl";
  {
    TrackingLogOptions options;
    options.file = file;
    options.linger = std::chrono::hours(1);
    TrackingLog log(options, std::make_shared<status::Process>("tracking"));
    ASSERT_TRUE(log.start());
    for (int i = 0; i < 3; ++i) log.add(delivered(std::to_string(i)));
    log.flush();
    EXPECT_EQ(lines_of(file).size(), 3u);
    log.add(delivered("3"));
    log.add(delivered("4"));
  }
  const auto lines = lines_of(file);
  ASSERT_EQ(lines.size(), 5u);
  EXPECT_EQ(nlohmann::json::parse(lines.back())["queue_id"], "4");
}

// A full batch is written without waiting out the linger.
TEST(TrackingLog, AFullBatchIsWrittenWithoutWaitingForTheLinger) {
  test_support::TempDir dir;
  const auto file = dir.path() / "tracking.jsonl";
  TrackingLogOptions options;
  options.file = file;
  options.linger = std::chrono::hours(1);
  options.batch = 4;
  auto process = std::make_shared<status::Process>("tracking");
  TrackingLog log(options, process);
  ASSERT_TRUE(log.start());
  for (int i = 0; i < 4; ++i) log.add(delivered(std::to_string(i)));
  // No flush: the fourth event fills the batch, which wakes the writer.
  while (process->snapshot().value("events") < 4u) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(lines_of(file).size(), 4u);
}

TEST(TrackingLog, AFileThatCannotBeOpenedIsAnErrorNamingItAndEventsAreCountedAsDropped) {
  test_support::TempDir dir;
  auto process = std::make_shared<status::Process>("tracking");
  TrackingLog log({.file = dir.path() / "missing" / "tracking.jsonl"}, process);
  auto started = log.start();
  ASSERT_FALSE(started);
  EXPECT_NE(started.error().message.find("missing/tracking.jsonl"), std::string::npos) << started.error().message;
  EXPECT_EQ(process->state(), status::ProcessState::kDegraded);
  log.add(delivered("1"));
  log.flush();
  EXPECT_EQ(process->snapshot().value("dropped"), 1u);
}

TEST(TrackingLog, BeyondTheBoundEventsAreDroppedNotWaitedFor) {
  test_support::TempDir dir;
  auto process = std::make_shared<status::Process>("tracking");
  TrackingLog log({.file = dir.path() / "t.jsonl", .max_pending = 0}, process);
  ASSERT_TRUE(log.start());
  log.add(delivered("1"));
  log.flush();
  EXPECT_EQ(process->snapshot().value("dropped"), 1u);
  EXPECT_TRUE(lines_of(dir.path() / "t.jsonl").empty());
}

}  // namespace
}  // namespace bridgehead::events
