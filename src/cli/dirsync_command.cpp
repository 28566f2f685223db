// `bridgehead dirsync run [--full] | preview [--full] | apply PREVIEW | approve RUN | status`:
// directory synchronization on demand. With a daemon running, it does the work (it owns the
// state); without one, the command runs the engine itself, as the service user when started
// as root, so the files it writes stay the daemon's.
#include <ctime>

#include <fmt/format.h>

#include "admin/control_socket.hpp"
#include "cli/commands.hpp"
#include "config/config.hpp"
#include "daemon/privileges.hpp"
#include "directory/sync/report.hpp"

namespace bridgehead::cli {
namespace {

constexpr auto kRunTimeout = std::chrono::hours(4);
constexpr std::size_t kProblemsShown = 20;

struct Args : DaemonArgs {
  bool full = false;
  std::int64_t number = 0;
};

void print_run(const nlohmann::json& r) {
  fmt::print("{}\n", r.value("summary", ""));
  if (const auto e = r.value("error", ""); !e.empty()) fmt::print("  {}\n", e);
  const auto& problems = r.value("problems", nlohmann::json::array());
  std::size_t shown = 0;
  for (const auto& p : problems) {
    if (shown++ == kProblemsShown) break;
    fmt::print("  {} {}: {}\n", p.value("direction", ""), p.value("kind", ""), p.value("message", ""));
  }
  const auto total = r.value("problem_count", std::uint64_t{0});
  if (total > kProblemsShown) {
    fmt::print("  ... {} problems in all (`bridgehead dirsync status --json` lists {})\n", total,
               std::min<std::uint64_t>(total, directory::sync::kMaxStoredProblems));
  }
  if (r.contains("operations")) {
    for (const auto& op : r["operations"]) fmt::print("  {}\n", op.get<std::string>());
    if (r.value("kind", "") == "preview") {
      fmt::print("nothing was written; `bridgehead dirsync apply {}` writes exactly these operations\n",
                 r.value("preview", std::int64_t{0}));
    }
  }
  if (r.value("status", "") == "held") {
    fmt::print("its deletions are held: check them, then `bridgehead dirsync approve {}`\n", r.value("id", 0));
  }
}

void print_status(const nlohmann::json& s) {
  if (s.contains("sources")) {
    for (const auto& [name, n] : s["sources"].items()) fmt::print("{}: {} objects read\n", name, n.get<std::size_t>());
  }
  const auto& runs = s.value("runs", nlohmann::json::array());
  if (runs.empty()) fmt::print("no runs yet\n");
  for (const auto& r : runs) {
    fmt::print("{}  ", local_time(r.value("started_ms", std::int64_t{0}) / 1000));
    print_run(r);
  }
}

int exit_for(const nlohmann::json& answer) {
  const auto status = answer.value("status", "ok");
  return status == "failed" || status == "held" ? kRequestFailed : kOk;
}

// Without a daemon: this process opens the state itself.
Expected<nlohmann::json> run_locally(const Args& a, const nlohmann::json& request) {
  auto loaded = config::load(a.file);
  if (!loaded.config) {
    std::string all;
    for (const auto& p : loaded.problems) all += "\n" + p.describe();
    return tl::unexpected(Error::permanent(ErrorCode::kConfig, "the configuration has problems:" + all));
  }
  const auto& cfg = *loaded.config;
  if (cfg.dirsync.directories.empty()) {
    return tl::unexpected(Error::permanent(ErrorCode::kConfig, fmt::format("{} configures no directory", a.file),
                                           "add a [system.directory] table to each system (docs/configuration.md)"));
  }
  auto account = daemon::service_account(cfg);
  if (!account) return tl::unexpected(account.error());
  if (*account) {
    if (auto p = daemon::prepare_dirs(cfg, **account); !p) return tl::unexpected(p.error());
    if (auto d = daemon::drop_privileges(**account); !d) return tl::unexpected(d.error());
  }
  auto engine = directory::sync::Engine::open(cfg.dirsync, cfg.state_dir, {});
  if (!engine) return tl::unexpected(engine.error());
  return directory::sync::handle_request(**engine, request);
}

void add_action(CLI::App* group, const std::string& name, const std::string& help, int& exit_code, bool takes_full,
                const char* number_key, const std::string& number_help) {
  auto args = std::make_shared<Args>();
  auto* cmd = group->add_subcommand(name, help);
  add_daemon_options(cmd, *args);
  if (takes_full) cmd->add_flag("--full", args->full, "read every object, not only the changes since the last run");
  if (number_key != nullptr)
    cmd->add_option(std::string(number_key) == "run" ? "RUN" : "PREVIEW", args->number, number_help)->required();
  cmd->callback([args, name, number_key, &exit_code] {
    nlohmann::json request = {{"command", "dirsync"}, {"action", name}};
    if (args->full) request["full"] = true;
    if (number_key != nullptr) request[number_key] = args->number;
    Expected<nlohmann::json> answer;
    auto path = resolve_control_socket(args->file, args->socket);
    if (path.empty()) {
      exit_code = kRequestFailed;
      return;
    }
    auto r = admin::control_request(path, request, kRunTimeout);
    if (r) {
      answer = std::move(*r);
    } else if (r.error().not_running) {
      answer = run_locally(*args, request);
    } else {
      answer = tl::unexpected(static_cast<const Error&>(r.error()));
    }
    if (!answer) {
      if (args->json) {
        fmt::print("{}\n",
                   nlohmann::json{{"error", answer.error().message}, {"remedy", answer.error().remedy}}.dump(2));
      } else {
        fmt::print(stderr, "bridgehead: {}\n", answer.error().describe());
      }
      exit_code = kRequestFailed;
      return;
    }
    if (args->json) {
      fmt::print("{}\n", answer->dump(2));
    } else if (name == "status") {
      print_status(*answer);
    } else {
      print_run(*answer);
    }
    exit_code = name == "status" ? kOk : exit_for(*answer);
  });
  cmd->footer(
      fmt::format("Exit codes: {} done (problems with single entries are listed, the rest went on); {} the "
                  "run failed or held its deletions, or the request could not be made.",
                  kOk, kRequestFailed));
}

}  // namespace

void add_dirsync(CLI::App& app, int& exit_code) {
  auto* group = app.add_subcommand("dirsync", "Directory synchronization: run it, preview it, release held deletions");
  group->require_subcommand(1);
  add_action(group, "run", "Synchronize now: the changes since the last run, or everything with --full", exit_code,
             true, nullptr, "");
  add_action(group, "preview", "Work out what a run would write and store it, writing nothing", exit_code, true,
             nullptr, "");
  add_action(group, "apply", "Write exactly the operations of a preview", exit_code, false, "preview",
             "the preview's number, as `bridgehead dirsync preview` printed it");
  add_action(group, "approve", "Let the deletions a run held back go, confirming each in the source first", exit_code,
             false, "run", "the run that held them (`bridgehead dirsync status`)");
  add_action(group, "status", "The last runs, with their counts and problems", exit_code, false, nullptr, "");
}

}  // namespace bridgehead::cli
