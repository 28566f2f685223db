// The composition root: builds the spool, the process registry, one ingress listener per
// system and the control socket from a validated Config, wires them together and runs
// until SIGINT/SIGTERM. It holds no mail logic of its own.
#pragma once

#include "config/config.hpp"
#include "core/expected.hpp"

namespace bridgehead::daemon {

/// Runs the connector in the foreground until SIGINT or SIGTERM. Fails when it cannot start
/// (root without a user to become, spool unusable, control socket taken): the error, with
/// its remedy, is logged and returned for the caller to tell whoever started it.
Expected<void> run(const config::Config& config);

}  // namespace bridgehead::daemon
