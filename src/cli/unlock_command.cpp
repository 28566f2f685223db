#include <fmt/format.h>

#include "admin/control_socket.hpp"
#include "cli/commands.hpp"
#include "config/config.hpp"
#include "identity/id_file.hpp"
#include "identity/password.hpp"

namespace bridgehead::cli {
namespace {

struct UnlockArgs {
  std::string config = default_config_path();
  std::string password_file;
};

int run_unlock(const UnlockArgs& a) {
  auto loaded = config::load(a.config);
  if (!loaded.config) {
    fmt::print(stderr, "bridgehead: the config {} has problems:\n", a.config);
    for (const auto& p : loaded.problems) fmt::print(stderr, "{}\n", p.describe());
    return kRequestFailed;
  }
  const auto& cfg = *loaded.config;
  if (cfg.identity.id_file.empty()) {
    fmt::print(stderr, "bridgehead: {} configures no connector ID ([identity] id_file), so there is nothing to unlock\n",
               a.config);
    return kFailure;
  }
  const auto& file = cfg.identity.id_file;
  // Ask for a password only when the file has one; an unprotected ID is just read again
  // (after `bridgehead id certify`, say).
  std::optional<identity::SecretString> password;
  auto protected_ = identity::is_password_protected(file);
  if (!protected_) return report_id_error(protected_.error());
  if (*protected_) {
    auto pw = existing_password(a.password_file, "--password-file", "the connector ID " + file.string());
    if (!pw) return report_id_error(pw.error(), true);
    password = std::move(*pw);
  }
  nlohmann::json request = {{"command", "unlock"}};
  if (password) request["password"] = std::string(password->view());
  // The daemon derives the key (about a second) before it answers.
  auto r = admin::control_request(cfg.control_socket, request, std::chrono::seconds(60));
  if (password) {
    auto& text = request["password"].get_ref<std::string&>();
    explicit_bzero(text.data(), text.size());
  }
  if (!r) {
    if (r.error().not_running) {
      fmt::print(stderr, "bridgehead: {}\n", r.error().describe());
      return kNotRunning;
    }
    if (r.error().code == ErrorCode::kLimit) {
      fmt::print(stderr, "bridgehead: {}\n", r.error().describe());
      return kTooManyWrongPasswords;
    }
    return report_id_error(r.error());
  }
  fmt::print("connector ID {} ({}) is open; its certificate is valid until {}. Held mail is being delivered.\n",
             r->value("name", std::string()), r->value("file", std::string()), r->value("not_after", std::string()));
  return kOk;
}

}  // namespace

void add_unlock(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<UnlockArgs>();
  auto* cmd = app.add_subcommand(
      "unlock", "Give the running daemon the connector ID's password (asked without echo), or make it read the ID again");
  cmd->add_option("-c,--config", args->config, "configuration file of the running daemon");
  cmd->add_option("--password-file", args->password_file, "a file holding the password (mode 0600)");
  cmd->footer(id_exit_codes_help() +
              fmt::format("Also: {} the daemon is not running; {} too many wrong passwords in a row, the daemon "
                          "accepts the next try after a pause it names.\n",
                          kNotRunning, kTooManyWrongPasswords));
  cmd->callback([args, &exit_code] { exit_code = run_unlock(*args); });
}

}  // namespace bridgehead::cli
