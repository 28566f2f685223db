#include <fmt/format.h>

#include "admin/status_view.hpp"
#include "cli/commands.hpp"

namespace bridgehead::cli {

void add_status(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("status", "Show the state of every connector process");
  auto file = std::make_shared<std::string>(default_config_path());
  auto socket = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  cmd->add_option("-c,--config", *file, "configuration file of the running daemon");
  cmd->add_option("--socket", *socket, "control socket (instead of reading it from the config)");
  cmd->add_flag("--json", *json, "print JSON");
  cmd->callback([=, &exit_code] {
    auto r = ask_daemon(*file, *socket, "status", *json, exit_code);
    if (!r) return;
    if (*json) {
      (*r)["running"] = true;
      fmt::print("{}\n", r->dump(2));
    } else {
      fmt::print("{}", admin::format_status_table(*r));
    }
  });
}

}  // namespace bridgehead::cli
