#include <fmt/format.h>

#include "cli/commands.hpp"

// The help texts promise usage errors from kFirstUsageError up, and CLI11 chooses those codes.
static_assert(static_cast<int>(CLI::ExitCodes::IncorrectConstruction) == bridgehead::cli::kFirstUsageError);

int main(int argc, char** argv) {
  CLI::App app{"Bridgehead: mail and directory coexistence connector"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "bridgehead " BRIDGEHEAD_VERSION);
  int exit_code = bridgehead::cli::kOk;
  bridgehead::cli::add_run(app, exit_code);
  bridgehead::cli::add_check(app, exit_code);
  bridgehead::cli::add_status(app, exit_code);
  bridgehead::cli::add_queue(app, exit_code);
  bridgehead::cli::add_config(app, exit_code);
  bridgehead::cli::add_id(app, exit_code);
  bridgehead::cli::add_unlock(app, exit_code);
  bridgehead::cli::add_quarantine(app, exit_code);
  bridgehead::cli::add_addressbook(app, exit_code);
  bridgehead::cli::add_dirsync(app, exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return exit_code;
}
