// What the spool shows of itself in `bridgehead status`: its gauges and counters, how well
// group commit batches, what recovery found at open, and a degraded state while a reclaim
// step (an unlink, a compaction) keeps failing. The spool's own view; the daemon only
// calls it, at start and once a second.
#pragma once

#include "spool/spool.hpp"
#include "status/process.hpp"

namespace bridgehead::spool {

/// At open: what recovery rebuilt, and kDegraded with the first note when it set anything aside.
void publish_recovery(const RecoveryReport& report, status::Process& process);
/// Every tick: gauges, counters and the activity line; a degraded cause is reported once and
/// cleared when the spool no longer names it.
void publish_status(const Spool& spool, status::Process& process);

}  // namespace bridgehead::spool
