#include <ctime>

#include <fmt/format.h>

#include "cli/commands.hpp"

namespace bridgehead::cli {

void add_queue(CLI::App& app, int& exit_code) {
  add_daemon_query(
      &app, "queue", "List the messages in the running daemon's queue", exit_code, std::chrono::seconds(60),
      [](const nlohmann::json& r) {
        const auto& msgs = r.at("messages");
        fmt::print("{:<17} {:>9} {:<10} {}\n", "ID", "SIZE", "FROM-SYS", "SENDER");
        for (const auto& m : msgs) {
          std::string from = m["from"].get<std::string>();
          std::string sys = m["system"].get<std::string>();
          fmt::print("{:<17} {:>9} {:<10} {}\n", m["id"].get<std::string>(), m["size"].get<std::uint64_t>(),
                     sys.empty() ? "(report)" : sys, from.empty() ? "<>" : from);
          // One line per recipient: where it stands and the last answer, so a stuck message
          // says why it is stuck.
          for (const auto& rcpt : m.value("state", nlohmann::json::array())) {
            std::string line =
                fmt::format("    {:<32} {}", rcpt["address"].get<std::string>(), rcpt["status"].get<std::string>());
            const auto attempts = rcpt.value("attempts", 0u);
            if (attempts > 0) line += fmt::format(", {} attempt{}", attempts, attempts == 1 ? "" : "s");
            if (rcpt.contains("next_attempt")) {
              const std::time_t t = rcpt["next_attempt"].get<std::int64_t>();
              std::tm tm{};
              localtime_r(&t, &tm);
              line += fmt::format(", next {:02}:{:02}:{:02}", tm.tm_hour, tm.tm_min, tm.tm_sec);
            }
            if (rcpt.contains("reply")) line += ": " + rcpt["reply"].get<std::string>();
            fmt::print("{}\n", line);
          }
        }
        fmt::print("{} message{} queued\n", msgs.size(), msgs.size() == 1 ? "" : "s");
      });
}

}  // namespace bridgehead::cli
