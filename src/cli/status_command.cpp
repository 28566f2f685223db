#include <fmt/format.h>

#include "admin/control_socket.hpp"
#include "admin/process_registry.hpp"
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
    auto path = resolve_control_socket(*file, *socket);
    if (path.empty()) {
      exit_code = 2;
      return;
    }
    auto r = admin::control_request(path, {{"command", "status"}});
    if (!r) {
      if (*json) {
        fmt::print("{}\n", nlohmann::json{{"running", false},
                                          {"error", r.error().message},
                                          {"remedy", r.error().remedy}}
                               .dump(2));
      } else {
        fmt::print(stderr, "bridgehead: {}\n", r.error().describe());
      }
      exit_code = r.error().code == ErrorCode::kUnavailable ? 3 : 2;
      return;
    }
    if (*json) {
      (*r)["running"] = true;
      fmt::print("{}\n", r->dump(2));
    } else {
      fmt::print("{}", admin::format_status_table(*r));
    }
    exit_code = 0;
  });
}

}  // namespace bridgehead::cli
