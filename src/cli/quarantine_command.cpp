// `bridgehead quarantine list | show ID | release ID | delete ID`: the messages the running
// daemon set aside because it could not process them, and what to do with each.
#include <ctime>
#include <functional>

#include <fmt/format.h>

#include "cli/commands.hpp"

namespace bridgehead::cli {

namespace {

std::string quarantine_exit_codes_help() {
  return fmt::format(
      "Exit codes: {} OK; {} the daemon refused or failed the request (the message names the id and what to do), "
      "or the config cannot be read; {} the daemon is not running. Usage errors exit with {} or more.\n",
      kOk, kRequestFailed, kNotRunning, kFirstUsageError);
}

void print_recipients(const nlohmann::json& m) {
  for (const auto& r : m.value("recipients", nlohmann::json::array())) {
    fmt::print("    {:<32} {}\n", r.value("address", ""), r.value("status", ""));
  }
}

void print_record(const nlohmann::json& m) {
  const std::string from = m.value("from", "");
  fmt::print("message {}\nquarantined: {}\nreason: {}\nsender: {}\nsize: {}\nrecipients:\n", m.value("id", ""),
             local_time(m.value("quarantined_at", std::int64_t{0})), m.value("reason", ""),
             from.empty() ? "<>" : "<" + from + ">", m.value("size", std::uint64_t{0}));
  print_recipients(m);
}

struct Args : DaemonArgs {
  std::string id;
};

// One subcommand: asks the daemon for {"command": "quarantine", "action": NAME, "id": ID}
// and hands a successful answer to `print` (with --json the answer is printed as it is).
void add_action(CLI::App* parent, const std::string& name, const std::string& help, bool takes_id, int& exit_code,
                std::function<void(const nlohmann::json&)> print) {
  auto [cmd, args] = add_daemon_query<Args>(
      parent, name, help, exit_code, std::chrono::seconds(60),
      [name, takes_id](const Args& a) {
        nlohmann::json request = {{"command", "quarantine"}, {"action", name}};
        if (takes_id) request["id"] = a.id;
        return request;
      },
      std::move(print));
  if (takes_id) cmd->add_option("ID", args->id, "the message id, as `bridgehead quarantine list` shows it")->required();
  cmd->footer(quarantine_exit_codes_help());
}

}  // namespace

void add_quarantine(CLI::App& app, int& exit_code) {
  auto* cmd =
      app.add_subcommand("quarantine", "Messages the running daemon set aside because it could not process them");
  cmd->require_subcommand(1);
  cmd->footer(quarantine_exit_codes_help());

  add_action(cmd, "list", "List the quarantined messages and why each was set aside", false, exit_code,
             [](const nlohmann::json& r) {
               const auto msgs = r.value("messages", nlohmann::json::array());
               fmt::print("{:<17} {:<19} {:>9} {}\n", "ID", "QUARANTINED", "SIZE", "SENDER / REASON");
               for (const auto& m : msgs) {
                 const std::string from = m.value("from", "");
                 fmt::print("{:<17} {:<19} {:>9} {}\n", m.value("id", ""),
                            local_time(m.value("quarantined_at", std::int64_t{0})), m.value("size", std::uint64_t{0}),
                            from.empty() ? "<>" : from);
                 fmt::print("    reason: {}\n", m.value("reason", ""));
                 print_recipients(m);
               }
               fmt::print("{} message{} in quarantine ({})\n", msgs.size(), msgs.size() == 1 ? "" : "s",
                          r.value("dir", ""));
             });
  add_action(cmd, "show", "Show one quarantined message: why, its envelope and its header", true, exit_code,
             [](const nlohmann::json& r) {
               print_record(r);
               fmt::print("file: {}\n\n{}", r.value("eml", ""), r.value("header", ""));
             });
  add_action(cmd, "release",
             "Put a quarantined message back in the queue (for the recipients that do not have it yet); fix the "
             "cause first, or it is quarantined again",
             true, exit_code, [](const nlohmann::json& r) {
               std::string to;
               for (const auto& a : r.value("recipients", nlohmann::json::array()))
                 to += (to.empty() ? "<" : ", <") + a.get<std::string>() + ">";
               fmt::print("message {} released: queued again as {} for {}\n", r.value("released", ""),
                          r.value("queued_as", ""), to);
             });
  add_action(cmd, "delete",
             "Delete a quarantined message; its sender gets a failure notice for the recipients that did not get it, "
             "unless NOTIFY said otherwise",
             true, exit_code, [](const nlohmann::json& r) {
               const auto notice = r.value("notice", nlohmann::json());
               fmt::print("message {} deleted; {}\n", r.value("deleted", ""),
                          notice.is_null() ? std::string("no failure notice (the sender did not ask for one)")
                                           : "failure notice queued as " + notice.get<std::string>());
             });
}

}  // namespace bridgehead::cli
