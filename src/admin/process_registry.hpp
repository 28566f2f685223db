// The process registry — Bridgehead's Process Manager. Every long-running part (an
// ingress listener, later delivery and dirsync) registers a named Process and keeps its
// state, current activity, last error with remedy, and counters up to date. The CLI, the
// web console and the metrics all read this one registry; it performs no I/O itself.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/error.hpp"

namespace bridgehead::admin {

enum class ProcessState { kStopped, kStarting, kRunning, kDegraded, kError };
std::string_view to_string(ProcessState s);

struct LastError {
  std::string message;
  std::string remedy;
  std::int64_t at = 0;  ///< unix seconds
};

struct ProcessStatus {
  std::string name;
  ProcessState state = ProcessState::kStopped;
  std::string activity;                        ///< plain words: "listening on 127.0.0.1:2525, 3 sessions"
  std::int64_t since = 0;                      ///< unix seconds of the last state change
  std::optional<LastError> last_error;
  std::map<std::string, std::uint64_t> counters;
  std::map<std::string, std::string> details;  ///< e.g. "recovery": what the spool found at start
};

/// One registered process. Thread-safe; updates are cheap (a short mutex, never held
/// across I/O or co_await).
class Process {
 public:
  explicit Process(std::string name);
  const std::string& name() const { return name_; }

  /// Changes state (records `since` only when the state really changes) and activity.
  void set_state(ProcessState state, std::string activity);
  void set_activity(std::string activity);
  /// Records an error and moves to `state` (kDegraded or kError).
  void report_error(ProcessState state, const Error& error);
  /// Back to kRunning after a degradation, keeping the last error for the record.
  void recover(std::string activity);
  void add(const std::string& counter, std::uint64_t n = 1);
  void set_counter(const std::string& counter, std::uint64_t value);
  void set_detail(const std::string& key, std::string value);
  ProcessState state() const;
  ProcessStatus snapshot() const;

 private:
  const std::string name_;
  mutable std::mutex mu_;
  ProcessStatus status_;
};

class ProcessRegistry {
 public:
  /// Registers a process (state kStarting); a name registered twice is a broken invariant.
  std::shared_ptr<Process> add(const std::string& name);
  std::vector<ProcessStatus> snapshot() const;
  /// {"processes":[{name,state,activity,since,last_error?,counters,details}...]}
  nlohmann::json to_json() const;

 private:
  mutable std::mutex mu_;
  std::vector<std::shared_ptr<Process>> processes_;
};

/// The table `bridgehead status` prints, from the JSON of to_json().
std::string format_status_table(const nlohmann::json& status);

}  // namespace bridgehead::admin
