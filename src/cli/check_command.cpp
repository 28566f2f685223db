#include <fmt/format.h>

#include "cli/commands.hpp"
#include "config/config.hpp"
#include "daemon/privileges.hpp"
#include "identity/keeper.hpp"
#include "identity/password.hpp"

namespace bridgehead::cli {
namespace {

/// What the daemon would make of its connector ID, told the way `run` would find it (but
/// never prompting). Returns false when the daemon would start with the ID unusable.
bool check_identity(const config::Config& c) {
  const auto& file = c.identity.id_file;
  auto overview = identity::inspect(file);
  if (!overview) {
    fmt::print("  connector ID {}: {}\n", file.string(), overview.error().describe());
    return false;
  }
  const std::string name = overview->info ? overview->info->name : std::string("(name hidden: certificates encrypted)");
  fmt::print("  connector ID {}: {}, {}\n", file.string(), name,
             overview->password_protected ? "password-protected" : "no password");
  identity::IdKeeper keeper(file);
  auto env = identity::Environment::process();
  env.prompt = nullptr;  // `check` never waits for a person
  const auto started = identity::open_at_start(keeper, c.identity.id_password_file, env, "");
  const auto& source = started.source;
  if (started.password_needed) {
    switch (source.source) {
      case identity::PasswordSource::kNone:
        fmt::print("  password source: none; the daemon starts with the ID locked, and the deliveries and STARTTLS "
                   "that need it wait until `bridgehead unlock` (mail is queued meanwhile)\n");
        return true;
      case identity::PasswordSource::kTerminal:
        fmt::print("  password source: a prompt on the terminal when `bridgehead run` starts in the foreground; "
                   "without a terminal the ID stays locked until `bridgehead unlock`\n");
        return true;
      default:
        break;
    }
    fmt::print("  password source: {}\n", source.description);
    if (source.discouraged) {
      fmt::print("  warning: {} is readable by every process of the same user (/proc/PID/environ) and inherited by "
                 "children; prefer id_password_file (mode 0600) or a systemd credential\n",
                 identity::kPasswordEnvVar);
    }
  }
  const auto opened = keeper.current();
  if (!opened) {
    const auto why = started.source_error ? started.source_error : keeper.problem();
    fmt::print("  the daemon could not use it: {}\n", why ? why->describe() : std::string("unknown"));
    return false;
  }
  const auto info = opened->info();
  fmt::print("  it opens, and its certificate is valid until {}{}\n", identity::format_time(info.not_after),
             keeper.expires_soon() ? " (soon: re-certify it with `bridgehead id certify`)" : "");
  return true;
}

/// What a daemon started as root would do with its account, told without dropping. Returns
/// false when it would refuse to start.
bool check_account(const config::Config& c, const std::optional<daemon::ServiceAccount>& account) {
  if (!account) {
    if (!c.user.empty()) fmt::print("  not run as root: [connector] user {} only counts when started as root\n", c.user);
    return true;
  }
  fmt::print("  started as root, it drops to user {} (uid {}) and group {} (gid {}) before reading from clients\n",
             account->user, account->uid, account->group, account->gid);
  bool ok = true;
  for (const auto& dir : daemon::writable_dirs(c)) {
    std::error_code ec;
    // Missing ones are created at start, and the state directory is handed over then.
    if (dir.under_state_dir || !std::filesystem::exists(dir.path, ec)) continue;
    if (dir.setting == "spool.dir" || dir.setting == "queue.quarantine_dir") continue;  // handed over at start
    if (auto w = daemon::check_writable(dir, &*account); !w) {
      fmt::print("  {}\n", w.error().describe());
      ok = false;
    }
  }
  if (!c.identity.id_file.empty()) {
    if (auto r = daemon::check_readable(c.identity.id_file, "identity.id_file", &*account); !r) {
      // Not an error: the daemon reads it as root before the drop, and unlock opens that copy.
      fmt::print("  note: {}; the daemon reads it as root at start, but after `bridgehead id certify` the running "
                 "daemon takes the new certificate only if it can read the file ({})\n",
                 r.error().message, r.error().remedy);
    }
  }
  return ok;
}

}  // namespace

void add_check(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("check", "Validate a configuration file; exit 0 only when it is sound");
  auto file = std::make_shared<std::string>(default_config_path());
  cmd->add_option("-c,--config", *file, "configuration file");
  cmd->callback([file, &exit_code] {
    auto loaded = config::load(*file);
    if (!loaded.config) {
      for (const auto& p : loaded.problems) fmt::print("{}\n", p.describe());
      fmt::print("{}: {} problem{}\n", *file, loaded.problems.size(), loaded.problems.size() == 1 ? "" : "s");
      exit_code = kFailure;
      return;
    }
    const auto& c = *loaded.config;
    const auto account = daemon::service_account(c);
    if (!account) {
      fmt::print("{}\n", account.error().describe());
      fmt::print("{}: 1 problem\n", *file);
      exit_code = kFailure;
      return;
    }
    fmt::print("{}: OK\n", *file);
    fmt::print("  hostname {}, spool {}, control socket {}\n", c.hostname, c.spool_dir.string(),
               c.control_socket.string());
    for (const auto& s : c.systems) {
      fmt::print("  system {}: listens on {}:{}, domains {}, {} recipients{}\n", s.name, s.listen.host, s.listen.port,
                 fmt::join(s.domains, ", "), s.recipients.size(),
                 !s.tls_cert_file.empty()           ? ", STARTTLS"
                 : !c.identity.id_file.empty() ? ", STARTTLS with the connector ID"
                                                    : "");
    }
    exit_code = check_account(c, *account) ? kOk : kFailure;
    if (!c.identity.id_file.empty() && !check_identity(c)) exit_code = kFailure;
  });
}

}  // namespace bridgehead::cli
