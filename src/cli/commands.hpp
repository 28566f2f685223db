// `bridgehead` subcommands, one file each. Each add_* registers its subcommand on the
// CLI11 app; what it runs returns the process exit code.
#pragma once

#include <filesystem>
#include <string>

#include <CLI/CLI.hpp>

namespace bridgehead::cli {

/// Where a command finds the config when --config is not given.
std::string default_config_path();

/// The control socket of the daemon using `config_file`, or `socket` when given.
/// Prints the config's problems and returns empty when it cannot be loaded.
std::filesystem::path resolve_control_socket(const std::string& config_file, const std::string& socket);

void add_run(CLI::App& app, int& exit_code);
void add_check(CLI::App& app, int& exit_code);
void add_status(CLI::App& app, int& exit_code);
void add_queue(CLI::App& app, int& exit_code);
void add_config(CLI::App& app, int& exit_code);

}  // namespace bridgehead::cli
