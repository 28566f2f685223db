// The queue manager: decides when each recipient of each spooled message is tried, hands
// it to its destination's transport, records every outcome in the spool journal, retries
// with back-off, sends delivery status notifications (through the queue, like any mail),
// and sets aside messages that the connector itself cannot process (quarantine).
//
// Per destination system: its own workers up to the configured concurrency, so a slow or
// dead destination only ever holds its own workers and the other direction keeps moving.
// Runs on the daemon's I/O thread; every public member must be called there.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "events/message_event.hpp"
#include "status/process.hpp"
#include "core/envelope.hpp"
#include "net/asio.hpp"
#include "queue/retry_schedule.hpp"
#include "queue/transport.hpp"
#include "spool/spool.hpp"

namespace bridgehead::queue {

struct DestinationSpec {
  std::string name;                    ///< the system's name ("notes")
  std::vector<std::string> domains;    ///< lower case
  std::unique_ptr<Transport> transport;
  unsigned concurrency = 10;
  std::shared_ptr<status::Process> process;  ///< "deliver:<name>"
};

struct QueueOptions {
  std::string hostname;            ///< Reporting-MTA of our DSNs
  RetrySchedule schedule;
  std::filesystem::path quarantine_dir;
  /// "quarantine": its counter "messages" is how many messages are set aside (optional).
  std::shared_ptr<status::Process> quarantine_process;
  /// Runs the blocking work (content reads from the disk, quarantine files, composing a
  /// notice from the original) off the I/O thread; empty: posted to the I/O thread instead
  /// (unit tests), and a content read is made there.
  net::asio::any_io_executor blocking;
  /// Fault injection for tests only (BRIDGEHEAD_FAULT_POISON): a message whose content holds
  /// this text makes its processing throw, as a conversion bug would. Empty = off.
  std::string poison_marker;
  /// Test seam, fault injection for a failing or partial content read: reads a message's
  /// content in place of the spool. Empty = the spool.
  std::function<Expected<void>(spool::MessageId, const std::function<void(std::string_view)>&)> read_content;
  /// Fault injection for tests only: this many delivery status notifications fail to queue
  /// (as on a full disk) before notices queue again.
  unsigned notice_failures = 0;
  /// Where the queue publishes what happens to each message (queued, each recipient's
  /// outcome, notices, quarantine); its own counters and log lines subscribe to it. Must
  /// outlive the queue manager; subscriptions are made before start(). Null: a bus of its
  /// own, with only those subscribers.
  events::EventBus* events = nullptr;
};

class QueueManager {
 public:
  QueueManager(net::asio::io_context& io, spool::Spool& spool, QueueOptions options,
               std::vector<DestinationSpec> destinations);
  ~QueueManager();
  QueueManager(const QueueManager&) = delete;
  QueueManager& operator=(const QueueManager&) = delete;

  /// Takes over every message the spool holds (after recovery) and starts delivering.
  void start();
  /// A message the ingress just made durable.
  void enqueue(spool::MessageId id, const Envelope& envelope);
  /// No new attempts; attempts under way run to their end (the daemon waits for
  /// in_flight() to reach 0, bounded).
  void stop();
  std::size_t in_flight() const;
  /// Stops attempts to `destination` (a system name) while something it needs is missing,
  /// such as a locked connector ID: its process shows kError with `why` and `activity`, and
  /// each recipient that comes due is deferred with `why` as its reason and status 4.3.5,
  /// without connecting. The retry schedule and the queue lifetime run on, so nothing
  /// waits forever unseen; nothing fails early because of the hold. Unknown names are ignored.
  void hold(const std::string& destination, const Error& why, std::string activity);
  /// Lifts hold(): the process runs again and every deferred recipient of the destination
  /// is tried at once.
  void resume(const std::string& destination);
  /// Whether `destination` is held.
  bool held(const std::string& destination) const;
  /// Refreshes the processes' activity, counters and details (called once a second).
  void publish();
  /// A control-socket request about the quarantine: {"action": "list"} | {"action": "show"|
  /// "release"|"delete", "id": ID}. Release re-queues the message (a new id) for the
  /// recipients that lack it and removes its files only once that copy is committed; delete
  /// queues the failure notice NOTIFY asks for, then removes the files. Errors name the id
  /// and the remedy (kNotFound for an id not in quarantine).
  net::awaitable<Expected<nlohmann::json>> quarantine_request(nlohmann::json request);
  /// What `bridgehead queue` shows: every queued message with its envelope and each
  /// recipient's state (status word, attempts, next attempt while deferred, last reply).
  nlohmann::json listing() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace bridgehead::queue
