#include <cstdlib>
#include <ctime>

#include <fmt/format.h>

#include "admin/control_socket.hpp"
#include "cli/commands.hpp"
#include "config/config.hpp"

namespace bridgehead::cli {

std::string id_exit_codes_help() {
  return fmt::format(
      "Exit codes: {} OK; {} bad NAME or option value, output file exists, or another failure; {} wrong password; "
      "{} certificate expired, not yet valid, or chain broken; {} ID file missing, unreadable, not PKCS#12, or "
      "damaged; {} a password was needed and none could be had (no password file option and no terminal, or the "
      "password file is unusable, e.g. readable by others). Usage errors exit with {} or more.\n"
      "A password is never given on the command line: use a file (mode 0600) or the terminal prompt.\n",
      kOk, kFailure, kWrongPassword, kCertificate, kIdUnreadable, kNoPassword, kFirstUsageError);
}

int report_id_error(const Error& e, bool password_failed) {
  fmt::print(stderr, "bridgehead: {}\n", e.describe());
  if (password_failed) return kNoPassword;
  switch (e.code) {
    case ErrorCode::kWrongPassword:
      return kWrongPassword;
    case ErrorCode::kCertificate:
      return kCertificate;
    case ErrorCode::kParse:
    case ErrorCode::kCorrupt:
    case ErrorCode::kNotFound:
    case ErrorCode::kIo:
    case ErrorCode::kPermission:
    case ErrorCode::kLimit:
      return kIdUnreadable;
    case ErrorCode::kUnavailable:
      return kNoPassword;
    default:
      return kFailure;
  }
}

Expected<identity::SecretString> existing_password(const std::string& password_file, const std::string& option,
                                                   const std::string& what) {
  if (!password_file.empty()) return identity::read_password_file(password_file, option);
  if (identity::terminal_available()) return identity::prompt_on_terminal(fmt::format("Password for {}: ", what));
  return fail(Error::permanent(ErrorCode::kUnavailable,
                               fmt::format("{} is password-protected and there is no terminal to ask for it", what),
                               fmt::format("give {} FILE, a file holding the password with mode 0600", option)));
}

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

std::string local_time(std::int64_t unix) {
  const std::time_t t = unix;
  std::tm tm{};
  localtime_r(&t, &tm);
  return fmt::format("{:04}-{:02}-{:02} {:02}:{:02}:{:02}", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                     tm.tm_min, tm.tm_sec);
}

void add_daemon_options(CLI::App* cmd, DaemonArgs& args) {
  cmd->add_option("-c,--config", args.file, "configuration file of the running daemon");
  cmd->add_option("--socket", args.socket, "control socket (instead of reading it from the config)");
  cmd->add_flag("--json", args.json, "print JSON");
}

std::optional<nlohmann::json> ask_daemon_to_show(const DaemonArgs& args, const nlohmann::json& request, int& exit_code,
                                                 std::chrono::milliseconds timeout) {
  auto r = ask_daemon(args, request, exit_code, timeout);
  if (r && args.json) {
    // The same key a failure carries, so a script tells the two apart by one field.
    if (r->is_object()) (*r)["running"] = true;
    fmt::print("{}\n", r->dump(2));
    return std::nullopt;
  }
  return r;
}

std::optional<nlohmann::json> ask_daemon(const DaemonArgs& args, const nlohmann::json& request, int& exit_code,
                                         std::chrono::milliseconds timeout) {
  const bool json = args.json;
  auto path = resolve_control_socket(args.file, args.socket);
  if (path.empty()) {
    exit_code = kRequestFailed;
    return std::nullopt;
  }
  auto r = admin::control_request(path, request, timeout);
  if (!r) {
    // A daemon that answered with a refusal is running, whatever the refusal's code.
    const bool running = !r.error().not_running;
    if (json) {
      fmt::print(
          "{}\n",
          nlohmann::json{{"running", running}, {"error", r.error().message}, {"remedy", r.error().remedy}}.dump(2));
    } else {
      fmt::print(stderr, "bridgehead: {}\n", r.error().describe());
    }
    exit_code = running ? kRequestFailed : kNotRunning;
    return std::nullopt;
  }
  exit_code = kOk;
  return std::move(*r);
}

}  // namespace bridgehead::cli
