// directory/sync/sync_service: the daemon's `dirsync` process. One thread owns the engine
// (libldap and SQLite block): it runs on the schedule (an incremental run every interval, a
// full one at least every full_interval), answers the requests `bridgehead dirsync` sends
// through the control socket one at a time, and keeps the process's state, activity and
// counters current, so a failing directory is visible with its cause and remedy while the
// last good address book stays in use.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/expected.hpp"
#include "directory/sync/engine.hpp"
#include "status/process.hpp"

namespace bridgehead::directory::sync {

class SyncService {
 public:
  using Reply = std::function<void(Expected<nlohmann::json>)>;

  SyncService(std::unique_ptr<Engine> engine, std::shared_ptr<status::Process> process);
  ~SyncService();  ///< stops
  SyncService(const SyncService&) = delete;
  SyncService& operator=(const SyncService&) = delete;

  /// Starts the thread; the first run (incremental, or full without a cookie) begins at once.
  void start();
  /// Asks the thread to stop (a run ends after its current batch); returns at once.
  void request_stop();
  /// request_stop(), then waits for the thread; pending requests are answered "shutting down".
  void stop();
  /// Queues a request (report.hpp); `reply` runs on the service thread once it is answered.
  void submit(nlohmann::json request, Reply reply);
  /// Asks for an incremental run as soon as the thread is free (a change feed saw a change).
  void trigger();

 private:
  void loop();
  /// RFC 4533 refresh-and-persist on `directory` (persist = true): any change the server
  /// reports triggers an incremental run, so a new user is routable within seconds.
  void watch(const DirectorySettings& directory, std::stop_token stop);
  void remember_cookies();
  void run_scheduled(bool full);
  void show(const RunRecord& r);

  std::unique_ptr<Engine> engine_;
  std::shared_ptr<status::Process> process_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<nlohmann::json, Reply>> requests_;
  bool stopping_ = false;
  bool triggered_ = false;
  std::map<std::string, std::string> cookies_;  // per directory, as the last run stored them
  std::thread thread_;
  std::vector<std::jthread> watchers_;
};

}  // namespace bridgehead::directory::sync
