#include <fmt/format.h>

#include "cli/commands.hpp"
#include "config/config.hpp"
#include "daemon/daemon.hpp"
#include "identity/password.hpp"

namespace bridgehead::cli {

void add_run(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("run", "Run the connector daemon in the foreground");
  auto file = std::make_shared<std::string>(default_config_path());
  cmd->add_option("-c,--config", *file, "configuration file");
  cmd->callback([file, &exit_code] {
    // First, before OpenSSL allocates anything: no freed OpenSSL buffer keeps the connector
    // ID's password. Only the daemon pays for the wiping.
    const bool wiping = identity::wipe_openssl_frees();
    auto loaded = config::load(*file);
    if (!loaded.config) {
      fmt::print(stderr, "bridgehead: not starting, the configuration has problems:\n");
      for (const auto& p : loaded.problems) fmt::print(stderr, "{}\n", p.describe());
      exit_code = kFailure;
      return;
    }
    if (!wiping) {
      fmt::print(stderr, "bridgehead: warning: OpenSSL allocated memory before `run` could make it wipe what it "
                         "frees; a freed copy of the connector ID password may stay in memory\n");
    }
    auto ran = daemon::run(*loaded.config);
    if (!ran) fmt::print(stderr, "bridgehead: not starting: {}\n", ran.error().describe());
    exit_code = ran ? kOk : kFailure;
  });
}

}  // namespace bridgehead::cli
