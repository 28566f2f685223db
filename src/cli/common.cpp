#include <cstdlib>

#include <fmt/format.h>

#include "admin/control_socket.hpp"
#include "cli/commands.hpp"
#include "config/config.hpp"

namespace bridgehead::cli {

std::string default_config_path() {
  if (const char* env = std::getenv("BRIDGEHEAD_CONFIG"); env && *env) return env;
  return "/etc/bridgehead/bridgehead.toml";
}

std::filesystem::path resolve_control_socket(const std::string& config_file, const std::string& socket) {
  if (!socket.empty()) return socket;
  auto loaded = config::load(config_file);
  if (!loaded.config) {
    fmt::print(stderr, "bridgehead: cannot find the control socket: the config {} has problems:\n", config_file);
    for (const auto& p : loaded.problems) fmt::print(stderr, "{}\n", p.describe());
    return {};
  }
  return loaded.config->control_socket;
}

std::optional<nlohmann::json> ask_daemon(const std::string& config_file, const std::string& socket,
                                         const std::string& command, bool json, int& exit_code,
                                         std::chrono::milliseconds timeout) {
  auto path = resolve_control_socket(config_file, socket);
  if (path.empty()) {
    exit_code = 2;
    return std::nullopt;
  }
  auto r = admin::control_request(path, {{"command", command}}, timeout);
  if (!r) {
    if (json) {
      fmt::print("{}\n", nlohmann::json{{"running", false}, {"error", r.error().message}, {"remedy", r.error().remedy}}
                             .dump(2));
    } else {
      fmt::print(stderr, "bridgehead: {}\n", r.error().describe());
    }
    exit_code = r.error().code == ErrorCode::kUnavailable ? 3 : 2;
    return std::nullopt;
  }
  exit_code = 0;
  return std::move(*r);
}

}  // namespace bridgehead::cli
