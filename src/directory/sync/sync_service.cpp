#include "directory/sync/sync_service.hpp"

#include <fmt/format.h>

#include "directory/ldap/content_sync.hpp"
#include "directory/sync/report.hpp"
#include "directory/sync/source.hpp"

namespace bridgehead::directory::sync {

SyncService::SyncService(std::unique_ptr<Engine> engine, std::shared_ptr<status::Process> process)
    : engine_(std::move(engine)), process_(std::move(process)) {
  engine_->on_progress([p = process_](const std::string& activity) { p->set_activity(activity); });
}

SyncService::~SyncService() { stop(); }

void SyncService::start() {
  process_->set_state(status::ProcessState::kStarting, "first run");
  thread_ = std::thread([this] { loop(); });
  for (const auto& d : engine_->settings().directories) {
    if (d.uri.empty() || !d.persist || d.feed == Feed::kFull) continue;
    watchers_.emplace_back([this, &d](std::stop_token stop) { watch(d, stop); });
  }
}

void SyncService::remember_cookies() {
  for (const auto& d : engine_->settings().directories) {
    auto c = engine_->state().cookie(d.system);
    std::lock_guard lock(mu_);
    if (c && *c) cookies_[d.system] = **c;
  }
}

void SyncService::watch(const DirectorySettings& directory, std::stop_token stop) {
  const auto pause = [&](std::chrono::seconds s) {
    std::mutex m;
    std::condition_variable_any cv;
    std::unique_lock lock(m);
    cv.wait_for(lock, stop, s, [] { return false; });
  };
  while (!stop.stop_requested()) {
    std::string cookie;
    {
      std::lock_guard lock(mu_);
      if (auto it = cookies_.find(directory.system); it != cookies_.end()) cookie = it->second;
    }
    if (cookie.empty()) {  // no run has stored a position yet: nothing to persist from
      pause(std::chrono::seconds(1));
      continue;
    }
    auto options = ldap_options(directory, engine_->id_source());
    auto conn = options ? ldap::Connection::open(std::move(*options))
                        : Expected<ldap::Connection>(tl::unexpected(options.error()));
    if (!conn) {
      pause(std::chrono::seconds(5));
      continue;
    }
    ldap::SyncRequest req;
    req.base = directory.base;
    // What the runs read: Bridgehead's own writes into this directory start no run.
    req.filter = read_filter(directory, stamp_prefix_of(engine_->settings().connector_name));
    req.attributes = {"1.1"};
    req.cookie = cookie;
    auto outcome = ldap::refresh_and_persist(
        *conn, req,
        [&](ldap::SyncEvent e) {
          if (e.kind == ldap::SyncEventKind::kChanged || e.kind == ldap::SyncEventKind::kDeleted) trigger();
          return true;
        },
        stop);
    // Not offered (no syncprov), or refused: scheduled runs only. Otherwise reconnect.
    if (!outcome) return;
    if (!stop.stop_requested()) pause(std::chrono::seconds(2));
  }
}

void SyncService::request_stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  engine_->request_stop();
  for (auto& w : watchers_) w.request_stop();
  cv_.notify_all();
}

void SyncService::stop() {
  request_stop();
  if (thread_.joinable()) thread_.join();
  watchers_.clear();  // joins
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
  remember_cookies();
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
    process_->report_error(
        status::ProcessState::kError,
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
