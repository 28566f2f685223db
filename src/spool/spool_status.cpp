#include "spool/spool_status.hpp"

#include <string>
#include <string_view>

#include <fmt/format.h>

namespace bridgehead::spool {
namespace {

constexpr std::string_view kDegradedRemedy = "see the daemon log and docs/spool.md (Failure behaviour)";

}  // namespace

void publish_recovery(const RecoveryReport& report, status::Process& p) {
  p.set_state(status::ProcessState::kRunning, "");
  p.set_detail("recovery", report.summary());
  if (!report.notes.empty()) {
    p.report_error(status::ProcessState::kDegraded,
                   Error::permanent(ErrorCode::kCorrupt, report.notes.front(),
                                    "see the daemon log for every recovery note; see docs/spool.md on damaged segments"));
  }
}

void publish_status(const Spool& spool, status::Process& p) {
  const auto st = spool.stats();
  p.set_gauge("queued", st.queued);
  p.set_gauge("segments", st.segments);
  p.set_gauge("receiving", st.receiving);  // uncommitted messages holding spool space
  p.set_counter("commits", st.commits);
  p.set_counter("fsync_batches", st.syncs);            // every batch that synced, finishes included
  p.set_counter("commit_batches", st.commit_batches);  // batches that held commits: commits / this = batching
  p.set_counter("bytes_written", st.bytes_written);
  p.set_counter("write_errors", st.write_errors);
  p.set_gauge("disk_bytes", st.disk_bytes);
  p.set_gauge("live_bytes", st.live_bytes);
  p.set_counter("compacted", st.compacted);
  p.set_counter("damaged", st.damaged);
  p.set_gauge("open_files", st.open_files);
  const auto now = p.snapshot();
  if (!st.degraded.empty()) {
    // Reported once per cause: this runs every second.
    if (now.state != status::ProcessState::kDegraded || !now.last_error || now.last_error->message != st.degraded) {
      p.report_error(status::ProcessState::kDegraded,
                     Error::transient_error(ErrorCode::kIo, st.degraded, std::string(kDegradedRemedy)));
    }
  } else if (now.state == status::ProcessState::kDegraded && now.last_error &&
             now.last_error->remedy == kDegradedRemedy) {
    // The spool cleared its cause (the retried unlink or compaction worked).
    p.recover("the spool's reclaim steps work again");
  }
  p.set_activity(fmt::format("{} message{} queued in {} segment{}, {:.1f} commits per fsync", st.queued,
                             st.queued == 1 ? "" : "s", st.segments, st.segments == 1 ? "" : "s",
                             st.batching_factor()));
}

}  // namespace bridgehead::spool
