// The composition root: builds the spool, the process registry, one ingress listener per
// system and the control socket from a validated Config, wires them together and runs
// until SIGINT/SIGTERM. It holds no mail logic of its own.
#pragma once

#include "config/config.hpp"

namespace bridgehead::daemon {

/// Runs the connector in the foreground; returns the process exit code. Start-up
/// failures (spool unusable, control socket taken) are printed with their remedy.
int run(const config::Config& config);

}  // namespace bridgehead::daemon
