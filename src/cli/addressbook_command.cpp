#include <fmt/format.h>

#include "cli/commands.hpp"
#include "config/config.hpp"
#include "core/read_file.hpp"
#include "directory/addressbook/address_book_file.hpp"
#include "directory/addressbook/recipient_list.hpp"

namespace bridgehead::cli {
namespace {

constexpr std::size_t kMaxListSize = std::size_t{1} << 30;

struct ImportArgs {
  std::string config = default_config_path();
  std::string list;
  std::string output;
};

int import_list(const ImportArgs& a) {
  std::filesystem::path output = a.output;
  if (output.empty()) {
    auto loaded = config::load(a.config);
    if (!loaded.config) {
      fmt::print(stderr, "bridgehead: the configuration has problems:\n");
      for (const auto& p : loaded.problems) fmt::print(stderr, "{}\n", p.describe());
      return kFailure;
    }
    output = loaded.config->state_dir / directory::kAddressBookFileName;
  }
  auto text = read_whole_file(a.list, "recipient list " + a.list,
                              Error::permanent(ErrorCode::kNotFound, "no recipient list " + a.list), kMaxListSize);
  if (!text) {
    fmt::print(stderr, "bridgehead: {}\n", text.error().describe());
    return kFailure;
  }
  auto recipients = directory::parse_recipient_list(*text, a.list);
  if (!recipients) {
    fmt::print(stderr, "bridgehead: {}\n", recipients.error().describe());
    return kFailure;
  }
  directory::AddressBookBuilder builder;
  for (auto& r : *recipients) {
    if (auto added = builder.add(std::move(r)); !added) {  // parse_recipient_list checked them
      fmt::print(stderr, "bridgehead: {}\n", added.error().describe());
      return kFailure;
    }
  }
  auto built = std::move(builder).build();
  if (!built) {
    fmt::print(stderr, "bridgehead: {}\n", built.error().describe());
    return kFailure;
  }
  for (const auto& c : built->collisions) fmt::print(stderr, "bridgehead: warning: {}\n", c.describe());
  if (auto saved = directory::save_address_book(*built->book, output); !saved) {
    fmt::print(stderr, "bridgehead: {}\n", saved.error().describe());
    return kFailure;
  }
  fmt::print("{} recipients with {} forms written to {}; the daemon reads it when it next starts\n",
             built->book->size(), built->book->form_count(), output.string());
  return kOk;
}

}  // namespace

void add_addressbook(CLI::App& app, int& exit_code) {
  auto* group = app.add_subcommand("addressbook", "The address book the RCPT check uses");
  group->require_subcommand(1);
  auto args = std::make_shared<ImportArgs>();
  auto* cmd = group->add_subcommand(
      "import", "Write the address book from a recipient list (JSON Lines), replacing the saved one");
  cmd->add_option("LIST", args->list,
                  "the list: one JSON object a line, e.g. {\"id\": \"u1\", \"system\": "
                  "\"notes\", \"forms\": {\"smtp\": [\"carol@acme.example\"]}}")
      ->required();
  cmd->add_option("-c,--config", args->config, "configuration file (the book goes to its state_dir)");
  cmd->add_option("-o,--output", args->output, "write this file instead of <state_dir>/addressbook.bin");
  cmd->footer(
      "Keys of a line: id, system, forms (required), kind (person, group, contact, mail-in-database), display_name,\n"
      "routing_address (default: the first SMTP form), hidden. Form kinds: smtp (the first is the primary),\n"
      "notes-canonical, notes-abbreviated, notes-address, notes-alias, short-name, x500, nickname. Blank lines and\n"
      "lines starting with # are skipped. A running daemon keeps the book it has until it restarts.\n"
      "Exit codes: 0 written, 1 failed (the message names the line and column of a bad list line).");
  cmd->callback([args, &exit_code] { exit_code = import_list(*args); });
}

}  // namespace bridgehead::cli
