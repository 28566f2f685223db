// `bridgehead` subcommands, one file each. Each add_* registers its subcommand on the
// CLI11 app; what it runs returns the process exit code.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cli/exit_codes.hpp"
#include "core/error.hpp"
#include "core/expected.hpp"
#include "identity/password.hpp"

namespace bridgehead::cli {

/// `unix` seconds as local time, "2026-12-04 03:17:59": how commands show a moment.
std::string local_time(std::int64_t unix);

/// Where a command finds the config when --config is not given.
std::string default_config_path();

/// The control socket of the daemon using `config_file`, or `socket` when given.
/// Prints the config's problems and returns empty when it cannot be loaded.
std::filesystem::path resolve_control_socket(const std::string& config_file, const std::string& socket);

/// What every command that talks to the running daemon takes: the config that names its
/// control socket (or the socket itself) and whether to print JSON.
struct DaemonArgs {
  std::string file = default_config_path();
  std::string socket;
  bool json = false;
};
/// Adds -c/--config, --socket and --json to `cmd`, bound to `args` (which must outlive it).
void add_daemon_options(CLI::App* cmd, DaemonArgs& args);

/// Sends `request` ({"command": ..., and its arguments}) to the running daemon. On failure
/// prints why (as JSON with --json), sets exit_code (kNotRunning when no daemon listens,
/// kRequestFailed for anything else, a refusal the daemon answered included) and returns
/// nullopt.
std::optional<nlohmann::json> ask_daemon(const DaemonArgs& args, const nlohmann::json& request, int& exit_code,
                                         std::chrono::milliseconds timeout = std::chrono::seconds(10));
/// The same for a command that only shows the answer: with --json it is printed here (an
/// object with "running": true added) and nullopt returned too, so the caller only formats
/// it for people.
std::optional<nlohmann::json> ask_daemon_to_show(const DaemonArgs& args, const nlohmann::json& request, int& exit_code,
                                                 std::chrono::milliseconds timeout = std::chrono::seconds(10));

/// A subcommand of `parent` that asks the running daemon one thing and shows the answer:
/// -c/--config, --socket and --json, then `request(args)` is sent and `print` formats a
/// successful answer for people (with --json the answer is printed as it is). Returns the
/// subcommand and its arguments, for the options of its own that `request` reads.
template <class Args = DaemonArgs>
std::pair<CLI::App*, std::shared_ptr<Args>> add_daemon_query(
    CLI::App* parent, const std::string& name, const std::string& help, int& exit_code,
    std::chrono::milliseconds timeout, std::type_identity_t<std::function<nlohmann::json(const Args&)>> request,
    std::function<void(const nlohmann::json&)> print) {
  auto args = std::make_shared<Args>();
  auto* cmd = parent->add_subcommand(name, help);
  add_daemon_options(cmd, *args);
  cmd->callback([args, timeout, request = std::move(request), print = std::move(print), &exit_code] {
    if (auto r = ask_daemon_to_show(*args, request(*args), exit_code, timeout)) print(*r);
  });
  return {cmd, args};
}

/// The same for a subcommand whose request is {"command": name}.
inline CLI::App* add_daemon_query(CLI::App* parent, const std::string& name, const std::string& help, int& exit_code,
                                  std::chrono::milliseconds timeout, std::function<void(const nlohmann::json&)> print) {
  return add_daemon_query<>(
             parent, name, help, exit_code, timeout,
             [name](const DaemonArgs&) {
               return nlohmann::json{{"command", name}};
             },
             std::move(print))
      .first;
}

/// The --help epilogue of the commands that open a connector ID (`id ...`, `unlock`): their
/// exit codes.
std::string id_exit_codes_help();
/// Prints `e` on stderr and gives the exit code for it; `password_failed` when getting the
/// password was what failed.
int report_id_error(const Error& e, bool password_failed = false);
/// The password of an existing, protected file: read from `password_file` (given with the
/// option `option`, mode 0600) when set, else asked on the terminal without echo with
/// `Password for WHAT: `. Without either it fails (kUnavailable) naming the option.
Expected<identity::SecretString> existing_password(const std::string& password_file, const std::string& option,
                                                   const std::string& what);

void add_run(CLI::App& app, int& exit_code);
void add_check(CLI::App& app, int& exit_code);
void add_status(CLI::App& app, int& exit_code);
void add_queue(CLI::App& app, int& exit_code);
void add_config(CLI::App& app, int& exit_code);
void add_id(CLI::App& app, int& exit_code);
void add_unlock(CLI::App& app, int& exit_code);
void add_quarantine(CLI::App& app, int& exit_code);
void add_addressbook(CLI::App& app, int& exit_code);
void add_dirsync(CLI::App& app, int& exit_code);

}  // namespace bridgehead::cli
