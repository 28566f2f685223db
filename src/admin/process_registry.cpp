#include "admin/process_registry.hpp"

#include <ctime>
#include <stdexcept>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace bridgehead::admin {

namespace {
std::int64_t now() { return static_cast<std::int64_t>(std::time(nullptr)); }

std::string format_time(std::int64_t t) {
  std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  localtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}
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
  status_.counters["errors"] += 1;
}

void Process::recover(std::string activity) {
  std::lock_guard lock(mu_);
  if (status_.state != ProcessState::kRunning) {
    status_.state = ProcessState::kRunning;
    status_.since = now();
  }
  status_.activity = std::move(activity);
}

void Process::add(const std::string& counter, std::uint64_t n) {
  std::lock_guard lock(mu_);
  status_.counters[counter] += n;
}

void Process::set_counter(const std::string& counter, std::uint64_t value) {
  std::lock_guard lock(mu_);
  status_.counters[counter] = value;
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

nlohmann::json ProcessRegistry::to_json() const {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& s : snapshot()) {
    nlohmann::json j = {{"name", s.name},         {"state", to_string(s.state)},
                        {"activity", s.activity}, {"since", s.since},
                        {"counters", s.counters}, {"details", s.details}};
    if (s.last_error) {
      j["last_error"] = {{"message", s.last_error->message},
                         {"remedy", s.last_error->remedy},
                         {"at", s.last_error->at}};
    }
    list.push_back(std::move(j));
  }
  return {{"processes", std::move(list)}};
}

std::string format_status_table(const nlohmann::json& status) {
  std::string out = fmt::format("{:<22} {:<9} {:<19} {}\n", "PROCESS", "STATE", "SINCE", "ACTIVITY");
  for (const auto& p : status.at("processes")) {
    out += fmt::format("{:<22} {:<9} {:<19} {}\n", p.at("name").get<std::string>(),
                       p.at("state").get<std::string>(), format_time(p.at("since").get<std::int64_t>()),
                       p.at("activity").get<std::string>());
    if (p.contains("last_error")) {
      const auto& e = p.at("last_error");
      out += fmt::format("{:<22} last error {}: {}\n", "", format_time(e.at("at").get<std::int64_t>()),
                         e.at("message").get<std::string>());
      if (!e.at("remedy").get<std::string>().empty()) {
        out += fmt::format("{:<22} remedy: {}\n", "", e.at("remedy").get<std::string>());
      }
    }
    for (const auto& [k, v] : p.at("details").items()) {
      out += fmt::format("{:<22} {}: {}\n", "", k, v.get<std::string>());
    }
    std::string counters;
    for (const auto& [k, v] : p.at("counters").items()) {
      counters += fmt::format("{}{}={}", counters.empty() ? "" : " ", k, v.get<std::uint64_t>());
    }
    if (!counters.empty()) out += fmt::format("{:<22} {}\n", "", counters);
  }
  return out;
}

}  // namespace bridgehead::admin
