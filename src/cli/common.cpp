#include <cstdlib>

#include <fmt/format.h>

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

}  // namespace bridgehead::cli
