// status: the model of what the connector is doing — Bridgehead's Process Manager. Every
// long-running part (an ingress listener, a delivery queue, the spool, later dirsync)
// registers a named Process and keeps its state, current activity, last error with its
// remedy, and its metrics up to date. The control socket, the CLI, the web console and
// the metrics export all read this one registry; it performs no I/O and knows nothing of
// how it is shown (admin/ renders it). It sits just above core/ so any component can
// report into it without depending on the administration channel.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"

namespace bridgehead::status {

enum class ProcessState { kStopped, kStarting, kRunning, kDegraded, kError };
std::string_view to_string(ProcessState s);

/// A counter only grows (events since start: messages accepted, bytes written); a gauge
/// is a level that goes up and down (messages queued, open files). A metrics export
/// needs the difference: a rate is taken of a counter, never of a gauge.
enum class MetricKind { kCounter, kGauge };
std::string_view to_string(MetricKind k);

struct Metric {
  MetricKind kind = MetricKind::kCounter;
  std::uint64_t value = 0;
};

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
  std::map<std::string, Metric> metrics;
  std::map<std::string, std::string> details;  ///< e.g. "recovery": what the spool found at start

  /// The value of a metric, 0 when it was never set.
  std::uint64_t value(const std::string& metric) const;
};

/// One registered process. Thread-safe; updates are cheap (a short mutex, never held
/// across I/O or co_await). A metric keeps the kind it was first given: the same name
/// used as a counter and as a gauge is a broken invariant (std::logic_error).
class Process {
 public:
  explicit Process(std::string name);
  const std::string& name() const { return name_; }

  /// Changes state (records `since` only when the state really changes) and activity.
  void set_state(ProcessState state, std::string activity);
  void set_activity(std::string activity);
  /// Records an error and moves to `state` (kDegraded or kError); counts it in "errors".
  void report_error(ProcessState state, const Error& error);
  /// Back to kRunning after a degradation, keeping the last error for the record.
  void recover(std::string activity);
  /// A counter goes up by n.
  void add(const std::string& counter, std::uint64_t n = 1);
  /// A counter kept elsewhere (the spool's totals) is published with its current total.
  void set_counter(const std::string& counter, std::uint64_t total);
  void set_gauge(const std::string& gauge, std::uint64_t value);
  void set_detail(const std::string& key, std::string value);
  ProcessState state() const;
  ProcessStatus snapshot() const;

 private:
  Metric& metric(const std::string& name, MetricKind kind);  // mu_ held

  const std::string name_;
  mutable std::mutex mu_;
  ProcessStatus status_;
};

class ProcessRegistry {
 public:
  /// Registers a process (state kStarting); a name registered twice is a broken invariant.
  std::shared_ptr<Process> add(const std::string& name);
  std::vector<ProcessStatus> snapshot() const;

 private:
  mutable std::mutex mu_;
  std::vector<std::shared_ptr<Process>> processes_;
};

}  // namespace bridgehead::status
