#include <fmt/format.h>

#include "admin/status_view.hpp"
#include "cli/commands.hpp"

namespace bridgehead::cli {

void add_status(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("status", "Show the state of every connector process");
  auto args = std::make_shared<DaemonArgs>();
  add_daemon_options(cmd, *args);
  cmd->callback([=, &exit_code] {
    auto r = ask_daemon(*args, {{"command", "status"}}, exit_code);
    if (!r) return;
    if (args->json) {
      (*r)["running"] = true;
      fmt::print("{}\n", r->dump(2));
    } else {
      fmt::print("{}", admin::format_status_table(*r));
    }
  });
}

}  // namespace bridgehead::cli
