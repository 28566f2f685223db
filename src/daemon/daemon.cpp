#include "daemon/daemon.hpp"

#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <functional>
#include <memory>
#include <vector>

#include <fmt/format.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "admin/control_socket.hpp"
#include "admin/status_view.hpp"
#include "cleanup/cleanup.hpp"
#include "convert/seven_bit.hpp"
#include "daemon/connector_identity.hpp"
#include "daemon/privileges.hpp"
#include "directory/addressbook/address_book_file.hpp"
#include "directory/addressbook/address_book_holder.hpp"
#include "directory/sync/sync_service.hpp"
#include "events/message_event.hpp"
#include "events/tracking_log.hpp"
#include "identity/id_file.hpp"
#include "net/completion.hpp"
#include "net/endpoint.hpp"
#include "queue/queue_manager.hpp"
#include "smtp/server/listener.hpp"
#include "smtp/server/recipient_policy.hpp"
#include "spool/spool.hpp"
#include "spool/spool_status.hpp"
#include "status/process.hpp"

namespace bridgehead::daemon {

namespace asio = net::asio;

namespace {

// One long-running part as the daemon drives it: each step is optional. The list is
// started in order once the daemon runs as its service user, published once a second and
// before each status answer, and stopped in order (ingress first) on SIGINT/SIGTERM;
// stopping waits, bounded, until no part is busy.
struct Component {
  std::function<void()> start;
  std::function<void()> publish;
  std::function<void()> stop;
  std::function<std::size_t()> busy;  ///< sessions or attempts a stop waits for
};

// The spool, with the fault injection the compaction crash test uses: SIGKILL at a named
// spool step ("step" or "step@FILE": only once FILE exists), as a crash at exactly that
// point would.
Expected<std::unique_ptr<spool::Spool>> open_spool(const config::Config& cfg) {
  spool::SpoolOptions options{.dir = cfg.spool_dir, .segment_size = cfg.spool_segment_size};
  // Held until the state is the service user's: a segment compaction made as root would be
  // root's, and one it removed would break the hand-over's walk of the directory.
  options.hold_compaction = true;
  // The journal is compacted at a quarter of a segment (at most the 4 MiB default), so
  // that with small segments it does not outgrow the data it describes.
  options.journal_compact_bytes = std::min<std::uint64_t>(4ull << 20, cfg.spool_segment_size / 4);
  if (const char* kill = std::getenv("BRIDGEHEAD_FAULT_SPOOL_KILL"); kill != nullptr && *kill != '\0') {
    const std::string spec = kill;
    const auto at = spec.find('@');
    const std::string step = spec.substr(0, at);
    const std::string armed = at == std::string::npos ? "" : spec.substr(at + 1);
    spdlog::warn("fault injection on: the daemon kills itself at spool step {}{}", step,
                 armed.empty() ? "" : " once " + armed + " exists");
    options.fault_hook = [step, armed](std::string_view where) {
      if (where == step && (armed.empty() || ::access(armed.c_str(), F_OK) == 0)) {
        spdlog::warn("fault injection: killing the daemon at spool step {}", step);
        spdlog::default_logger()->flush();
        std::raise(SIGKILL);
      }
      return 0;
    };
  }
  auto opened = spool::Spool::open(std::move(options));
  if (!opened) {
    auto e = std::move(opened.error());
    e.message = "cannot open the spool: " + e.message;
    return fail(std::move(e));
  }
  return opened;
}

// Delivery: one destination per system, SMTP, LMTP or Maildir.
queue::DestinationSpec destination(const config::Config& cfg, const config::SystemConfig& s, net::asio::io_context& io,
                                   net::asio::thread_pool& pool, ConnectorIdentity& identity,
                                   status::ProcessRegistry& registry) {
  queue::DestinationSpec d;
  d.name = s.name;
  d.domains = s.domains;
  d.concurrency = s.delivery.concurrency;
  d.process = registry.add("deliver:" + s.name);
  if (s.delivery.method == config::DeliveryMethod::kMaildir) {
    d.transport = queue::make_maildir_transport(pool, s.delivery.path, cfg.hostname);
    return d;
  }
  queue::SmtpTarget t;
  t.host = s.delivery.endpoint.host;
  t.port = s.delivery.endpoint.port;
  t.options.lmtp = s.delivery.method == config::DeliveryMethod::kLmtp;
  t.options.helo_name = cfg.hostname;
  t.options.tls = s.delivery.tls;
  t.options.ca_file = s.delivery.tls_ca_file;
  t.options.verify_name = s.delivery.tls_verify_name;
  t.options.connect_timeout = s.delivery.timeout;
  t.options.command_timeout = s.delivery.timeout;
  t.options.data_timeout = 2 * s.delivery.timeout;
  t.options.downgrade_8bit = [](std::string_view m) { return convert::downgrade_to_7bit(m); };
  t.options.blocking = pool.get_executor();
  if (s.delivery.tls != smtp::client::TlsPolicy::kNone && identity.configured()) {
    // The ID is the client certificate whenever the next hop asks for one.
    t.options.configure_tls = identity.client_tls_hook();
    identity.add_destination(s.name);
  }
  d.transport = queue::make_smtp_transport(io.get_executor(), std::move(t));
  return d;
}

Expected<queue::RetrySchedule> retry_schedule(const config::QueueSettings& q) {
  queue::RetryOptions retry = q.retry;
  retry.jitter = 0.1;  // spreads retries of a burst deferred together
  retry.seed = static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  return queue::RetrySchedule::create(retry);
}

// Started as root: hands the state over and drops to the service user, after everything
// that needs root (binding, reading the ID and its password) and before the event loop
// reads a byte from any client. Then checks, as that user, every directory it writes.
Expected<void> become_service_user(const config::Config& cfg, const ServiceAccount& account,
                                   admin::ControlServer& control) {
  if (auto r = hand_over_state(cfg, account); !r) return r;
  if (auto r = control.hand_over(account.uid, account.gid); !r) return r;
  if (auto r = drop_privileges(account); !r) return r;
  for (const auto& dir : writable_dirs(cfg)) {
    if (auto r = check_writable(dir, nullptr); !r) return r;
  }
  spdlog::info("dropped root: running as user {} (uid {}) and group {} (gid {})", account.user, account.uid,
               account.group, account.gid);
  return {};
}

// Shows `book` in the addressbook process; returns its activity line.
std::string show_address_book(const directory::AddressBook& book, status::Process& process) {
  process.set_gauge("recipients", book.size());
  process.set_gauge("forms", book.form_count());
  process.set_gauge("built_at", static_cast<std::uint64_t>(std::chrono::system_clock::to_time_t(book.built_at())));
  return book.size() == 0 ? std::string("no address book saved yet: the static recipient lists only")
                          : fmt::format("{} recipients, built {}", book.size(), identity::format_time(book.built_at()));
}

// The address book the last sync saved, so that RCPT is checked against it before any
// directory answers. A damaged or unreadable one does not stop the daemon: the static
// recipient lists carry on, and the log and the status say so.
void open_address_book(const std::filesystem::path& file, directory::AddressBookHolder& holder,
                       status::Process& process) {
  process.set_detail("file", file.string());
  auto loaded = directory::load_address_book(file);
  if (!loaded) {
    spdlog::error("{}; the daemon starts with the static recipient lists only", loaded.error().describe());
    process.report_error(status::ProcessState::kDegraded, loaded.error());
    process.set_activity("the address book could not be loaded: the static recipient lists only");
    return;
  }
  const std::string activity = show_address_book(**loaded, process);
  holder.publish(*loaded);
  spdlog::info("address book {}: {}", file.string(), activity);
  process.set_state(status::ProcessState::kRunning, activity);
}

// A book a sync run built: used from the next RCPT on (the holder swaps it atomically).
void publish_address_book(std::shared_ptr<const directory::AddressBook> book, std::size_t collisions,
                          directory::AddressBookHolder& holder, status::Process& process) {
  const std::string activity = show_address_book(*book, process);
  process.set_gauge("collisions", collisions);
  holder.publish(std::move(book));
  if (process.state() == status::ProcessState::kRunning) {
    process.set_activity(activity);
  } else {
    process.recover(activity);
  }
}

// `bridgehead dirsync ...` through the control socket: answered on the dirsync thread. A
// coroutine of its own, with its parameters by value: it outlives the handler's call.
net::awaitable<Expected<nlohmann::json>> dirsync_request(directory::sync::SyncService* service,
                                                         nlohmann::json request) {
  if (service == nullptr) {
    co_return fail(Error::permanent(ErrorCode::kConfig, "directory synchronization is not configured",
                                    "add a [system.directory] table to each system (docs/configuration.md)"));
  }
  // A named start, as elsewhere: with the lambda written inside the co_await expression GCC 12
  // destroyed its captures twice (valgrind: invalid reads at the frame's end).
  auto shared = std::make_shared<nlohmann::json>(std::move(request));
  auto start = [service, shared](auto done) { service->submit(std::move(*shared), std::move(done)); };
  auto answer = co_await net::await_completion<nlohmann::json>(std::move(start));
  co_return answer;
}

// A start-up failure goes to the log here; what a person sees on the terminal is the CLI's.
tl::unexpected<Error> refuse(Error e) {
  spdlog::critical("{}", e.describe());
  return fail(std::move(e));
}

}  // namespace

// GCC before 14 warns about the steps a component's designated initializer leaves out,
// though an empty std::function is what "no such step" means here.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
Expected<void> run(const config::Config& cfg) {
  // Logs go to stderr: stdout stays free for what a person asked for.
  spdlog::set_default_logger(spdlog::stderr_color_mt("bridgehead"));
  spdlog::set_level(spdlog::level::from_str(cfg.log_level));
  // Before anything is opened or bound: root without a user to become is refused.
  auto account = service_account(cfg);
  if (!account) return refuse(account.error());
  if (!*account && !cfg.user.empty()) {
    spdlog::warn("not started as root: [connector] user {} is ignored, the daemon runs as uid {}", cfg.user,
                 ::geteuid());
  }
  // Fixed malloc thresholds, before any thread starts. Every large message allocates and
  // frees buffers of a few hundred KiB (the listener's pieces, the delivery windows);
  // glibc's adaptive thresholds kept trimming the heap's top and growing it again, so those
  // buffers came back as fresh pages: 22-36 page faults per 256 KiB message relayed, 4-5
  // with these (docs/performance.md). Above 1 MiB (a whole message read for a 7-bit
  // downgrade) memory still comes from mmap and goes straight back; at most 16 MiB of free
  // heap is kept.
  ::mallopt(M_MMAP_THRESHOLD, 1 << 20);
  ::mallopt(M_TRIM_THRESHOLD, 16 << 20);
  asio::io_context io(1);
  status::ProcessRegistry registry;
  std::vector<Component> components;

  auto spool_process = registry.add("spool");
  // Blocking work, off the I/O thread: each message's cleanup, Maildir writes, content reads from the spool,
  // quarantine files, notices composed from the original, 7-bit downgrades and the
  // connector ID's key derivation on unlock.
  asio::thread_pool blocking_pool(2);
  ConnectorIdentity identity(io, blocking_pool, cfg, registry);
  // First, as root (root-only files stay readable) and before any listener is bound: a
  // terminal prompt waits here, and clients meanwhile are refused rather than accepted and
  // left without a greeting.
  identity.open_at_start();
  if (*account) {
    if (auto prepared = prepare_dirs(cfg, **account); !prepared) return refuse(prepared.error());
  }
  auto opened = open_spool(cfg);
  if (!opened) return refuse(opened.error());
  std::unique_ptr<spool::Spool> spool = std::move(*opened);
  const auto& report = spool->recovery_report();
  spdlog::info("spool {}: {}", cfg.spool_dir.string(), report.summary());
  for (const auto& note : report.notes) spdlog::warn("spool recovery: {}", note);
  spool::publish_recovery(report, *spool_process);
  components.push_back({.start = [&] { spool->resume_compaction(); },
                        .publish = [&] { spool::publish_status(*spool, *spool_process); }});

  // What happens to each message, published by the listeners and the queue; the tracking
  // log is one subscriber, the queue's counters and log lines others.
  events::EventBus event_bus;
  events::TrackingLog tracking({.file = cfg.tracking_file}, registry.add("tracking"));
  event_bus.subscribe([&tracking](const events::MessageEvent& e) { tracking.add(e); });
  // As the service user: the file and the ones rotation creates are its own.
  components.push_back({.start = [&] {
    if (auto started = tracking.start(); !started) spdlog::error("{}", started.error().describe());
  }});

  directory::AddressBookHolder address_book;
  auto book_process = registry.add("addressbook");
  open_address_book(cfg.state_dir / directory::kAddressBookFileName, address_book, *book_process);
  std::vector<smtp::SystemRecipients> systems;
  for (const auto& s : cfg.systems) systems.push_back({s.name, s.domains, s.recipients});
  smtp::StaticRecipientPolicy policy(systems, &address_book);

  std::vector<queue::DestinationSpec> destinations;
  for (const auto& s : cfg.systems) destinations.push_back(destination(cfg, s, io, blocking_pool, identity, registry));
  auto schedule = retry_schedule(cfg.queue);
  if (!schedule) return refuse(schedule.error());
  queue::QueueOptions qopt;
  qopt.hostname = cfg.hostname;
  qopt.schedule = *schedule;
  qopt.quarantine_dir = cfg.queue.quarantine_dir;
  qopt.blocking = blocking_pool.get_executor();
  qopt.quarantine_process = registry.add("quarantine");
  qopt.events = &event_bus;
  if (const char* marker = std::getenv("BRIDGEHEAD_FAULT_POISON"); marker != nullptr && *marker != '\0') {
    qopt.poison_marker = marker;
    spdlog::warn("fault injection on: messages containing \"{}\" are treated as poison", marker);
  }
  queue::QueueManager queue_manager(io, *spool, std::move(qopt), std::move(destinations));

  // Ingress, one listener per system, bound now (as root, for a port below 1024): stopped
  // first, so nothing new arrives while the rest winds down.
  std::vector<std::unique_ptr<smtp::Listener>> listeners;
  auto budget = std::make_shared<smtp::SessionBudget>();
  for (const auto& s : cfg.systems) {
    auto process = registry.add("ingress:" + s.name);
    process->set_detail("recovery", report.summary());
    auto options = smtp::listener_options(cfg.smtp, s.name, cfg.hostname);
    options.budget = budget;
    // This direction's cleanup: mail arriving from this system. Address rewriting and
    // content conversion will be its steps.
    options.cleanup = std::make_shared<const cleanup::Cleanup>(
        cleanup::Options{.hostname = cfg.hostname, .max_received_headers = cfg.smtp.max_received_headers, .steps = {}});
    options.blocking = blocking_pool.get_executor();
    options.events = &event_bus;
    options.on_queued = [&queue_manager](spool::MessageId id, const Envelope& env, std::uint64_t) {
      queue_manager.enqueue(id, env);
    };
    auto ep = net::make_endpoint(s.listen.host, s.listen.port);
    if (!ep) {
      process->report_error(status::ProcessState::kError, ep.error());
      continue;
    }
    options.endpoint = *ep;
    options.session.require_tls = !s.tls_client_ca_file.empty();
    std::optional<Error> tls_problem;
    if (!s.tls_cert_file.empty()) {
      auto tls = net::make_server_tls(s.tls_cert_file, s.tls_key_file);
      Expected<void> ready = tls ? Expected<void>{} : Expected<void>(fail(tls.error()));
      if (ready && !s.tls_client_ca_file.empty()) ready = net::require_client_certificates(**tls, s.tls_client_ca_file);
      if (ready) {
        options.tls = *tls;
      } else {
        tls_problem = ready.error();
      }
    }
    auto listener =
        std::make_unique<smtp::Listener>(io, std::move(options), *spool, policy.for_ingress(s.name), process);
    if (auto started = listener->start(); !started) {
      spdlog::error("ingress:{}: {}", s.name, started.error().describe());
    } else {
      spdlog::info("ingress:{} listening on {}", s.name, net::to_string(listener->local_endpoint()));
      // Mail still flows, without STARTTLS; the status says why.
      if (tls_problem) process->report_error(status::ProcessState::kDegraded, *tls_problem);
      if (s.tls_cert_file.empty()) identity.add_listener(*listener, process, s.tls_client_ca_file);
    }
    components.push_back(
        {.stop = [l = listener.get()] { l->stop(); }, .busy = [l = listener.get()] { return l->active_sessions(); }});
    listeners.push_back(std::move(listener));
  }
  components.push_back({.start = [&] { queue_manager.start(); },
                        .publish = [&] { queue_manager.publish(); },
                        .stop = [&] { queue_manager.stop(); },
                        .busy = [&] { return queue_manager.in_flight(); }});
  // After the queue manager has marked its processes running, before any attempt is made:
  // a locked ID holds the deliveries that need it from the first attempt on.
  components.push_back({.start = [&] { identity.start(queue_manager); }, .publish = [&] { identity.tick(); }});
  const auto publish_all = [&components] {
    for (const auto& c : components) {
      if (c.publish) c.publish();
    }
  };

  admin::ControlServer control(io, cfg.control_socket, cfg.control_socket_mode, registry.add("control"));
  control.handle("status", [&](const nlohmann::json&) -> Expected<nlohmann::json> {
    publish_all();
    return admin::status_json(registry);
  });
  control.handle("queue", [&](const nlohmann::json&) -> Expected<nlohmann::json> { return queue_manager.listing(); });
  control.handle_async("unlock", [&](nlohmann::json request) { return identity.unlock(std::move(request)); });
  control.handle_async("quarantine",
                       [&](nlohmann::json request) { return queue_manager.quarantine_request(std::move(request)); });
  // Directory synchronization, opened as the service user (its SQLite files are the
  // account's): the `dirsync` process, its schedule, and the requests of `bridgehead dirsync`.
  std::unique_ptr<directory::sync::SyncService> dirsync;
  control.handle_async("dirsync",
                       [&](nlohmann::json request) { return dirsync_request(dirsync.get(), std::move(request)); });
  // Bound as root like the listeners; it hands its socket to the service user below.
  if (auto started = control.start(); !started) return refuse(started.error());
  asio::steady_timer refresh(io);
  components.push_back({.stop = [&] {
    control.stop();
    refresh.cancel();
  }});
  if (*account) {
    if (auto dropped = become_service_user(cfg, **account, control); !dropped) return refuse(dropped.error());
  }

  if (!cfg.dirsync.directories.empty()) {
    auto process = registry.add("dirsync");
    auto engine = directory::sync::Engine::open(cfg.dirsync, cfg.state_dir, [&identity] { return identity.current(); });
    if (!engine) {
      spdlog::error("dirsync: {}", engine.error().describe());
      process->report_error(status::ProcessState::kError, engine.error());
    } else {
      (*engine)->on_address_book(
          [&address_book, book_process](std::shared_ptr<const directory::AddressBook> book, std::size_t collisions) {
            publish_address_book(std::move(book), collisions, address_book, *book_process);
          });
      dirsync = std::make_unique<directory::sync::SyncService>(std::move(*engine), process);
      // Stopping only asks: a run ends after its current batch, joined once the loop is done.
      components.push_back({.start = [&] { dirsync->start(); }, .stop = [&] { dirsync->request_stop(); }});
    }
  }

  std::function<void()> tick = [&] {
    refresh.expires_after(std::chrono::seconds(1));
    refresh.async_wait([&](net::error_code ec) {
      if (ec) return;
      publish_all();
      tick();
    });
  };

  // Stopping: no new connections; every session says 421 and ends once no commit of its
  // is in flight (a message whose fsync is under way still gets its 250). Bounded, so a
  // client that does not read cannot hold the daemon up.
  asio::signal_set signals(io, SIGINT, SIGTERM);
  asio::steady_timer drain(io);
  auto drain_deadline = std::chrono::steady_clock::now();
  std::function<void()> wait_for_sessions = [&] {
    std::size_t open = 0;
    for (const auto& c : components) open += c.busy ? c.busy() : 0;
    if (open == 0 || std::chrono::steady_clock::now() >= drain_deadline) {
      if (open > 0) spdlog::warn("stopping with {} session(s) or delivery attempt(s) that did not end in time", open);
      io.stop();
      return;
    }
    drain.expires_after(std::chrono::milliseconds(20));
    drain.async_wait([&](net::error_code ec) {
      if (!ec) wait_for_sessions();
    });
  };
  signals.async_wait([&](net::error_code ec, int sig) {
    if (ec) return;
    spdlog::info("received signal {}, stopping", sig);
    for (const auto& c : components) {
      if (c.stop) c.stop();
    }
    drain_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    wait_for_sessions();
  });
  ::signal(SIGPIPE, SIG_IGN);
  for (const auto& c : components) {
    if (c.start) c.start();
  }
  publish_all();
  tick();
  spdlog::info("bridgehead ready (control socket {})", cfg.control_socket.string());
  io.run();
  // Work still running on the pool (a quarantine write, a content read) refers to the
  // queue manager and the spool, which are destroyed next: it ends first.
  blocking_pool.join();
  if (dirsync) dirsync->stop();
  listeners.clear();
  spdlog::info("bridgehead stopped");
  return {};
}

#pragma GCC diagnostic pop

}  // namespace bridgehead::daemon
