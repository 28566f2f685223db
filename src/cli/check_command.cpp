#include <fmt/format.h>

#include "cli/commands.hpp"
#include "config/config.hpp"

namespace bridgehead::cli {

void add_check(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("check", "Validate a configuration file; exit 0 only when it is sound");
  auto file = std::make_shared<std::string>(default_config_path());
  cmd->add_option("-c,--config", *file, "configuration file");
  cmd->callback([file, &exit_code] {
    auto loaded = config::load(*file);
    if (!loaded.config) {
      for (const auto& p : loaded.problems) fmt::print("{}\n", p.describe());
      fmt::print("{}: {} problem{}\n", *file, loaded.problems.size(), loaded.problems.size() == 1 ? "" : "s");
      exit_code = 1;
      return;
    }
    const auto& c = *loaded.config;
    fmt::print("{}: OK\n", *file);
    fmt::print("  hostname {}, spool {}, control socket {}\n", c.hostname, c.spool_dir.string(),
               c.control_socket.string());
    for (const auto& s : c.systems) {
      fmt::print("  system {}: listens on {}:{}, domains {}, {} recipients{}\n", s.name, s.listen.host, s.listen.port,
                 fmt::join(s.domains, ", "), s.recipients.size(), s.tls_cert_file.empty() ? "" : ", STARTTLS");
    }
    exit_code = 0;
  });
}

}  // namespace bridgehead::cli
