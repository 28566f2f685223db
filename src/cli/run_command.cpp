#include <fmt/format.h>

#include "cli/commands.hpp"
#include "config/config.hpp"
#include "daemon/daemon.hpp"

namespace bridgehead::cli {

void add_run(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("run", "Run the connector daemon in the foreground");
  auto file = std::make_shared<std::string>(default_config_path());
  cmd->add_option("-c,--config", *file, "configuration file");
  cmd->callback([file, &exit_code] {
    auto loaded = config::load(*file);
    if (!loaded.config) {
      fmt::print(stderr, "bridgehead: not starting, the configuration has problems:\n");
      for (const auto& p : loaded.problems) fmt::print(stderr, "{}\n", p.describe());
      exit_code = 1;
      return;
    }
    exit_code = daemon::run(*loaded.config);
  });
}

}  // namespace bridgehead::cli
