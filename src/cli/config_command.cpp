#include <fmt/format.h>

#include "cli/commands.hpp"
#include "config/config.hpp"

namespace bridgehead::cli {

void add_config(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("config", "Print the configuration defaults, reference or example");
  auto* group = cmd->add_option_group("what")->require_option(1);
  auto defaults = std::make_shared<bool>(false);
  auto markdown = std::make_shared<bool>(false);
  auto example = std::make_shared<bool>(false);
  group->add_flag("--defaults", *defaults, "every setting at its default, as TOML");
  group->add_flag("--markdown", *markdown, "the configuration reference (docs/configuration.md)");
  group->add_flag("--example", *example, "a complete example with two systems");
  cmd->callback([=, &exit_code] {
    if (*defaults) fmt::print("{}", config::defaults_toml());
    if (*markdown) fmt::print("{}", config::reference_markdown());
    if (*example) fmt::print("{}", config::example_toml());
    exit_code = kOk;
  });
}

}  // namespace bridgehead::cli
