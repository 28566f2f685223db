#include "queue/queue_manager.hpp"

#include <algorithm>
#include <deque>
#include <limits>
#include <optional>
#include <set>
#include <stdexcept>
#include <unordered_map>

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/container/small_vector.hpp>

#include "convert/seven_bit.hpp"
#include "core/durable_file.hpp"
#include "core/duration.hpp"
#include "core/text.hpp"
#include "dsn/dsn.hpp"
#include "net/blocking.hpp"
#include "net/completion.hpp"
#include "net/spawn.hpp"
#include "queue/quarantine.hpp"
#include "queue/schedule.hpp"
#include "queue/spool_content.hpp"

namespace bridgehead::queue {

namespace {

// Fault injection (QueueOptions::poison_marker): a delivery whose content holds the marker
// throws from the middle of reading it, as a conversion bug would, on the streaming path
// real deliveries take.
class PoisonTrap final : public smtp::client::ContentSource {
 public:
  struct Found : std::runtime_error {
    using std::runtime_error::runtime_error;
  };
  PoisonTrap(smtp::client::ContentSource& inner, const std::string& marker) : inner_(inner), marker_(marker) {}
  smtp::client::ContentInfo info() const override { return inner_.info(); }
  std::optional<std::string_view> contiguous() const override {
    auto all = inner_.contiguous();
    check(all.value_or(std::string_view()));
    return all;
  }
  net::awaitable<Expected<std::string_view>> next_piece() override {
    auto piece = co_await inner_.next_piece();
    if (piece) check(*piece);
    co_return piece;
  }

 private:
  void check(std::string_view piece) const {
    // The marker itself is not named: a failure notice quoting the reason would carry it
    // and be taken for poison in turn.
    if (piece.find(marker_) != std::string_view::npos) {
      throw Found(
          "conversion failed (fault injection: the message holds the poison marker of BRIDGEHEAD_FAULT_POISON)");
    }
  }
  smtp::client::ContentSource& inner_;
  const std::string& marker_;
};

namespace asio = net::asio;
using spool::MessageId;
using spool::RecipientState;
using spool::RecipientStatus;

constexpr std::size_t kNoDestination = std::numeric_limits<std::size_t>::max();
constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::max();
constexpr std::chrono::seconds kIdleClose{2};

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

bool is_final(RecipientStatus s) { return s == RecipientStatus::kDelivered || s == RecipientStatus::kFailed; }

std::string lower_domain(std::string_view address) {
  const auto at = address.rfind('@');
  return to_lower(at == std::string_view::npos ? std::string_view() : address.substr(at + 1));
}

// "127.0.0.1:2526" -> "127.0.0.1", "[::1]:25" -> "::1": Remote-MTA names a host, not a port.
std::string host_of(std::string_view remote) {
  const auto colon = remote.rfind(':');
  if (colon != std::string_view::npos && colon + 1 < remote.size() &&
      std::all_of(remote.begin() + static_cast<std::ptrdiff_t>(colon) + 1, remote.end(),
                  [](char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; }) &&
      (remote.front() == '[' || remote.find(':') == colon)) {
    remote = remote.substr(0, colon);
  }
  if (remote.size() >= 2 && remote.front() == '[' && remote.back() == ']') remote = remote.substr(1, remote.size() - 2);
  return std::string(remote);
}

std::string clock_time(std::int64_t unix) {
  const std::time_t t = unix;
  std::tm tm{};
  localtime_r(&t, &tm);
  return fmt::format("{:%H:%M:%S}", tm);
}

std::string human_age(std::int64_t seconds) {
  if (seconds < 120) return fmt::format("{}s", seconds);
  if (seconds < 7200) return fmt::format("{}m", seconds / 60);
  if (seconds < 172800) return fmt::format("{}h", seconds / 3600);
  return fmt::format("{}d", seconds / 86400);
}

}  // namespace

// Recipients of one message for one destination: usually one, kept inline, since every
// due message of a backlog has its job waiting in its destination's ready list.
using Indices = boost::container::small_vector<std::size_t, 1>;

struct Job {
  MessageId id = 0;
  std::size_t dest = kNoDestination;
  Indices indices;
};

struct Entry {
  // The envelope in its binary form, decoded when a job needs it (a delivery, a notice):
  // a few times smaller than an Envelope, for every message of a backlog.
  std::string envelope_bytes;
  std::int64_t received_at = 0;  // of the envelope, read by publish() for every entry each second
  Envelope env() const {
    // Written by encode_envelope() in add() from an envelope the spool accepted (it refuses
    // one that does not decode back), so this cannot fail; a broken invariant throws (and
    // is logged by the coroutine's spawn) rather than deliver with an empty envelope.
    auto e = deserialize_envelope(envelope_bytes);
    if (!e) throw std::logic_error("queued envelope does not decode: " + e.error().message);
    return std::move(*e);
  }
  std::vector<RecipientState> states;
  // Per recipient: the index of its destination (kNoDestination when no system owns its
  // domain) and, in the top bit, whether it is part of a job that is ready, under way or
  // being recorded. One word each, inline for up to two recipients: most messages of a
  // backlog need no allocation for it.
  boost::container::small_vector<std::uint32_t, 2> slots;
  static constexpr std::uint32_t kBusyBit = 0x80000000u;
  static constexpr std::uint32_t kNoDest = 0x7FFFFFFFu;
  std::size_t dest(std::size_t i) const {
    const std::uint32_t d = slots[i] & ~kBusyBit;
    return d == kNoDest ? kNoDestination : d;
  }
  bool busy(std::size_t i) const { return (slots[i] & kBusyBit) != 0; }
  void set_busy(std::size_t i, bool on) { slots[i] = on ? (slots[i] | kBusyBit) : (slots[i] & ~kBusyBit); }
  unsigned jobs = 0;  // such jobs; the entry may only go away at 0
  // Set aside (its files are durable in the quarantine directory): no new attempts; it
  // leaves the spool once the jobs under way have ended.
  // Pointers, not optionals: both are rare, and an empty optional of either would take
  // several hundred bytes in every entry of a large backlog.
  std::unique_ptr<QuarantineRecord> quarantined;
  // Reports about final outcomes that could not be queued yet: the entry stays (and the
  // message in the spool) until they are, so that only the notice is retried, never the
  // delivery (issue 8, defect 6).
  std::unique_ptr<dsn::Report> pending_notice;
  bool finishing = false;
};

struct Dest {
  std::string name;
  std::vector<std::string> domains;
  std::unique_ptr<Transport> transport;
  unsigned concurrency = 1;
  std::shared_ptr<status::Process> process;
  std::deque<Job> ready;
  unsigned workers = 0;
  unsigned in_flight = 0;
  std::uint64_t idle_epoch = 0;  // bumped whenever the last worker exits
  bool troubled = false;         // the last attempt failed without an answer from the destination
  std::string last_error;
  std::optional<Error> hold;  // attempts are not made while set (QueueManager::hold)
  std::string hold_activity;
};

struct QueueManager::Impl {
  Impl(asio::io_context& io_, spool::Spool& spool_, QueueOptions opt_)
      : io(io_), spool(spool_), opt(std::move(opt_)), store(opt.quarantine_dir), timer(io_) {
    bus = opt.events != nullptr ? opt.events : &own_bus;
  }

  asio::io_context& io;
  spool::Spool& spool;
  QueueOptions opt;
  QuarantineStore store;
  std::size_t quarantine_count = 0;
  std::set<MessageId> quarantining;       ///< being written to quarantine now
  std::set<std::string> quarantine_busy;  // ids being released or deleted
  std::vector<Dest> dests;
  std::unordered_map<MessageId, Entry> entries;
  std::multimap<std::int64_t, MessageId> wake;
  asio::steady_timer timer;
  std::int64_t timer_at = kNever;
  bool stopping = false;
  unsigned recording = 0;  // outcome records (and DSNs) being made durable
  events::EventBus own_bus;
  events::EventBus* bus = nullptr;

  Dest* dest_named(const std::string& name) {
    for (auto& d : dests) {
      if (d.name == name) return &d;
    }
    return nullptr;
  }

  // What every event of a message names.
  static events::MessageEvent message_event(events::EventKind kind, MessageId id, const Envelope& env) {
    events::MessageEvent ev;
    ev.kind = kind;
    ev.at_ms = unix_now_ms();
    ev.queue_id = spool::format_id(id);
    ev.sender = env.mail_from;
    return ev;
  }

  void publish_event(events::EventKind kind, MessageId id, const Envelope& env, const Dest* dst,
                     std::string recipient = {}, std::string reply = {}, std::string detail = {},
                     bool expired = false) const {
    events::MessageEvent ev = message_event(kind, id, env);
    ev.system = dst ? dst->name : std::string();
    ev.recipient = std::move(recipient);
    ev.next_hop = dst ? dst->transport->describe() : std::string();
    ev.reply = std::move(reply);
    ev.detail = std::move(detail);
    ev.expired = expired;
    bus->publish(ev);
  }

  // A report about `env` with no recipients yet: the per-message fields of RFC 3464 2.2.
  dsn::Report report_about(const Envelope& env) const {
    dsn::Report rep;
    rep.reporting_mta = opt.hostname;
    rep.envid = env.envid;
    rep.arrival_date = env.received_at;
    rep.original_sender = env.mail_from;
    rep.ret = env.ret;
    return rep;
  }

  // Queued names the system the message came from; the others, where it goes.
  void publish_queued(MessageId id, const Envelope& env) const {
    events::MessageEvent ev = message_event(events::EventKind::kQueued, id, env);
    ev.system = env.ingress_system;
    bus->publish(ev);
  }

  // The queue's own subscribers: each destination's counters and the outcome log lines.
  void subscribe() {
    bus->subscribe([this](const events::MessageEvent& ev) {
      Dest* d = dest_named(ev.system);
      if (d == nullptr) return;
      switch (ev.kind) {
        case events::EventKind::kDelivered:
          d->process->add("delivered");
          break;
        case events::EventKind::kDeferred:
          d->process->add("deferred");
          break;
        case events::EventKind::kFailed:
          if (ev.expired) {
            // Counted with the deferrals it ends (the next hop said "later", time ran out).
            d->process->add("deferred");
            d->process->add("expired");
          } else {
            d->process->add("failed");
          }
          break;
        case events::EventKind::kNoticeSent:
          d->process->add("dsn_sent");
          break;
        case events::EventKind::kQuarantined:
          d->process->add("quarantined");
          break;
        case events::EventKind::kReceived:
        case events::EventKind::kRefused:
        case events::EventKind::kQueued:
          break;
      }
    });
    bus->subscribe([](const events::MessageEvent& ev) {
      const char* what = ev.kind == events::EventKind::kDelivered  ? "delivered"
                         : ev.kind == events::EventKind::kFailed   ? "failed"
                         : ev.kind == events::EventKind::kDeferred ? "deferred"
                                                                   : nullptr;
      if (what == nullptr) return;
      spdlog::info("message {}: <{}> {} via {}: {}", ev.queue_id, ev.recipient, what,
                   ev.next_hop.empty() ? std::string("(no route)") : ev.next_hop, escape_control(ev.reply));
    });
  }

  std::size_t route(const Envelope& env, const Recipient& r) const {
    const std::string domain = lower_domain(r.address);
    for (std::size_t d = 0; d < dests.size(); ++d) {
      if (std::find(dests[d].domains.begin(), dests[d].domains.end(), domain) != dests[d].domains.end()) return d;
    }
    // Our own DSNs go back toward the system the original came from.
    for (std::size_t d = 0; d < dests.size(); ++d) {
      if (!env.route_system.empty() && dests[d].name == env.route_system) return d;
    }
    return kNoDestination;
  }

  void add(MessageId id, const Envelope& env, std::vector<RecipientState> states) {
    Entry e;
    e.envelope_bytes = encode_envelope(env);
    e.received_at = env.received_at;
    if (states.size() != env.recipients.size()) {
      states.assign(env.recipients.size(), RecipientState{});
      for (std::size_t i = 0; i < states.size(); ++i) states[i].index = static_cast<std::uint32_t>(i);
    }
    e.states = std::move(states);
    e.slots.reserve(env.recipients.size());
    for (const auto& r : env.recipients) {
      const std::size_t d = route(env, r);
      e.slots.push_back(d == kNoDestination ? Entry::kNoDest : static_cast<std::uint32_t>(d));
    }
    // An id already here keeps its entry (its jobs and busy marks stay true).
    if (!entries.try_emplace(id, std::move(e)).second) return;
    schedule(id);
  }

  void schedule(MessageId id) {
    auto it = entries.find(id);
    if (it == entries.end() || stopping) return;
    Entry& e = it->second;
    if (e.quarantined || e.finishing) return;
    const std::int64_t now = unix_now();
    std::map<std::size_t, Indices> due;
    std::int64_t next = kNever;
    bool every_final = true;
    for (std::size_t i = 0; i < e.states.size(); ++i) {
      const RecipientState& st = e.states[i];
      if (is_final(st.status)) continue;
      every_final = false;
      if (e.busy(i)) continue;
      if (st.status == RecipientStatus::kPending || st.next_attempt <= now) {
        due[e.dest(i)].push_back(i);
      } else {
        next = std::min(next, st.next_attempt);
      }
    }
    if (every_final) {
      if (finishable(e)) net::spawn_logged(io.get_executor(), finalize(id), "queue: finishing a message");
      return;
    }
    for (auto& [d, indices] : due) {
      for (std::size_t i : indices) e.set_busy(i, true);
      ++e.jobs;
      if (d == kNoDestination) {
        net::spawn_logged(io.get_executor(), unroutable(Job{id, d, std::move(indices)}),
                          "queue: unroutable recipients");
        continue;
      }
      dests[d].ready.push_back(Job{id, d, std::move(indices)});
      kick(d);
    }
    if (next != kNever) {
      wake.emplace(next, id);
      arm_timer();
    }
  }

  void kick(std::size_t d) {
    Dest& dst = dests[d];
    // One worker per ready job up to the concurrency: each worker keeps its connection
    // for the next job, so a burst runs over `concurrency` reused connections.
    while (!stopping && dst.workers < dst.concurrency && dst.workers < dst.in_flight + dst.ready.size()) {
      ++dst.workers;
      net::spawn_logged(io.get_executor(), worker(d), "deliver:" + dst.name);
    }
  }

  void arm_timer() {
    if (wake.empty() || stopping) return;
    const std::int64_t first = wake.begin()->first;
    if (first >= timer_at) return;
    timer_at = first;
    const std::int64_t wait = std::max<std::int64_t>(0, first - unix_now());
    timer.expires_after(std::chrono::seconds(wait));
    timer.async_wait([this](net::error_code ec) {
      // Aborted: re-armed for an earlier time (timer_at already says when), stopped, or the
      // queue manager is gone (the handler still runs after the timer's destruction, so it
      // must not touch `this`).
      if (ec == asio::error::operation_aborted) return;
      timer_at = kNever;
      if (ec || stopping) return;
      const std::int64_t now = unix_now();
      std::vector<MessageId> due;
      while (!wake.empty() && wake.begin()->first <= now) {
        due.push_back(wake.begin()->second);
        wake.erase(wake.begin());
      }
      for (MessageId id : due) schedule(id);
      arm_timer();
    });
  }

  net::awaitable<void> worker(std::size_t d) {
    Dest& dst = dests[d];
    while (!stopping && !dst.ready.empty()) {
      Job job = std::move(dst.ready.front());
      dst.ready.pop_front();
      ++dst.in_flight;
      co_await attempt(std::move(job));
      --dst.in_flight;
    }
    --dst.workers;
    if (dst.workers > 0) co_return;
    // Connections stay open a moment after the last job: when delivery keeps pace with
    // arrivals the ready list empties after nearly every message, and closing then would
    // cost a connect, greeting, EHLO and QUIT per message (Postfix waits 2 s too).
    const std::uint64_t epoch = ++dst.idle_epoch;
    asio::steady_timer idle(io, kIdleClose);
    co_await idle.async_wait(net::use_nothrow);
    if (dst.workers == 0 && dst.idle_epoch == epoch) co_await dst.transport->release();
  }

  static bool all_final(const Entry& e) {
    return std::all_of(e.states.begin(), e.states.end(), [](const RecipientState& s) { return is_final(s.status); });
  }
  // Whether the message may leave the spool now.
  static bool finishable(const Entry& e) { return e.jobs == 0 && !e.pending_notice && (e.quarantined || all_final(e)); }

  net::awaitable<void> attempt(Job job) {
    Dest& dst = dests[job.dest];
    auto it = entries.find(job.id);
    if (it == entries.end()) co_return;
    Entry& e = it->second;
    if (e.quarantined) {
      // Set aside while this job waited: nothing more is sent.
      co_await let_go(std::move(job));
      co_return;
    }
    if (dst.hold) {
      // Nothing is sent while the destination is held; the recipients wait out the retry
      // schedule like any deferral, with the reason for all to see in the queue listing.
      defer_unattempted(std::move(job), "not attempted: " + dst.hold->message,
                        "4.3.5");  // RFC 3463: system incorrectly configured
      co_return;
    }
    // The read test seam needs the whole content; real deliveries stream it from the spool
    // a window at a time.
    std::optional<std::string> content;
    std::unique_ptr<smtp::client::ContentSource> source;
    SpoolContentSource* streamed = nullptr;
    std::optional<Error> unreadable;
    if (opt.read_content) {
      auto whole = co_await read_whole_content(job.id);
      if (whole) {
        content = std::move(*whole);
        source = std::make_unique<smtp::client::StringContentSource>(*content);
      } else {
        unreadable = std::move(whole.error());
      }
    } else {
      auto opened = co_await SpoolContentSource::open(spool, job.id, opt.blocking);
      if (opened) {
        streamed = opened->get();
        source = std::move(*opened);
      } else {
        unreadable = std::move(opened.error());
      }
    }
    if (unreadable) {
      // A failed or partial read says nothing about the message: the copy in the spool may
      // well be intact (a transient EIO) and it is the only one. So it is deferred, never
      // quarantined from what was read; the retry schedule and the lifetime decide the rest.
      spdlog::error("message {}: cannot read it from the spool, deferred: {}", spool::format_id(job.id),
                    unreadable->describe());
      dst.process->add("read_errors");
      defer_unattempted(std::move(job),
                        "not attempted: cannot read the message from the spool: " + unreadable->describe(),
                        "4.3.0");  // RFC 3463: other or undefined mail system status
      co_return;
    }
    if (e.quarantined || stopping) {
      // Set aside by another destination's job while this one read, or the connector is
      // stopping: nothing is sent (the message stays as it was in the spool).
      co_await let_go(std::move(job));
      co_return;
    }
    std::optional<std::string> poison;
    std::optional<PoisonTrap> trap;
    if (!opt.poison_marker.empty()) trap.emplace(*source, opt.poison_marker);
    smtp::client::ContentSource& body = trap ? static_cast<smtp::client::ContentSource&>(*trap) : *source;
    // Anything that throws from here on is the connector's own failure on this (intact)
    // message, not the destination's answer: the message goes to quarantine and the worker
    // carries on.
    TransactionResult result;
    try {
      const Envelope env = e.env();
      result =
          co_await dst.transport->deliver(env, std::vector<std::size_t>(job.indices.begin(), job.indices.end()), body);
    } catch (const PoisonTrap::Found& ex) {
      poison = ex.what();
    } catch (const std::exception& ex) {
      poison = fmt::format("delivery failed inside the connector: {}", ex.what());
    }
    if (poison) {
      trap.reset();
      source.reset();
      co_await quarantine(std::move(job), *poison, std::move(content));
      co_return;
    }
    bool attempted = true;
    if (streamed && streamed->read_error()) {
      // The spool failed part-way: the client broke the connection before the end of the
      // data, so nothing was delivered, and the destination is not to blame.
      spdlog::error("message {}: reading it from the spool failed while it was sent, deferred: {}",
                    spool::format_id(job.id), streamed->read_error()->describe());
      dst.process->add("read_errors");
      result.status_without_reply = "4.3.0";
      attempted = false;
    }
    trap.reset();
    source.reset();
    // Recording the outcome (an fdatasync) runs apart, so this worker's connection can
    // carry the next message meanwhile; group commit batches the records.
    net::spawn_logged(io.get_executor(), complete(std::move(job), std::move(result), attempted), "deliver:" + dst.name);
  }

  // Runs `fn` where blocking work goes (QueueOptions::blocking), or on the I/O thread when
  // there is none. Pass a named function object (see net::run_blocking).
  template <typename F>
  net::awaitable<std::invoke_result_t<std::decay_t<F>&>> off_loop(F&& fn) {
    return net::run_blocking(opt.blocking ? opt.blocking : io.get_executor(), std::forward<F>(fn));
  }

  // The whole content of message `id`, from the test seam or the spool, read off the loop.
  net::awaitable<Expected<std::string>> read_whole_content(MessageId id) {
    auto work = [this, id]() -> Expected<std::string> {
      std::string content;
      Expected<void> read{};
      try {
        const auto sink = [&](std::string_view piece) { content.append(piece); };
        read = opt.read_content ? opt.read_content(id, sink) : spool.read_content(id, sink);
      } catch (const std::exception& ex) {
        read = fail(Error::transient_error(ErrorCode::kInternal, fmt::format("reading it failed: {}", ex.what())));
      }
      if (!read) return fail(read.error());
      return content;
    };
    co_return co_await off_loop(std::move(work));
  }

  // The job's recipients are deferred without anything having been sent: `reply` says why
  // (it is what the queue listing and a delay notice show), `status` is its RFC 3463 code.
  void defer_unattempted(Job job, const std::string& reply, std::string status) {
    TransactionResult r;
    r.status_without_reply = std::move(status);
    for (std::size_t i : job.indices)
      r.recipients.push_back({.index = i, .outcome = Outcome::kDeferred, .reply = reply});
    const std::string name = job.dest == kNoDestination ? std::string("queue") : "deliver:" + dests[job.dest].name;
    net::spawn_logged(io.get_executor(), complete(std::move(job), std::move(r), false), name);
  }

  // The job ends without an outcome of its own (its message was set aside).
  net::awaitable<void> let_go(Job job) {
    auto it = entries.find(job.id);
    if (it == entries.end()) co_return;
    Entry& e = it->second;
    for (std::size_t i : job.indices) e.set_busy(i, false);
    --e.jobs;
    if (finishable(e)) co_await finalize(job.id);
  }

  net::awaitable<void> unroutable(Job job) {
    TransactionResult r;
    const Envelope env = entries.at(job.id).env();
    for (std::size_t i : job.indices) {
      r.recipients.push_back(
          {.index = i,
           .outcome = Outcome::kFailed,
           .reply = fmt::format("550 5.1.2 no connected system has the domain of <{}>", env.recipients[i].address),
           .code = 550,
           .enhanced = "5.1.2"});
    }
    co_await complete(std::move(job), std::move(r));
  }

  dsn::RecipientReport report(const Envelope& env, std::size_t i, dsn::Action action, std::string status,
                              const RecipientResult& rr, const std::string& remote, std::int64_t now) const {
    dsn::RecipientReport rep = dsn::report_for(env.recipients[i], action, std::move(status));
    if (!remote.empty() && remote != "maildir") rep.remote_mta = "dns; " + host_of(remote);
    if (!rr.reply.empty()) rep.diagnostic = (rr.from_server ? "smtp; " : "x-bridgehead; ") + rr.reply;
    rep.last_attempt = now;
    return rep;
  }

  // `attempted`: the destination was really tried (so its answer, or silence, says something
  // about the destination's health).
  net::awaitable<void> complete(Job job, TransactionResult result, bool attempted = true) {
    ++recording;
    auto it = entries.find(job.id);
    if (it == entries.end()) {
      --recording;
      co_return;
    }
    Entry& e = it->second;
    Dest* dst = job.dest == kNoDestination ? nullptr : &dests[job.dest];
    const bool final_delivery = dst != nullptr && dst->transport->final_delivery();
    const std::int64_t now = unix_now();
    const Envelope env = e.env();

    dsn::Report rep = report_about(env);
    std::vector<RecipientState> changed;
    std::vector<std::size_t> reported;
    bool answered = false;
    for (const RecipientResult& rr : result.recipients) {
      const std::size_t i = rr.index;
      const AttemptResult one{.recipient = rr,
                              .final_delivery = final_delivery,
                              .dsn_relayed = result.dsn_relayed,
                              .status_without_reply = result.status_without_reply,
                              .remote = result.remote};
      Decision d = decide(env, e.states[i], one, opt.schedule, now);
      RecipientState& st = d.state;
      const Recipient& rcpt = env.recipients[i];
      if (rr.outcome == Outcome::kDelivered || rr.from_server) answered = true;
      const events::EventKind kind = d.verdict == Verdict::kDelivered  ? events::EventKind::kDelivered
                                     : d.verdict == Verdict::kDeferred ? events::EventKind::kDeferred
                                                                       : events::EventKind::kFailed;
      publish_event(kind, job.id, env, dst, rcpt.address, st.reply, {}, d.verdict == Verdict::kExpired);
      if (!d.notice && env.mail_from.empty() && st.status == RecipientStatus::kFailed) {
        spdlog::info("message {}: not reporting the failure for <{}>: the message is itself a bounce (null sender)",
                     spool::format_id(job.id), rcpt.address);
      }
      if (d.notice) {
        dsn::RecipientReport r = report(env, i, d.notice->action, std::move(d.notice->status), rr, result.remote, now);
        r.will_retry_until = d.notice->will_retry_until.value_or(0);
        rep.recipients.push_back(std::move(r));
        reported.push_back(changed.size());
      }
      changed.push_back(std::move(st));
    }
    if (dst && attempted) note_attempt(*dst, result, answered);

    // The DSN is made durable before the outcome is: a crash in between repeats the attempt
    // (and perhaps the DSN), never loses the report.
    if (!rep.recipients.empty()) {
      auto stored = co_await send_dsn(job.id, env, rep, now);
      if (!stored) {
        spdlog::error(
            "message {}: cannot queue the delivery status notification (retried without a new delivery "
            "attempt): {}",
            spool::format_id(job.id), stored.error().describe());
        dsn::Report later = rep;
        later.recipients.clear();
        for (std::size_t n = 0; n < reported.size(); ++n) {
          if (rep.recipients[n].action == dsn::Action::kDelayed) {
            // Nothing final happened: the delay notice is due again at the next attempt.
            changed[reported[n]].delay_notice_sent = false;
          } else {
            // The outcome stands (the next hop has the message, or refused it for good):
            // setting the recipient back would deliver it twice. Only the notice is retried.
            later.recipients.push_back(std::move(rep.recipients[n]));
          }
        }
        if (!later.recipients.empty()) notice_later(job.id, e, std::move(later));
      } else {
        publish_event(events::EventKind::kNoticeSent, job.id, env, dst, {}, {}, spool::format_id(*stored));
      }
    }
    // `e` stays valid across the awaits: the entry is only erased when no job holds it.
    for (const RecipientState& st : changed) {
      e.states[st.index] = st;
      e.set_busy(st.index, false);
    }
    // Leaving the spool right after this job: its record would be redundant. Otherwise it
    // must be journaled, so a restart does not try a delivered recipient again.
    const bool leaving = e.jobs == 1 && !e.pending_notice && (e.quarantined || all_final(e));
    if (!leaving) {
      auto start = [this, id = job.id, states = std::move(changed)](spool::Completion<void> done) mutable {
        spool.record(id, std::move(states), std::move(done));
      };
      auto recorded = co_await net::await_completion<void>(std::move(start));
      if (!recorded && recorded.error().code != ErrorCode::kNotFound) {
        // The outcome stays in memory; after a crash the attempt would simply be repeated.
        spdlog::error("message {}: cannot record delivery state: {}", spool::format_id(job.id),
                      recorded.error().describe());
      }
    }
    --e.jobs;
    // Finished even while stopping: skipping the record above is only safe if the finish
    // follows.
    if (finishable(e)) {
      co_await finalize(job.id);
    } else {
      schedule(job.id);
    }
    --recording;
  }

  void note_attempt(Dest& dst, const TransactionResult& result, bool answered) {
    if (answered) {
      if (dst.troubled) {
        dst.troubled = false;
        dst.process->recover("delivering again");
      }
      return;
    }
    if (result.recipients.empty() || result.recipients.front().outcome != Outcome::kDeferred) return;
    const std::string why = escape_control(result.recipients.front().reply);
    dst.troubled = true;
    dst.last_error = why;
    dst.process->report_error(
        status::ProcessState::kDegraded,
        Error::transient_error(ErrorCode::kUnavailable,
                               fmt::format("cannot deliver to {}: {}", dst.transport->describe(), why),
                               fmt::format("mail for {} waits in the queue and is retried automatically; check that "
                                           "{} is up and reachable",
                                           dst.name, dst.transport->describe())));
  }

  // Queues a report about message `id` (its envelope `original_env`); `original` is its
  // content when the spool no longer has it (a quarantined message). Returns the notice's id.
  net::awaitable<Expected<MessageId>> send_dsn(MessageId id, const Envelope& original_env, dsn::Report rep,
                                               std::int64_t now, const std::string* original_content = nullptr) {
    // Reading the original and composing (a MIME build of up to the size limit) are
    // blocking work.
    auto compose = [this, id, &rep, now, original_content]() -> std::pair<std::string, bool> {
      std::string original;
      if (original_content != nullptr) {
        original = *original_content;
      } else if (auto read = spool.read_content(id, [&](std::string_view p) { original.append(p); }); !read) {
        original.clear();  // the report still goes out, without the returned message
      }
      std::string text = dsn::compose(rep, original, now);
      const bool eight_bit = convert::has_8bit(text);
      return {std::move(text), eight_bit};
    };
    // Named, not bound: GCC 12 mishandles structured bindings of a co_await's result.
    auto composed = co_await off_loop(std::move(compose));
    std::string text = std::move(composed.first);
    Envelope env;
    env.recipients.push_back(Recipient{original_env.mail_from, kNotifyNone, ""});
    env.body = composed.second ? BodyType::k8BitMime : BodyType::k7Bit;
    env.received_at = now;
    env.route_system = original_env.ingress_system;
    env.client_address = "bridgehead";
    if (opt.notice_failures > 0) {
      --opt.notice_failures;
      co_return fail(Error::transient_error(ErrorCode::kDiskFull, "cannot queue the notice (fault injection)"));
    }
    const MessageId nid = spool.begin_message();
    auto start = [this, nid, text = std::move(text), env](spool::Completion<void> done) mutable {
      spool.commit(nid, std::move(text), std::move(env), std::move(done));
    };
    auto committed = co_await net::await_completion<void>(std::move(start));
    if (!committed) {
      spool.abort(nid);
      co_return fail(committed.error());
    }
    spdlog::info("message {}: queued delivery status notification {} to <{}>", spool::format_id(id),
                 spool::format_id(nid), original_env.mail_from);
    add(nid, env, {});
    publish_queued(nid, env);
    co_return nid;
  }

  // Keeps `rep` on the entry and retries queueing it until it is queued.
  void notice_later(MessageId id, Entry& e, dsn::Report rep) {
    if (e.pending_notice) {
      for (auto& r : rep.recipients) e.pending_notice->recipients.push_back(std::move(r));
      return;  // its retry is under way already
    }
    e.pending_notice = std::make_unique<dsn::Report>(std::move(rep));
    net::spawn_logged(io.get_executor(), retry_notice(id), "queue: retrying a delivery status notification");
  }

  net::awaitable<void> retry_notice(MessageId id) {
    const auto& delays = opt.schedule.options().delays;
    const auto pause = std::min<std::chrono::seconds>(std::chrono::seconds(60),
                                                      delays.empty() ? std::chrono::seconds(60) : delays.front());
    asio::steady_timer wait(io);
    while (!stopping) {
      wait.expires_after(pause);
      co_await wait.async_wait(net::use_nothrow);
      auto it = entries.find(id);
      // The entry cannot go away while the notice is pending (finishable() says no).
      if (stopping || it == entries.end() || !it->second.pending_notice) co_return;
      Entry& e = it->second;
      const std::size_t taken = e.pending_notice->recipients.size();
      ++recording;
      const Envelope env = e.env();
      auto stored = co_await send_dsn(id, env, *e.pending_notice, unix_now());
      --recording;
      if (!stored) {
        spdlog::error("message {}: still cannot queue the delivery status notification (retrying in {}s): {}",
                      spool::format_id(id), pause.count(), stored.error().describe());
        continue;
      }
      auto& pending = e.pending_notice->recipients;
      pending.erase(pending.begin(), pending.begin() + static_cast<std::ptrdiff_t>(taken));
      if (!pending.empty()) continue;  // more came in meanwhile
      e.pending_notice.reset();
      if (finishable(e)) {
        co_await finalize(id);
      } else {
        schedule(id);
      }
      co_return;
    }
  }

  // `content` is the intact copy read from the spool, or nullopt when it streamed and is
  // read whole again here; a read that fails defers the message (a partial copy is never
  // what is set aside).
  net::awaitable<void> quarantine(Job job, std::string reason, std::optional<std::string> content) {
    auto it = entries.find(job.id);
    if (it == entries.end()) co_return;
    Entry& e = it->second;
    const std::string name = spool::format_id(job.id);
    Dest& dst = dests[job.dest];
    if (!e.quarantined && quarantining.contains(job.id)) {
      // Another destination's job is setting it aside now; that one finalizes it.
      co_await let_go(std::move(job));
      co_return;
    }
    if (!e.quarantined) {
      quarantining.insert(job.id);
      if (!content) {
        auto whole = co_await read_whole_content(job.id);
        if (!whole) {
          quarantining.erase(job.id);
          spdlog::error("message {}: cannot be processed ({}) and cannot be read to set it aside, deferred: {}", name,
                        reason, whole.error().describe());
          dst.process->add("read_errors");
          defer_unattempted(std::move(job),
                            fmt::format("not delivered: {}; could not read it to quarantine it: {}", reason,
                                        whole.error().describe()),
                            "4.3.0");
          co_return;
        }
        content = std::move(*whole);
      }
      QuarantineRecord rec;
      rec.id = name;
      rec.reason = reason;
      rec.quarantined_at = unix_now();
      rec.envelope = e.env();
      rec.size = content->size();
      for (const auto& st : e.states) rec.status.push_back(st.status);
      // Every file is durable (and its directory entry) before the message may leave the
      // spool: until then the spool's copy is the only one. Files and fsyncs: off the loop.
      auto put = [this, &rec, &content]() -> std::pair<Expected<void>, std::size_t> {
        auto r = store.put(rec, *content);
        return {std::move(r), store.count()};
      };
      auto stored = co_await off_loop(std::move(put));
      const Expected<void>& kept = stored.first;
      quarantining.erase(job.id);
      quarantine_count = stored.second;
      if (!kept) {
        spdlog::error(
            "message {}: cannot be processed ({}) and cannot be set aside either, so it stays in the "
            "spool and is tried again: {}",
            name, reason, kept.error().describe());
        dst.process->report_error(
            status::ProcessState::kDegraded,
            Error::transient_error(
                kept.error().code,
                fmt::format("message {} cannot be processed ({}) nor quarantined: {}", name, reason,
                            kept.error().message),
                fmt::format("it stays in the queue and is tried again; make {} writable", store.dir().string())));
        defer_unattempted(
            std::move(job),
            fmt::format("not delivered: {}; could not quarantine it: {}", reason, kept.error().describe()), "4.3.0");
        co_return;
      }
      e.quarantined = std::make_unique<QuarantineRecord>(std::move(rec));
      spdlog::error("message {}: quarantined: {}", name, reason);
      publish_event(events::EventKind::kQuarantined, job.id, e.quarantined->envelope, &dst, {}, {}, reason);
      dst.process->report_error(
          status::ProcessState::kDegraded,
          Error::permanent(ErrorCode::kInternal, fmt::format("message {} quarantined: {}", name, reason),
                           fmt::format("the rest of the queue goes on; the message and why are in {} and {}; after "
                                       "fixing the cause, `bridgehead quarantine release {}` puts it back in the queue",
                                       store.eml_path(name).string(), store.note_path(name).string(), name)));
    }
    co_await let_go(std::move(job));
  }

  // Every recipient is final (or the message is quarantined): the message leaves the spool.
  net::awaitable<void> finalize(MessageId id) {
    auto it = entries.find(id);
    if (it == entries.end() || it->second.finishing) co_return;
    it->second.finishing = true;
    ++recording;
    Expected<void> finished{};
    if (auto& q = it->second.quarantined) {
      // The record learns where each recipient ended (another destination's job may have
      // delivered meanwhile), so a release sends it only to those who lack it. Durable
      // before the spool forgets the message.
      for (std::size_t i = 0; i < q->status.size() && i < it->second.states.size(); ++i) {
        q->status[i] = it->second.states[i].status;
      }
      auto update = [this, &q] { return store.update(*q); };
      finished = co_await off_loop(std::move(update));
    }
    if (finished) {
      auto start = [this, id](spool::Completion<void> done) { spool.finish(id, std::move(done)); };
      finished = co_await net::await_completion<void>(std::move(start));
    }
    --recording;
    it = entries.find(id);
    if (it == entries.end()) co_return;
    if (finished) {
      entries.erase(it);
      co_return;
    }
    spdlog::error("message {}: cannot mark it finished in the spool (retrying in 30s): {}", spool::format_id(id),
                  finished.error().describe());
    asio::steady_timer pause(io, std::chrono::seconds(30));
    co_await pause.async_wait(net::use_nothrow);
    it = entries.find(id);
    if (it == entries.end()) co_return;
    it->second.finishing = false;
    if (!stopping) co_await finalize(id);
  }

  // ---------------------------------------------------------------- quarantine commands

  // Takes a message out of quarantine; with how many are left (both blocking).
  std::pair<Expected<void>, std::size_t> remove_counted(const std::string& id) {
    auto r = store.remove(id);
    return {std::move(r), store.count()};
  }

  Expected<void> claim(const std::string& id) {
    if (!quarantine_busy.insert(id).second) {
      return fail(Error::permanent(ErrorCode::kInvalidArgument,
                                   fmt::format("quarantined message {} is being released or deleted already", id),
                                   "wait for that command to finish, then see `bridgehead quarantine list`"));
    }
    return {};
  }

  // Puts a quarantined message back in the queue for the recipients that do not have it
  // yet, as a new spool message; the quarantine files go only once that one is committed.
  net::awaitable<Expected<nlohmann::json>> release(std::string id) {
    auto get = [this, &id] { return store.get(id); };
    auto rec = co_await off_loop(std::move(get));
    if (!rec) co_return fail(rec.error());
    Envelope env = rec->envelope;
    env.recipients.clear();
    nlohmann::json released = nlohmann::json::array();
    for (std::size_t i = 0; i < rec->envelope.recipients.size(); ++i) {
      if (is_final(rec->status[i])) continue;
      env.recipients.push_back(rec->envelope.recipients[i]);
      released.push_back(rec->envelope.recipients[i].address);
    }
    if (env.recipients.empty()) {
      co_return fail(Error::permanent(
          ErrorCode::kInvalidArgument,
          fmt::format("quarantined message {} has no recipient left to deliver to (each was delivered or failed)", id),
          fmt::format("remove it with `bridgehead quarantine delete {}`", id)));
    }
    auto read = [this, &id] { return store.content(id); };
    auto content = co_await off_loop(std::move(read));
    if (!content) co_return fail(content.error());
    // Accepted again now, by the operator: the queue lifetime starts over.
    env.received_at = unix_now();
    const MessageId nid = spool.begin_message();
    auto start = [this, nid, text = std::move(*content), env](spool::Completion<void> done) mutable {
      spool.commit(nid, std::move(text), std::move(env), std::move(done));
    };
    auto committed = co_await net::await_completion<void>(std::move(start));
    if (!committed) {
      spool.abort(nid);
      co_return fail(
          Error{committed.error().code == ErrorCode::kUnavailable ? ErrorCode::kIo : committed.error().code,
                committed.error().severity,
                fmt::format("cannot put quarantined message {} back in the queue: {}", id, committed.error().message),
                "it stays in quarantine; run the release again once the spool can be written"});
    }
    add(nid, env, {});
    publish_queued(nid, env);
    const std::string queued_as = spool::format_id(nid);
    spdlog::info("message {}: released from quarantine, queued again as {} for {}", id, queued_as, released.dump());
    auto take_out = [this, &id] { return remove_counted(id); };
    auto taken = co_await off_loop(std::move(take_out));
    const Expected<void>& removed = taken.first;
    quarantine_count = taken.second;
    if (!removed) {
      co_return fail(Error::permanent(
          removed.error().code,
          fmt::format("message {} is queued again as {}, but its quarantine files remain: {}", id, queued_as,
                      removed.error().message),
          fmt::format("remove {}, {} and {} by hand so it is not released twice", store.record_path(id).string(),
                      store.eml_path(id).string(), store.note_path(id).string())));
    }
    co_return nlohmann::json{{"released", id}, {"queued_as", queued_as}, {"recipients", std::move(released)}};
  }

  // Deletes a quarantined message; its sender learns of the failure for every recipient
  // that did not get it, as NOTIFY asks (the notice is durable before the files go).
  net::awaitable<Expected<nlohmann::json>> remove_quarantined(std::string id) {
    auto get = [this, &id] { return store.get(id); };
    auto rec = co_await off_loop(std::move(get));
    if (!rec) co_return fail(rec.error());
    const std::int64_t now = unix_now();
    const Envelope& env = rec->envelope;
    dsn::Report rep = report_about(env);
    for (std::size_t i = 0; i < env.recipients.size(); ++i) {
      if (is_final(rec->status[i]) || !dsn::needs_dsn(env, env.recipients[i], dsn::Action::kFailed)) continue;
      // RFC 3463 5.3.0: the receiving mail system itself could not process the message.
      auto r = dsn::report_for(env.recipients[i], dsn::Action::kFailed, "5.3.0");
      r.diagnostic = "x-bridgehead; the connector could not process the message (" + rec->reason +
                     ") and an administrator deleted it";
      r.last_attempt = now;
      rep.recipients.push_back(std::move(r));
    }
    nlohmann::json notice = nullptr;
    if (!rep.recipients.empty()) {
      auto read = [this, &id] { return store.content(id); };
      auto content = co_await off_loop(std::move(read));
      if (!content) co_return fail(content.error());
      const auto parsed = spool::parse_id(id);
      auto sent = co_await send_dsn(parsed ? *parsed : 0, env, std::move(rep), now, &*content);
      if (!sent) {
        co_return fail(Error{
            sent.error().code == ErrorCode::kUnavailable ? ErrorCode::kIo : sent.error().code, sent.error().severity,
            fmt::format("cannot queue the failure notice for quarantined message {}: {}", id, sent.error().message),
            "it stays in quarantine; run the delete again once the spool can be written"});
      }
      notice = spool::format_id(*sent);
    }
    auto take_out = [this, &id] { return remove_counted(id); };
    auto taken = co_await off_loop(std::move(take_out));
    const Expected<void>& removed = taken.first;
    quarantine_count = taken.second;
    if (!removed) {
      co_return fail(Error::permanent(
          removed.error().code, fmt::format("cannot delete quarantined message {}: {}", id, removed.error().message),
          removed.error().remedy));
    }
    spdlog::info("message {}: deleted from quarantine{}", id,
                 notice.is_null() ? std::string(", no failure notice asked for")
                                  : ", failure notice " + notice.get<std::string>() + " queued");
    co_return nlohmann::json{{"deleted", id}, {"notice", std::move(notice)}};
  }

  // The head of a message (up to the empty line), bounded: enough to recognize it.
  static std::string head_of(const std::string& content) {
    constexpr std::size_t kMaxHead = 32 * 1024;
    std::size_t end = content.find("\r\n\r\n");
    end = end == std::string::npos ? content.size() : end + 2;
    return content.substr(0, std::min(end, kMaxHead));
  }

  net::awaitable<Expected<nlohmann::json>> quarantine_request(nlohmann::json request) {
    const std::string action = request.value("action", "");
    if (action == "list") {
      auto read_all = [this] { return store.list(); };
      auto all = co_await off_loop(std::move(read_all));
      if (!all) co_return fail(all.error());
      nlohmann::json list = nlohmann::json::array();
      for (const auto& r : *all) {
        auto j = r.to_json();
        j.erase("envelope");
        list.push_back(std::move(j));
      }
      co_return nlohmann::json{{"dir", store.dir().string()}, {"messages", std::move(list)}};
    }
    const std::string id = request.value("id", "");
    if (action == "show") {
      auto get = [this, &id] { return std::make_pair(store.get(id), store.content(id)); };
      auto got = co_await off_loop(std::move(get));
      auto& rec = got.first;
      auto& content = got.second;
      if (!rec) co_return fail(rec.error());
      if (!content) co_return fail(content.error());
      auto j = rec->to_json();
      j["header"] = head_of(*content);
      j["eml"] = store.eml_path(id).string();
      co_return j;
    }
    if (action == "release" || action == "delete") {
      if (auto parsed = spool::parse_id(id); parsed && entries.contains(*parsed)) {
        // Its record is rewritten when it leaves the spool; acting before that would undo this.
        co_return fail(Error::transient_error(
            ErrorCode::kLimit,
            fmt::format("quarantined message {} is still leaving the queue (a delivery to another "
                        "system is under way)",
                        id),
            fmt::format("try `bridgehead quarantine {} {}` again in a minute", action, id)));
      }
      if (auto ok = claim(id); !ok) co_return fail(ok.error());
      // Not a conditional expression: GCC 12 destroys the result of a co_await inside ?: twice.
      Expected<nlohmann::json> r;
      if (action == "release") {
        r = co_await release(id);
      } else {
        r = co_await remove_quarantined(id);
      }
      quarantine_busy.erase(id);
      co_return r;
    }
    co_return fail(Error::permanent(ErrorCode::kInvalidArgument,
                                    fmt::format("unknown quarantine action \"{}\"", action),
                                    "use list, show, release or delete"));
  }

  void publish() {
    const std::int64_t now = unix_now();
    struct Tally {
      std::size_t waiting = 0, deferred = 0;
      std::int64_t next = kNever, oldest = kNever;
    };
    std::vector<Tally> t(dests.size());
    for (const auto& [id, e] : entries) {
      for (std::size_t i = 0; i < e.states.size(); ++i) {
        if (is_final(e.states[i].status) || e.dest(i) == kNoDestination) continue;
        Tally& x = t[e.dest(i)];
        ++x.waiting;
        x.oldest = std::min(x.oldest, e.received_at);
        if (e.states[i].status == RecipientStatus::kDeferred && !e.busy(i)) {
          ++x.deferred;
          x.next = std::min(x.next, e.states[i].next_attempt);
        }
      }
    }
    for (std::size_t d = 0; d < dests.size(); ++d) {
      Dest& dst = dests[d];
      const Tally& x = t[d];
      const std::size_t active = dst.in_flight + dst.ready.size();
      std::string activity;
      if (dst.hold && !stopping) {
        activity = fmt::format("{}; {} recipient{} waiting", dst.hold_activity, x.waiting, x.waiting == 1 ? "" : "s");
      } else if (stopping) {
        activity = fmt::format("stopping, {} attempt{} under way", dst.in_flight, dst.in_flight == 1 ? "" : "s");
      } else if (active > 0) {
        activity =
            fmt::format("delivering {} message{} to {}", active, active == 1 ? "" : "s", dst.transport->describe());
      } else if (x.deferred > 0) {
        activity = fmt::format("waiting: {} deferred, next retry {}", x.deferred, clock_time(x.next));
        if (!dst.last_error.empty() && dst.troubled) activity += ", last error: " + dst.last_error;
      } else {
        activity = fmt::format("idle; delivers to {}", dst.transport->describe());
      }
      dst.process->set_activity(std::move(activity));
      dst.process->set_gauge("queued_recipients", x.waiting);
      dst.process->set_detail("oldest",
                              x.oldest == kNever ? "none" : human_age(std::max<std::int64_t>(0, now - x.oldest)));
      dst.process->set_detail("target", dst.transport->describe());
    }
    if (auto& q = opt.quarantine_process) {
      q->set_gauge("messages", quarantine_count);
      q->set_activity(quarantine_count == 0
                          ? fmt::format("empty ({})", store.dir().string())
                          : fmt::format("{} message{} set aside in {}; see `bridgehead quarantine list`",
                                        quarantine_count, quarantine_count == 1 ? "" : "s", store.dir().string()));
    }
  }
};

QueueManager::QueueManager(asio::io_context& io, spool::Spool& spool, QueueOptions options,
                           std::vector<DestinationSpec> destinations)
    : impl_(std::make_unique<Impl>(io, spool, std::move(options))) {
  for (auto& d : destinations) {
    Dest dst;
    dst.name = std::move(d.name);
    dst.domains = std::move(d.domains);
    dst.transport = std::move(d.transport);
    dst.concurrency = std::max(1u, d.concurrency);
    dst.process = std::move(d.process);
    impl_->dests.push_back(std::move(dst));
  }
  impl_->subscribe();
}

QueueManager::~QueueManager() = default;

void QueueManager::start() {
  for (auto& d : impl_->dests) d.process->set_state(status::ProcessState::kRunning, "starting");
  if (impl_->opt.quarantine_process) impl_->opt.quarantine_process->set_state(status::ProcessState::kRunning, "");
  if (const auto swept = durable::remove_interrupted_writes(impl_->store.dir()); swept > 0) {
    spdlog::info("quarantine {}: removed {} temporary file{} of writes a crash interrupted",
                 impl_->store.dir().string(), swept, swept == 1 ? "" : "s");
  }
  impl_->quarantine_count = impl_->store.count();
  // A page at a time: the whole backlog decoded at once would double the memory a large
  // queue needs, just for the moment of the takeover.
  spool::MessageId after = 0;
  for (;;) {
    auto page = impl_->spool.queued_after(after, 1024);
    if (page.empty()) break;
    after = page.back().id;
    for (auto& m : page) impl_->add(m.id, m.envelope, std::move(m.recipients));
  }
  publish();
}

void QueueManager::enqueue(spool::MessageId id, const Envelope& envelope) {
  impl_->add(id, envelope, {});
  impl_->publish_queued(id, envelope);
}

void QueueManager::hold(const std::string& destination, const Error& why, std::string activity) {
  for (auto& d : impl_->dests) {
    if (d.name != destination) continue;
    d.hold = why;
    d.hold_activity = std::move(activity);
    d.process->report_error(status::ProcessState::kError, why);
  }
  publish();
}

void QueueManager::resume(const std::string& destination) {
  auto& m = *impl_;
  for (std::size_t d = 0; d < m.dests.size(); ++d) {
    Dest& dst = m.dests[d];
    if (dst.name != destination || !dst.hold) continue;
    dst.hold.reset();
    dst.hold_activity.clear();
    dst.process->recover("delivering again");
    // Everything deferred by the hold (and any other deferral of this destination) is due now.
    const std::int64_t now = unix_now();
    std::vector<MessageId> due;
    for (auto& [id, e] : m.entries) {
      bool touched = false;
      for (std::size_t i = 0; i < e.states.size(); ++i) {
        if (e.dest(i) != d || e.busy(i) || e.states[i].status != RecipientStatus::kDeferred) continue;
        e.states[i].next_attempt = now;
        touched = true;
      }
      if (touched) due.push_back(id);
    }
    for (MessageId id : due) m.schedule(id);
  }
  publish();
}

bool QueueManager::held(const std::string& destination) const {
  for (const auto& d : impl_->dests) {
    if (d.name == destination) return d.hold.has_value();
  }
  return false;
}

void QueueManager::stop() {
  impl_->stopping = true;
  impl_->timer.cancel();
  for (auto& d : impl_->dests) d.ready.clear();
  publish();
}

std::size_t QueueManager::in_flight() const {
  std::size_t n = impl_->recording;
  for (const auto& d : impl_->dests) n += d.in_flight;
  return n;
}

void QueueManager::publish() { impl_->publish(); }

nlohmann::json QueueManager::listing() const {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& m : impl_->spool.queued()) {
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

net::awaitable<Expected<nlohmann::json>> QueueManager::quarantine_request(nlohmann::json request) {
  return impl_->quarantine_request(std::move(request));
}

}  // namespace bridgehead::queue
