// events/tracking_log: the message tracking log, a subscriber of the event bus. Every
// MessageEvent becomes one JSON line in a file (default <state_dir>/tracking.jsonl), the
// answer to "what happened to the mail Ann sent at 10:02": received, queued, each
// recipient's attempts and outcome, the notice sent. Written by a thread of its own, so a
// slow disk never holds up a stage: past a bound, events are dropped and counted, and the
// process shows it. At max_bytes the file moves to <file>.1 (replacing the one before).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "core/expected.hpp"
#include "events/message_event.hpp"
#include "status/process.hpp"

namespace bridgehead::events {

struct TrackingLogOptions {
  std::filesystem::path file;
  std::uint64_t max_bytes = 64ull << 20;
  std::size_t max_pending = 10000;  ///< events waiting to be written; beyond, dropped
  /// How long the first event of a batch waits for more before the batch is written. A
  /// write and a thread wake-up per event cost the message path about 0.05 ms of CPU per
  /// message under load (measured with make bench); a reader of the log sees lines this late.
  std::chrono::milliseconds linger{100};
  std::size_t batch = 512;  ///< events that are written at once without waiting out linger
};

class TrackingLog {
 public:
  /// `process` shows the log's health ("tracking"): running, or degraded with the cause
  /// and remedy when the file cannot be written or events were dropped.
  TrackingLog(TrackingLogOptions options, std::shared_ptr<status::Process> process);
  ~TrackingLog();  ///< writes what is pending, then stops
  TrackingLog(const TrackingLog&) = delete;
  TrackingLog& operator=(const TrackingLog&) = delete;

  /// Opens the file (created 0640, appended to) and starts the writer. Called once the
  /// daemon runs as its service user, so the file and its rotations are that user's. An
  /// error names the file; events are then counted as dropped and the process says why.
  Expected<void> start();
  /// The subscriber: queues the line. Never waits for the disk.
  void add(const MessageEvent& e);
  /// Waits until everything queued so far is written (tests, shutdown).
  void flush();

 private:
  void loop();
  bool write_lines(const std::string& text);  // writer thread
  bool open_file();                           // writer thread or start()

  TrackingLogOptions options_;
  std::shared_ptr<status::Process> process_;
  std::mutex mu_;
  std::condition_variable cv_;        ///< the writer waits on it
  std::condition_variable done_cv_;   ///< flush() waits on it
  std::deque<MessageEvent> pending_;  ///< made into JSON on the writer thread, not the stage's
  std::uint64_t queued_ = 0;          ///< lines ever queued
  std::uint64_t written_ = 0;         ///< lines taken by the writer (written or failed)
  bool quit_ = false;
  std::uint64_t flush_wanted_ = 0;  ///< under mu_: queued_ as a flush() asked for it, written without linger
  bool started_ = false;            ///< under mu_: the file was opened and the writer runs
  int fd_ = -1;                     ///< writer thread only, once started
  std::uint64_t size_ = 0;
  bool failing_ = false;
  std::thread thread_;
};

}  // namespace bridgehead::events
