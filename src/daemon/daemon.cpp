#include "daemon/daemon.hpp"

#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>

#include <fmt/format.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "admin/control_socket.hpp"
#include "admin/status_view.hpp"
#include "events/message_event.hpp"
#include "events/tracking_log.hpp"
#include "status/process.hpp"
#include "cleanup/cleanup.hpp"
#include "convert/seven_bit.hpp"
#include "daemon/connector_identity.hpp"
#include "daemon/privileges.hpp"
#include "net/endpoint.hpp"
#include "queue/queue_manager.hpp"
#include "smtp/server/listener.hpp"
#include "smtp/server/recipient_policy.hpp"
#include "spool/spool.hpp"

namespace bridgehead::daemon {

namespace asio = net::asio;

namespace {

smtp::ListenerOptions listener_options(const config::Config& c, const config::SystemConfig& s) {
  smtp::ListenerOptions o;
  o.system = s.name;
  o.session.hostname = c.hostname;
  o.session.max_message_size = c.smtp.max_message_size;
  o.session.max_recipients = c.smtp.max_recipients;
  o.session.max_junk_commands = c.smtp.max_junk_commands;
  o.session.max_errors = c.smtp.max_errors;
  o.content.max_line_length = c.smtp.max_line_length;
  o.content.max_message_size = c.smtp.max_message_size;
  o.content.bare_linefeed = c.smtp.bare_linefeed == config::BareLinefeed::kReject
                                ? smtp::BareLinefeedPolicy::kReject
                                : smtp::BareLinefeedPolicy::kNormalize;
  o.max_line_length = c.smtp.max_line_length;
  o.max_sessions = c.smtp.max_sessions;
  o.max_sessions_per_client = c.smtp.max_sessions_per_client;
  o.command_timeout = std::chrono::seconds(c.smtp.command_timeout_seconds);
  o.data_timeout = std::chrono::seconds(c.smtp.data_timeout_seconds);
  return o;
}

nlohmann::json queue_json(const spool::Spool& sp) {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& m : sp.queued()) {
    nlohmann::json rcpts = nlohmann::json::array();
    nlohmann::json states = nlohmann::json::array();
    for (std::size_t i = 0; i < m.envelope.recipients.size(); ++i) {
      rcpts.push_back(m.envelope.recipients[i].address);
      const auto& st = m.recipients.at(i);
      nlohmann::json j = {{"address", m.envelope.recipients[i].address},
                          {"status", spool::status_word(st.status)},
                          {"attempts", st.attempts}};
      if (st.next_attempt != 0 && st.status == spool::RecipientStatus::kDeferred) j["next_attempt"] = st.next_attempt;
      if (!st.reply.empty()) j["reply"] = st.reply;
      states.push_back(std::move(j));
    }
    list.push_back({{"id", spool::format_id(m.id)},
                    {"state", std::move(states)},
                    {"from", m.envelope.mail_from},
                    {"recipients", std::move(rcpts)},
                    {"size", m.size},
                    {"system", m.envelope.ingress_system},
                    {"received_at", m.envelope.received_at}});
  }
  return {{"messages", std::move(list)}};
}

// Keeps the spool's process entry current: queue size, segments, and how well group
// commit is batching (commits per fdatasync).
constexpr std::string_view kSpoolDegradedRemedy = "see the daemon log and docs/spool.md (Failure behaviour)";

void publish_spool(const spool::Spool& sp, status::Process& p) {
  auto st = sp.stats();
  p.set_gauge("queued", st.queued);
  p.set_gauge("segments", st.segments);
  p.set_gauge("receiving", st.receiving);  // uncommitted messages holding spool space
  p.set_counter("commits", st.commits);
  p.set_counter("fsync_batches", st.syncs);          // every batch that synced, finishes included
  p.set_counter("commit_batches", st.commit_batches);  // batches that held commits: commits / this = batching
  p.set_counter("bytes_written", st.bytes_written);
  p.set_counter("write_errors", st.write_errors);
  p.set_gauge("disk_bytes", st.disk_bytes);
  p.set_gauge("live_bytes", st.live_bytes);
  p.set_counter("compacted", st.compacted);
  p.set_counter("damaged", st.damaged);
  p.set_gauge("open_files", st.open_files);
  if (!st.degraded.empty()) {
    // Reported once per cause: this runs every second.
    const auto now = p.snapshot();
    if (now.state != status::ProcessState::kDegraded || !now.last_error || now.last_error->message != st.degraded) {
      p.report_error(status::ProcessState::kDegraded,
                     Error::transient_error(ErrorCode::kIo, st.degraded, std::string(kSpoolDegradedRemedy)));
    }
  } else if (const auto now = p.snapshot(); now.state == status::ProcessState::kDegraded && now.last_error &&
                                            now.last_error->remedy == kSpoolDegradedRemedy) {
    // The spool cleared its cause (the retried unlink or compaction worked).
    p.recover("the spool's reclaim steps work again");
  }
  p.set_activity(fmt::format("{} message{} queued in {} segment{}, {:.1f} commits per fsync", st.queued,
                             st.queued == 1 ? "" : "s", st.segments, st.segments == 1 ? "" : "s",
                             st.batching_factor()));
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

// A start-up failure goes to the log here; what a person sees on the terminal is the CLI's.
tl::unexpected<Error> refuse(Error e) {
  spdlog::critical("{}", e.describe());
  return fail(std::move(e));
}

}  // namespace

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
  spool::SpoolOptions spool_options{.dir = cfg.spool_dir, .segment_size = cfg.spool_segment_size};
  // Held until the state is the service user's: a segment compaction made as root would be
  // root's, and one it removed would break the hand-over's walk of the directory.
  spool_options.hold_compaction = true;
  // The journal is compacted at a quarter of a segment (at most the 4 MiB default), so
  // that with small segments it does not outgrow the data it describes.
  spool_options.journal_compact_bytes = std::min<std::uint64_t>(4ull << 20, cfg.spool_segment_size / 4);
  if (const char* kill = std::getenv("BRIDGEHEAD_FAULT_SPOOL_KILL"); kill != nullptr && *kill != '\0') {
    // For the compaction crash test: SIGKILL at a named spool step ("step" or
    // "step@FILE": only once FILE exists), as a crash at exactly that point would.
    const std::string spec = kill;
    const auto at = spec.find('@');
    const std::string step = spec.substr(0, at);
    const std::string armed = at == std::string::npos ? "" : spec.substr(at + 1);
    spdlog::warn("fault injection on: the daemon kills itself at spool step {}{}", step,
                 armed.empty() ? "" : " once " + armed + " exists");
    spool_options.fault_hook = [step, armed](std::string_view where) {
      if (where == step && (armed.empty() || ::access(armed.c_str(), F_OK) == 0)) {
        spdlog::warn("fault injection: killing the daemon at spool step {}", step);
        spdlog::default_logger()->flush();
        std::raise(SIGKILL);
      }
      return 0;
    };
  }
  auto opened = spool::Spool::open(std::move(spool_options));
  if (!opened) {
    auto e = std::move(opened.error());
    e.message = "cannot open the spool: " + e.message;
    return refuse(std::move(e));
  }
  std::unique_ptr<spool::Spool> spool = std::move(*opened);
  const auto& report = spool->recovery_report();
  spdlog::info("spool {}: {}", cfg.spool_dir.string(), report.summary());
  for (const auto& note : report.notes) spdlog::warn("spool recovery: {}", note);
  spool_process->set_state(status::ProcessState::kRunning, "");
  spool_process->set_detail("recovery", report.summary());
  if (!report.notes.empty()) {
    spool_process->report_error(
        status::ProcessState::kDegraded,
        Error::permanent(ErrorCode::kCorrupt, report.notes.front(),
                         "see the daemon log for every recovery note; see docs/spool.md on damaged segments"));
  }
  publish_spool(*spool, *spool_process);

  // What happens to each message, published by the listeners and the queue; the tracking
  // log is one subscriber, the queue's counters and log lines others.
  events::EventBus event_bus;
  events::TrackingLog tracking({.file = cfg.tracking_file}, registry.add("tracking"));
  event_bus.subscribe([&tracking](const events::MessageEvent& e) { tracking.add(e); });

  std::vector<smtp::SystemRecipients> systems;
  for (const auto& s : cfg.systems) systems.push_back({s.name, s.domains, s.recipients});
  smtp::StaticRecipientPolicy policy(systems);

  // Delivery: one destination per system, the queue manager schedules across them.
  std::vector<queue::DestinationSpec> destinations;
  for (const auto& s : cfg.systems) {
    queue::DestinationSpec d;
    d.name = s.name;
    d.domains = s.domains;
    d.concurrency = s.delivery.concurrency;
    d.process = registry.add("deliver:" + s.name);
    if (s.delivery.method == config::DeliveryMethod::kMaildir) {
      d.transport = queue::make_maildir_transport(blocking_pool, s.delivery.path, cfg.hostname);
    } else {
      queue::SmtpTarget t;
      t.host = s.delivery.endpoint.host;
      t.port = s.delivery.endpoint.port;
      t.options.lmtp = s.delivery.method == config::DeliveryMethod::kLmtp;
      t.options.helo_name = cfg.hostname;
      t.options.tls = s.delivery.tls == config::TlsMode::kNone       ? smtp::client::TlsPolicy::kNone
                      : s.delivery.tls == config::TlsMode::kRequired ? smtp::client::TlsPolicy::kRequired
                                                                     : smtp::client::TlsPolicy::kOpportunistic;
      t.options.ca_file = s.delivery.tls_ca_file;
      t.options.verify_name = s.delivery.tls_verify_name;
      t.options.connect_timeout = s.delivery.timeout;
      t.options.command_timeout = s.delivery.timeout;
      t.options.data_timeout = 2 * s.delivery.timeout;
      t.options.downgrade_8bit = [](std::string_view m) { return convert::downgrade_to_7bit(m); };
      t.options.blocking = blocking_pool.get_executor();
      if (s.delivery.tls != config::TlsMode::kNone && identity.configured()) {
        // The ID is the client certificate whenever the next hop asks for one.
        t.options.configure_tls = identity.client_tls_hook();
        identity.add_destination(s.name);
      }
      d.transport = queue::make_smtp_transport(io.get_executor(), std::move(t));
    }
    destinations.push_back(std::move(d));
  }
  queue::RetryOptions retry;
  retry.delays = cfg.queue.retry_delays;
  retry.lifetime = cfg.queue.lifetime;
  retry.delay_notice_after = cfg.queue.delay_notice_after;
  retry.jitter = 0.1;  // spreads retries of a burst deferred together
  retry.seed = static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  auto schedule = queue::RetrySchedule::create(retry);
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

  std::vector<std::unique_ptr<smtp::Listener>> listeners;
  auto budget = std::make_shared<smtp::SessionBudget>();
  for (const auto& s : cfg.systems) {
    auto process = registry.add("ingress:" + s.name);
    process->set_detail("recovery", report.summary());
    auto options = listener_options(cfg, s);
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
    auto listener = std::make_unique<smtp::Listener>(io, std::move(options), *spool, policy.for_ingress(s.name),
                                                     process);
    if (auto started = listener->start(); !started) {
      spdlog::error("ingress:{}: {}", s.name, started.error().describe());
    } else {
      spdlog::info("ingress:{} listening on {}", s.name, net::to_string(listener->local_endpoint()));
      // Mail still flows, without STARTTLS; the status says why.
      if (tls_problem) process->report_error(status::ProcessState::kDegraded, *tls_problem);
      if (s.tls_cert_file.empty()) identity.add_listener(*listener, process, s.tls_client_ca_file);
    }
    listeners.push_back(std::move(listener));
  }

  admin::ControlServer control(io, cfg.control_socket, cfg.control_socket_mode, registry.add("control"));
  control.handle("status", [&](const nlohmann::json&) -> Expected<nlohmann::json> {
    publish_spool(*spool, *spool_process);
    queue_manager.publish();
    return admin::status_json(registry);
  });
  control.handle("queue", [&](const nlohmann::json&) -> Expected<nlohmann::json> { return queue_json(*spool); });
  control.handle_async("unlock", [&](nlohmann::json request) { return identity.unlock(std::move(request)); });
  control.handle_async("quarantine",
                       [&](nlohmann::json request) { return queue_manager.quarantine_request(std::move(request)); });
  if (auto started = control.start(); !started) return refuse(started.error());
  if (*account) {
    if (auto dropped = become_service_user(cfg, **account, control); !dropped) return refuse(dropped.error());
  }
  // As the service user: the file and the ones rotation creates are its own.
  if (auto started = tracking.start(); !started) spdlog::error("{}", started.error().describe());

  asio::steady_timer refresh(io);
  std::function<void()> tick = [&] {
    refresh.expires_after(std::chrono::seconds(1));
    refresh.async_wait([&](net::error_code ec) {
      if (ec) return;
      publish_spool(*spool, *spool_process);
      identity.tick();
      queue_manager.publish();
      tick();
    });
  };
  tick();

  // Stopping: no new connections; every session says 421 and ends once no commit of its
  // is in flight (a message whose fsync is under way still gets its 250). Bounded, so a
  // client that does not read cannot hold the daemon up.
  asio::signal_set signals(io, SIGINT, SIGTERM);
  asio::steady_timer drain(io);
  auto drain_deadline = std::chrono::steady_clock::now();
  std::function<void()> wait_for_sessions = [&] {
    std::size_t open = queue_manager.in_flight();
    for (const auto& l : listeners) open += l->active_sessions();
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
    for (auto& l : listeners) l->stop();
    queue_manager.stop();
    control.stop();
    refresh.cancel();
    drain_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    wait_for_sessions();
  });
  ::signal(SIGPIPE, SIG_IGN);
  spool->resume_compaction();
  queue_manager.start();
  // After the queue manager has marked its processes running, before any attempt is made:
  // a locked ID holds the deliveries that need it from the first attempt on.
  identity.start(queue_manager);
  spdlog::info("bridgehead ready (control socket {})", cfg.control_socket.string());
  io.run();
  // Work still running on the pool (a quarantine write, a content read) refers to the
  // queue manager and the spool, which are destroyed next: it ends first.
  blocking_pool.join();
  listeners.clear();
  spdlog::info("bridgehead stopped");
  return {};
}

}  // namespace bridgehead::daemon
