#include <fmt/format.h>

#include "admin/status_view.hpp"
#include "cli/commands.hpp"

namespace bridgehead::cli {

void add_status(CLI::App& app, int& exit_code) {
  add_daemon_query(&app, "status", "Show the state of every connector process", exit_code, std::chrono::seconds(10),
                   [](const nlohmann::json& r) { fmt::print("{}", admin::format_status_table(r)); });
}

}  // namespace bridgehead::cli
