#include "status/process.hpp"

#include <ctime>
#include <stdexcept>

#include <fmt/format.h>

namespace bridgehead::status {

namespace {
std::int64_t now() { return static_cast<std::int64_t>(std::time(nullptr)); }

}  // namespace

std::string_view to_string(ProcessState s) {
  switch (s) {
    case ProcessState::kStopped: return "stopped";
    case ProcessState::kStarting: return "starting";
    case ProcessState::kRunning: return "running";
    case ProcessState::kDegraded: return "degraded";
    case ProcessState::kError: return "error";
  }
  return "unknown";
}

std::string_view to_string(MetricKind k) { return k == MetricKind::kCounter ? "counter" : "gauge"; }

std::uint64_t ProcessStatus::value(const std::string& metric) const {
  auto it = metrics.find(metric);
  return it == metrics.end() ? 0 : it->second.value;
}

Process::Process(std::string name) : name_(std::move(name)) {
  status_.name = name_;
  status_.state = ProcessState::kStarting;
  status_.since = now();
}

void Process::set_state(ProcessState state, std::string activity) {
  std::lock_guard lock(mu_);
  if (status_.state != state) {
    status_.state = state;
    status_.since = now();
  }
  status_.activity = std::move(activity);
}

void Process::set_activity(std::string activity) {
  std::lock_guard lock(mu_);
  status_.activity = std::move(activity);
}

void Process::report_error(ProcessState state, const Error& error) {
  std::lock_guard lock(mu_);
  if (status_.state != state) {
    status_.state = state;
    status_.since = now();
  }
  status_.last_error = LastError{error.message, error.remedy, now()};
  metric("errors", MetricKind::kCounter).value += 1;
}

void Process::recover(std::string activity) {
  std::lock_guard lock(mu_);
  if (status_.state != ProcessState::kRunning) {
    status_.state = ProcessState::kRunning;
    status_.since = now();
  }
  status_.activity = std::move(activity);
}

Metric& Process::metric(const std::string& name, MetricKind kind) {
  auto [it, added] = status_.metrics.try_emplace(name, Metric{kind, 0});
  if (!added && it->second.kind != kind) {
    throw std::logic_error(fmt::format("process {}: metric {} is a {}, not a {}", name_, name,
                                       to_string(it->second.kind), to_string(kind)));
  }
  return it->second;
}

void Process::add(const std::string& counter, std::uint64_t n) {
  std::lock_guard lock(mu_);
  metric(counter, MetricKind::kCounter).value += n;
}

void Process::set_counter(const std::string& counter, std::uint64_t total) {
  std::lock_guard lock(mu_);
  metric(counter, MetricKind::kCounter).value = total;
}

void Process::set_gauge(const std::string& gauge, std::uint64_t value) {
  std::lock_guard lock(mu_);
  metric(gauge, MetricKind::kGauge).value = value;
}

void Process::set_detail(const std::string& key, std::string value) {
  std::lock_guard lock(mu_);
  status_.details[key] = std::move(value);
}

ProcessState Process::state() const {
  std::lock_guard lock(mu_);
  return status_.state;
}

ProcessStatus Process::snapshot() const {
  std::lock_guard lock(mu_);
  return status_;
}

std::shared_ptr<Process> ProcessRegistry::add(const std::string& name) {
  std::lock_guard lock(mu_);
  for (const auto& p : processes_) {
    if (p->name() == name) throw std::logic_error("process registered twice: " + name);
  }
  processes_.push_back(std::make_shared<Process>(name));
  return processes_.back();
}

std::vector<ProcessStatus> ProcessRegistry::snapshot() const {
  std::lock_guard lock(mu_);
  std::vector<ProcessStatus> out;
  out.reserve(processes_.size());
  for (const auto& p : processes_) out.push_back(p->snapshot());
  return out;
}

}  // namespace bridgehead::status
