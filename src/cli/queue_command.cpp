#include <ctime>

#include <fmt/format.h>

#include "cli/commands.hpp"

namespace bridgehead::cli {

void add_queue(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("queue", "List the messages in the running daemon's queue");
  auto file = std::make_shared<std::string>(default_config_path());
  auto socket = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  cmd->add_option("-c,--config", *file, "configuration file of the running daemon");
  cmd->add_option("--socket", *socket, "control socket (instead of reading it from the config)");
  cmd->add_flag("--json", *json, "print JSON");
  cmd->callback([=, &exit_code] {
    auto r = ask_daemon(*file, *socket, "queue", *json, exit_code, std::chrono::seconds(60));
    if (!r) return;
    if (*json) {
      fmt::print("{}\n", r->dump(2));
    } else {
      const auto& msgs = (*r)["messages"];
      fmt::print("{:<17} {:>9} {:<10} {:<30} {}\n", "ID", "SIZE", "FROM-SYS", "SENDER", "RECIPIENTS");
      for (const auto& m : msgs) {
        std::string from = m["from"].get<std::string>();
        fmt::print("{:<17} {:>9} {:<10} {:<30} {}\n", m["id"].get<std::string>(), m["size"].get<std::uint64_t>(),
                   m["system"].get<std::string>(), from.empty() ? "<>" : from,
                   fmt::join(m["recipients"].get<std::vector<std::string>>(), ", "));
      }
      fmt::print("{} message{} queued\n", msgs.size(), msgs.size() == 1 ? "" : "s");
    }
  });
}

}  // namespace bridgehead::cli
