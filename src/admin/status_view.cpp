#include "admin/status_view.hpp"

#include <ctime>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace bridgehead::admin {

namespace {
std::string format_time(std::int64_t t) {
  std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  localtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

std::string metric_line(const nlohmann::json& metrics) {
  std::string line;
  for (const auto& [k, v] : metrics.items()) {
    line += fmt::format("{}{}={}", line.empty() ? "" : " ", k, v.get<std::uint64_t>());
  }
  return line;
}
}  // namespace

nlohmann::json status_json(const std::vector<status::ProcessStatus>& processes) {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& s : processes) {
    nlohmann::json counters = nlohmann::json::object();
    nlohmann::json gauges = nlohmann::json::object();
    for (const auto& [name, m] : s.metrics) {
      (m.kind == status::MetricKind::kCounter ? counters : gauges)[name] = m.value;
    }
    nlohmann::json j = {{"name", s.name},
                        {"state", status::to_string(s.state)},
                        {"activity", s.activity},
                        {"since", s.since},
                        {"counters", std::move(counters)},
                        {"gauges", std::move(gauges)},
                        {"details", s.details}};
    if (s.last_error) {
      j["last_error"] = {{"message", s.last_error->message},
                         {"remedy", s.last_error->remedy},
                         {"at", s.last_error->at}};
    }
    list.push_back(std::move(j));
  }
  return {{"processes", std::move(list)}};
}

nlohmann::json status_json(const status::ProcessRegistry& registry) { return status_json(registry.snapshot()); }

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
    // Levels first (what is there now), then the counts since start.
    if (p.contains("gauges")) {
      if (const auto line = metric_line(p.at("gauges")); !line.empty()) out += fmt::format("{:<22} now: {}\n", "", line);
    }
    if (const auto line = metric_line(p.at("counters")); !line.empty()) out += fmt::format("{:<22} {}\n", "", line);
  }
  return out;
}

}  // namespace bridgehead::admin
