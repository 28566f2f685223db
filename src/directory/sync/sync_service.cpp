#include "directory/sync/sync_service.hpp"

#include <fmt/format.h>

#include "directory/sync/report.hpp"

namespace bridgehead::directory::sync {

SyncService::SyncService(std::unique_ptr<Engine> engine, std::shared_ptr<status::Process> process)
    : engine_(std::move(engine)), process_(std::move(process)) {
  engine_->on_progress([p = process_](const std::string& activity) { p->set_activity(activity); });
}

SyncService::~SyncService() { stop(); }

void SyncService::start() {
  process_->set_state(status::ProcessState::kStarting, "first run");
  thread_ = std::thread([this] { loop(); });
}

void SyncService::request_stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  engine_->request_stop();
  cv_.notify_all();
}

void SyncService::stop() {
  request_stop();
  if (thread_.joinable()) thread_.join();
  // Requests never answered: say so rather than leave the CLI waiting for its timeout.
  for (auto& [request, reply] : requests_) {
    reply(tl::unexpected(Error::transient_error(ErrorCode::kUnavailable, "the connector is shutting down",
                                                "run the command again once it has restarted")));
  }
  requests_.clear();
  process_->set_state(status::ProcessState::kStopped, "stopped");
}

void SyncService::submit(nlohmann::json request, Reply reply) {
  {
    std::lock_guard lock(mu_);
    if (!stopping_) {
      requests_.emplace_back(std::move(request), std::move(reply));
      cv_.notify_all();
      return;
    }
  }
  reply(tl::unexpected(Error::transient_error(ErrorCode::kUnavailable, "the connector is shutting down")));
}

void SyncService::trigger() {
  std::lock_guard lock(mu_);
  triggered_ = true;
  cv_.notify_all();
}

void SyncService::show(const RunRecord& r) {
  process_->add("runs");
  process_->add("adds", r.counts.adds);
  process_->add("updates", r.counts.updates);
  process_->add("renames", r.counts.renames);
  process_->add("deletes", r.counts.deletes);
  process_->add("conflicts", r.counts.conflicts);
  process_->add("errors", r.counts.errors);
  process_->set_gauge("last_run", static_cast<std::uint64_t>(r.id));
  process_->set_gauge("last_run_at", static_cast<std::uint64_t>(r.finished_ms / 1000));
  process_->set_detail("last_run", summary(r));
  if (r.status == RunStatus::kFailed) {
    process_->report_error(status::ProcessState::kError,
                           Error::transient_error(ErrorCode::kUnavailable, fmt::format("run {} failed: {}", r.id, r.error),
                                                  "the address book stays as it was; the next run retries "
                                                  "(`bridgehead dirsync run` to retry now)"));
  } else if (r.status == RunStatus::kHeld) {
    process_->report_error(
        status::ProcessState::kDegraded,
        Error::permanent(ErrorCode::kLimit, fmt::format("run {} held its deletions: {}", r.id, r.error),
                         fmt::format("check them, then `bridgehead dirsync approve {}`", r.id)));
  } else if (process_->state() != status::ProcessState::kRunning) {
    process_->recover(summary(r));
  } else {
    process_->set_activity(summary(r));
  }
}

void SyncService::run_scheduled(bool full) {
  RunOptions o;
  o.kind = full ? RunKind::kFull : RunKind::kIncremental;
  auto r = engine_->run(o);
  if (!r) {
    process_->report_error(status::ProcessState::kError, r.error());
    return;
  }
  show(*r);
}

void SyncService::loop() {
  using clock = std::chrono::steady_clock;
  const auto interval = engine_->settings().interval;
  const auto full_interval = engine_->settings().full_interval;
  auto next = clock::now();
  auto next_full = clock::now() + full_interval;
  std::unique_lock lock(mu_);
  while (!stopping_) {
    if (requests_.empty() && !triggered_ && clock::now() < next) {
      cv_.wait_until(lock, next, [&] { return stopping_ || !requests_.empty() || triggered_; });
      continue;
    }
    if (!requests_.empty()) {
      auto [request, reply] = std::move(requests_.front());
      requests_.pop_front();
      lock.unlock();
      auto answer = handle_request(*engine_, request);
      if (answer && answer->contains("id") && answer->contains("counts")) {
        if (auto run = engine_->state().run((*answer)["id"].get<std::int64_t>()); run && *run) show(**run);
      }
      reply(std::move(answer));
      lock.lock();
      continue;
    }
    triggered_ = false;
    const bool full = clock::now() >= next_full;
    lock.unlock();
    run_scheduled(full);
    lock.lock();
    next = clock::now() + interval;
    if (full) next_full = clock::now() + full_interval;
  }
}

}  // namespace bridgehead::directory::sync
