// The queue manager's scheduling logic against a real spool and scripted destinations (the
// fake transports are fault injection: they answer what a test needs, when it needs it).
// The wire protocols, real peers and DSN parsing by an independent parser are covered by the
// integration tests (tests/integration/test_mail_flow*.py).
#include "queue/queue_manager.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <optional>
#include <sstream>

#include <nlohmann/json.hpp>

#include "temp_dir.hpp"

namespace bridgehead::queue {
namespace {

namespace asio = net::asio;
using test_support::TempDir;

struct Script {
  /// The answer for `address` at its `attempt` (1, 2, ...); default: delivered.
  std::function<RecipientResult(const std::string& address, int attempt)> answer;
  std::chrono::milliseconds delay{0};
  bool offers_dsn = false;
  bool final_delivery = false;
  std::vector<std::pair<std::vector<std::string>, std::string>> calls;  // recipients, content
  std::map<std::string, int> attempts;
  int in_flight = 0;
  int max_in_flight = 0;
  /// When set, deliver() throws this (a bug inside the connector, as a conversion would).
  std::string throws;
};

// The server's one-line reply "451 4.3.0 try later" as the client reports it.
RecipientResult server_said(Outcome outcome, const std::string& line) {
  smtp::client::ServerReply reply;
  reply.code = std::stoi(line.substr(0, 3));
  reply.lines = {line.size() > 4 ? line.substr(4) : std::string()};
  return RecipientResult::from_reply(0, outcome, reply);
}
RecipientResult ok() { return server_said(Outcome::kDelivered, "250 2.0.0 ok"); }
RecipientResult temp(const std::string& reply = "451 4.3.0 try later") { return server_said(Outcome::kDeferred, reply); }
RecipientResult perm(const std::string& reply = "550 5.1.1 no such user") { return server_said(Outcome::kFailed, reply); }

class ScriptedTransport final : public Transport {
 public:
  ScriptedTransport(asio::any_io_executor ex, Script& s) : ex_(std::move(ex)), s_(s) {}
  std::string describe() const override { return "scripted"; }
  bool final_delivery() const override { return s_.final_delivery; }
  net::awaitable<TransactionResult> deliver(const Envelope& env, std::vector<std::size_t> indices,
                                            smtp::client::ContentSource& source) override {
    ++s_.in_flight;
    s_.max_in_flight = std::max(s_.max_in_flight, s_.in_flight);
    std::vector<std::string> rcpts;
    for (auto i : indices) rcpts.push_back(env.recipients[i].address);
    std::optional<Expected<std::string>> read;
    try {
      read = co_await smtp::client::read_whole(source);
    } catch (...) {
      --s_.in_flight;  // the poison trap of QueueOptions::poison_marker
      throw;
    }
    auto& content = *read;
    if (!content) {
      --s_.in_flight;
      TransactionResult r;
      for (auto i : indices) {
        r.recipients.push_back({.index = i, .outcome = Outcome::kDeferred, .reply = content.error().describe()});
      }
      co_return r;
    }
    s_.calls.emplace_back(rcpts, std::move(*content));
    if (!s_.throws.empty()) {
      --s_.in_flight;
      throw std::runtime_error(s_.throws);
    }
    if (s_.delay.count() > 0) {
      asio::steady_timer t(ex_, s_.delay);
      co_await t.async_wait(net::use_nothrow);
    }
    TransactionResult r;
    r.remote = "127.0.0.1:1";
    r.dsn_relayed = s_.offers_dsn;
    r.reusable = true;
    for (auto i : indices) {
      const auto& a = env.recipients[i].address;
      RecipientResult rr = s_.answer ? s_.answer(a, ++s_.attempts[a]) : ok();
      rr.index = i;
      r.recipients.push_back(rr);
    }
    --s_.in_flight;
    co_return r;
  }

 private:
  asio::any_io_executor ex_;
  Script& s_;
};

Envelope envelope(std::string from, std::vector<std::string> to, std::uint8_t notify = kNotifyNone) {
  Envelope e;
  e.mail_from = std::move(from);
  for (auto& t : to) e.recipients.push_back(Recipient{t, notify, ""});
  e.ingress_system = e.mail_from.ends_with("@notes.example") ? "notes" : "exchange";
  e.received_at = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  return e;
}

class QueueTest : public ::testing::Test {
 protected:
  void open(RetryOptions retry = fast_retry(), unsigned concurrency = 4, std::string poison = {}) {
    auto sp = spool::Spool::open({.dir = dir_.path() / "spool"});
    ASSERT_TRUE(sp) << sp.error().describe();
    spool_ = std::move(*sp);
    auto schedule = RetrySchedule::create(retry);
    ASSERT_TRUE(schedule) << schedule.error().describe();
    QueueOptions o{.hostname = "bridgehead.test", .schedule = *schedule, .quarantine_dir = dir_.path() / "quarantine",
                   .quarantine_process = registry_->add("quarantine"),
                   .blocking = pool_ ? pool_->get_executor() : asio::any_io_executor(), .poison_marker = std::move(poison), .read_content = read_, .notice_failures = notice_failures_};
    std::vector<DestinationSpec> d;
    d.push_back({"exchange", {"exchange.example"}, std::make_unique<ScriptedTransport>(io_.get_executor(), exchange_),
                 concurrency, registry_->add("deliver:exchange")});
    d.push_back({"notes", {"notes.example"}, std::make_unique<ScriptedTransport>(io_.get_executor(), notes_),
                 concurrency, registry_->add("deliver:notes")});
    qm_ = std::make_unique<QueueManager>(io_, *spool_, std::move(o), std::move(d));
    qm_->start();
  }
  void reopen(RetryOptions retry = fast_retry()) {
    qm_.reset();
    spool_.reset();
    io_.restart();
    registry_ = std::make_unique<status::ProcessRegistry>();
    open(retry);
  }
  static RetryOptions fast_retry() {
    RetryOptions r;
    r.delays = {std::chrono::seconds(1)};
    r.lifetime = std::chrono::hours(1);
    r.delay_notice_after = std::chrono::seconds(0);
    return r;
  }

  spool::MessageId submit(const Envelope& env, std::string content = "Subject: t\r\n\r\nhello\r\n") {
    const auto id = spool_->begin_message();
    std::promise<Expected<void>> p;
    spool_->commit(id, std::move(content), env, [&](Expected<void> r) { p.set_value(std::move(r)); });
    auto r = p.get_future().get();
    EXPECT_TRUE(r) << r.error().describe();
    qm_->enqueue(id, env);
    return id;
  }

  // Runs the event loop until `done` holds (or fails the test after `limit`).
  void run_until(const std::function<bool()>& done, std::chrono::seconds limit = std::chrono::seconds(20)) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done()) {
      ASSERT_LT(std::chrono::steady_clock::now(), deadline)
          << "timed out; queued " << spool_->queued().size() << ", in flight " << qm_->in_flight()
          << ", calls to exchange " << exchange_.calls.size() << ", to notes " << notes_.calls.size();
      io_.run_for(std::chrono::milliseconds(10));
    }
  }
  bool spool_empty() const { return spool_->queued().empty() && qm_->in_flight() == 0; }

  TempDir dir_;
  asio::io_context io_;
  // The daemon's listeners always keep its loop busy; here an idle queue must not stop it.
  asio::executor_work_guard<asio::io_context::executor_type> busy_ = asio::make_work_guard(io_);
  std::unique_ptr<status::ProcessRegistry> registry_ = std::make_unique<status::ProcessRegistry>();
  Script exchange_, notes_;
  std::function<Expected<void>(spool::MessageId, const std::function<void(std::string_view)>&)> read_;
  unsigned notice_failures_ = 0;
  std::unique_ptr<spool::Spool> spool_;
  std::unique_ptr<QueueManager> qm_;
  // Set before open() to run the blocking work on worker threads as the daemon does.
  // Declared last: joined first, while the queue manager its work refers to still exists.
  std::optional<asio::thread_pool> pool_;
};

TEST_F(QueueTest, DeliveredMessageLeavesTheSpool) {
  open();
  submit(envelope("alice@exchange.example", {"carol@notes.example"}), "Subject: x\r\n\r\nbody\r\n");
  run_until([&] { return spool_empty(); });
  ASSERT_EQ(notes_.calls.size(), 1u);
  EXPECT_EQ(notes_.calls[0].first, std::vector<std::string>{"carol@notes.example"});
  EXPECT_EQ(notes_.calls[0].second, "Subject: x\r\n\r\nbody\r\n");
  EXPECT_TRUE(exchange_.calls.empty()) << "no DSN without NOTIFY=SUCCESS";
}

TEST_F(QueueTest, RecipientsAreRoutedByDomainToTheirSystem) {
  open();
  submit(envelope("alice@exchange.example", {"carol@notes.example", "bob@exchange.example"}));
  run_until([&] { return spool_empty(); });
  ASSERT_EQ(notes_.calls.size(), 1u);
  ASSERT_EQ(exchange_.calls.size(), 1u);
  EXPECT_EQ(exchange_.calls[0].first, std::vector<std::string>{"bob@exchange.example"});
}

TEST_F(QueueTest, PermanentFailureOfOneRecipientReportsOnlyThatOne) {
  notes_.answer = [](const std::string& a, int) { return a == "dave@notes.example" ? perm() : ok(); };
  open();
  submit(envelope("alice@exchange.example", {"carol@notes.example", "dave@notes.example", "gina@notes.example"}));
  run_until([&] { return spool_empty() && exchange_.calls.size() == 1; });
  ASSERT_EQ(exchange_.calls.size(), 1u) << "the DSN goes to the sender's system";
  EXPECT_EQ(exchange_.calls[0].first, std::vector<std::string>{"alice@exchange.example"});
  const std::string& dsn = exchange_.calls[0].second;
  EXPECT_NE(dsn.find("Final-Recipient: rfc822; dave@notes.example"), std::string::npos) << dsn;
  EXPECT_EQ(dsn.find("Final-Recipient: rfc822; carol@notes.example"), std::string::npos);
  EXPECT_EQ(dsn.find("Final-Recipient: rfc822; gina@notes.example"), std::string::npos);
  EXPECT_NE(dsn.find("Status: 5.1.1"), std::string::npos);
  EXPECT_NE(dsn.find("Diagnostic-Code: smtp; 550 5.1.1 no such user"), std::string::npos);
  auto p = registry_->snapshot();
  auto notes = std::find_if(p.begin(), p.end(), [](auto& s) { return s.name == "deliver:notes"; });
  EXPECT_EQ(notes->value("delivered"), 2u);
  EXPECT_EQ(notes->value("failed"), 1u);
  EXPECT_EQ(notes->value("dsn_sent"), 1u);
}

TEST_F(QueueTest, TemporaryFailureIsJournaledThenRetried) {
  notes_.answer = [](const std::string&, int attempt) { return attempt == 1 ? temp() : ok(); };
  open();
  const auto id = submit(envelope("alice@exchange.example", {"carol@notes.example"}));
  run_until([&] { return notes_.calls.size() == 1 && qm_->in_flight() == 0; });
  auto q = spool_->queued();
  ASSERT_EQ(q.size(), 1u);
  EXPECT_EQ(q[0].id, id);
  EXPECT_EQ(q[0].recipients[0].status, spool::RecipientStatus::kDeferred);
  EXPECT_EQ(q[0].recipients[0].attempts, 1u);
  EXPECT_EQ(q[0].recipients[0].reply, "451 4.3.0 try later");
  run_until([&] { return spool_empty(); });
  EXPECT_EQ(notes_.calls.size(), 2u);
  EXPECT_TRUE(exchange_.calls.empty()) << "no delay notice was configured";
}

TEST_F(QueueTest, DeferredStateSurvivesARestart) {
  notes_.answer = [](const std::string&, int) { return temp(); };
  RetryOptions slow = fast_retry();
  slow.delays = {std::chrono::hours(1)};
  open(slow);
  submit(envelope("alice@exchange.example", {"carol@notes.example"}));
  run_until([&] { return notes_.calls.size() == 1 && qm_->in_flight() == 0; });
  reopen(slow);
  io_.run_for(std::chrono::milliseconds(300));
  EXPECT_EQ(notes_.calls.size(), 1u) << "a recipient deferred for an hour is not retried at restart";
  auto q = spool_->queued();
  ASSERT_EQ(q.size(), 1u);
  EXPECT_EQ(q[0].recipients[0].status, spool::RecipientStatus::kDeferred);
  EXPECT_GT(q[0].recipients[0].next_attempt, q[0].envelope.received_at + 3000);
}

TEST_F(QueueTest, LifetimeOverFailsWith447AndOneDsn) {
  notes_.answer = [](const std::string&, int) { return temp("421 4.4.2 connection lost"); };
  RetryOptions r = fast_retry();
  r.lifetime = std::chrono::seconds(2);
  open(r);
  submit(envelope("alice@exchange.example", {"carol@notes.example"}));
  run_until([&] { return spool_empty() && exchange_.calls.size() == 1; });
  EXPECT_GE(notes_.calls.size(), 2u);
  const std::string& dsn = exchange_.calls[0].second;
  EXPECT_NE(dsn.find("Action: failed"), std::string::npos) << dsn;
  EXPECT_NE(dsn.find("Status: 4.4.7"), std::string::npos) << dsn;
}

TEST_F(QueueTest, DelayNoticeOnceThenDelivered) {
  notes_.answer = [](const std::string&, int attempt) { return attempt < 4 ? temp() : ok(); };
  RetryOptions r = fast_retry();
  r.delay_notice_after = std::chrono::seconds(1);
  open(r);
  submit(envelope("alice@exchange.example", {"carol@notes.example"}));
  run_until([&] { return spool_empty(); });
  ASSERT_EQ(exchange_.calls.size(), 1u) << "exactly one delay notice";
  EXPECT_NE(exchange_.calls[0].second.find("Action: delayed"), std::string::npos);
  EXPECT_NE(exchange_.calls[0].second.find("Will-Retry-Until: "), std::string::npos);
}

TEST_F(QueueTest, AHeldDestinationIsNotContactedAndResumesAtOnce) {
  RetryOptions slow = fast_retry();
  slow.delays = {std::chrono::hours(1)};  // only resume() can bring the retry forward
  open(slow);
  qm_->hold("notes", Error::transient_error(ErrorCode::kUnavailable, "the connector ID is locked", "unlock it"),
            "waiting for the connector ID password");
  EXPECT_TRUE(qm_->held("notes"));
  submit(envelope("alice@exchange.example", {"carol@notes.example"}));
  submit(envelope("dave@notes.example", {"bob@exchange.example"}));
  run_until([&] { return exchange_.calls.size() == 1 && qm_->in_flight() == 0; });
  io_.run_for(std::chrono::milliseconds(100));
  EXPECT_TRUE(notes_.calls.empty()) << "a held destination is never connected to";
  auto q = spool_->queued();
  ASSERT_EQ(q.size(), 1u) << "the other direction is not held up";
  EXPECT_EQ(q[0].recipients[0].status, spool::RecipientStatus::kDeferred);
  EXPECT_EQ(q[0].recipients[0].reply, "not attempted: the connector ID is locked");
  qm_->publish();
  auto p = registry_->snapshot();
  auto notes = std::find_if(p.begin(), p.end(), [](auto& s) { return s.name == "deliver:notes"; });
  EXPECT_EQ(notes->state, status::ProcessState::kError);
  EXPECT_EQ(notes->activity, "waiting for the connector ID password; 1 recipient waiting");
  ASSERT_TRUE(notes->last_error);
  EXPECT_EQ(notes->last_error->remedy, "unlock it");
  EXPECT_TRUE(exchange_.calls.size() == 1 && exchange_.calls[0].first[0] == "bob@exchange.example")
      << "no DSN about the hold";

  qm_->resume("notes");
  EXPECT_FALSE(qm_->held("notes"));
  run_until([&] { return spool_empty(); });
  EXPECT_EQ(notes_.calls.size(), 1u);
  p = registry_->snapshot();
  notes = std::find_if(p.begin(), p.end(), [](auto& s) { return s.name == "deliver:notes"; });
  EXPECT_EQ(notes->state, status::ProcessState::kRunning);
  EXPECT_EQ(exchange_.calls.size(), 1u);
}

TEST_F(QueueTest, AHoldDoesNotOutliveTheQueueLifetime) {
  RetryOptions r = fast_retry();
  r.lifetime = std::chrono::seconds(2);
  open(r);
  qm_->hold("notes", Error::transient_error(ErrorCode::kUnavailable, "the connector ID is locked"), "waiting");
  submit(envelope("alice@exchange.example", {"carol@notes.example"}, kNotifyFailure | kNotifyDelay));
  run_until([&] { return spool_empty() && exchange_.calls.size() == 1; });
  EXPECT_TRUE(notes_.calls.empty());
  const std::string& dsn = exchange_.calls[0].second;
  EXPECT_NE(dsn.find("Action: failed"), std::string::npos) << dsn;
  EXPECT_NE(dsn.find("Status: 4.4.7"), std::string::npos) << dsn;
  EXPECT_NE(dsn.find("the connector ID is locked"), std::string::npos) << dsn;
}

TEST_F(QueueTest, NotifyNeverAndNullSenderGetNoDsn) {
  notes_.answer = [](const std::string&, int) { return perm(); };
  open();
  submit(envelope("alice@exchange.example", {"carol@notes.example"}, kNotifyNever));
  submit(envelope("", {"dave@notes.example"}));
  run_until([&] { return spool_empty() && notes_.calls.size() == 2; });
  io_.run_for(std::chrono::milliseconds(200));
  EXPECT_TRUE(exchange_.calls.empty());
}

TEST_F(QueueTest, SuccessNotifyGivesRelayedOrNothingWhenTheNextHopTakesDsn) {
  open();
  submit(envelope("alice@exchange.example", {"carol@notes.example"}, kNotifySuccess));
  run_until([&] { return spool_empty() && exchange_.calls.size() == 1; });
  EXPECT_NE(exchange_.calls[0].second.find("Action: relayed"), std::string::npos);
  notes_.offers_dsn = true;
  submit(envelope("alice@exchange.example", {"dave@notes.example"}, kNotifySuccess));
  run_until([&] { return spool_empty() && notes_.calls.size() == 2; });
  io_.run_for(std::chrono::milliseconds(200));
  EXPECT_EQ(exchange_.calls.size(), 1u) << "a DSN-capable next hop reports success itself";
  notes_.final_delivery = true;
  submit(envelope("alice@exchange.example", {"gina@notes.example"}, kNotifySuccess));
  run_until([&] { return spool_empty() && exchange_.calls.size() == 2; });
  EXPECT_NE(exchange_.calls[1].second.find("Action: delivered"), std::string::npos);
}

TEST_F(QueueTest, ConcurrencyPerDestinationIsBounded) {
  notes_.delay = std::chrono::milliseconds(30);
  open(fast_retry(), 3);
  for (int i = 0; i < 12; ++i) submit(envelope("alice@exchange.example", {"carol@notes.example"}));
  run_until([&] { return spool_empty(); });
  EXPECT_EQ(notes_.calls.size(), 12u);
  EXPECT_EQ(notes_.max_in_flight, 3);
}

TEST_F(QueueTest, SlowDestinationDoesNotStallTheOtherDirection) {
  notes_.delay = std::chrono::seconds(2);
  open(fast_retry(), 1);
  for (int i = 0; i < 3; ++i) submit(envelope("alice@exchange.example", {"carol@notes.example"}));
  submit(envelope("carol@notes.example", {"alice@exchange.example"}));
  const auto start = std::chrono::steady_clock::now();
  run_until([&] { return exchange_.calls.size() == 1; });
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
  EXPECT_LE(notes_.calls.size(), 1u) << "notes is still on its first slow attempt";
  run_until([&] { return spool_empty(); });
}

TEST_F(QueueTest, PoisonMessageIsQuarantinedAndTheNextDelivered) {
  open(fast_retry(), 1, "X-Poison-Test");
  const auto bad = submit(envelope("alice@exchange.example", {"carol@notes.example"}), "X-Poison-Test: 1\r\n\r\nx\r\n");
  submit(envelope("alice@exchange.example", {"dave@notes.example"}));
  run_until([&] { return spool_empty(); });
  ASSERT_EQ(notes_.calls.size(), 1u);
  EXPECT_EQ(notes_.calls[0].first, std::vector<std::string>{"dave@notes.example"});
  const auto base = dir_.path() / "quarantine" / spool::format_id(bad);
  std::ifstream eml(base.string() + ".eml"), why(base.string() + ".txt");
  std::stringstream e, w;
  e << eml.rdbuf();
  w << why.rdbuf();
  EXPECT_EQ(e.str(), "X-Poison-Test: 1\r\n\r\nx\r\n");
  EXPECT_NE(w.str().find("poison marker"), std::string::npos) << w.str();
  auto p = registry_->snapshot();
  auto notes = std::find_if(p.begin(), p.end(), [](auto& s) { return s.name == "deliver:notes"; });
  ASSERT_TRUE(notes->last_error);
  EXPECT_NE(notes->last_error->message.find(spool::format_id(bad)), std::string::npos);
  EXPECT_EQ(notes->value("quarantined"), 1u);
  qm_->publish();
  p = registry_->snapshot();
  auto q = std::find_if(p.begin(), p.end(), [](auto& s) { return s.name == "quarantine"; });
  EXPECT_EQ(q->value("messages"), 1u);
}

TEST_F(QueueTest, UnroutableDsnRecipientGoesBackToTheOriginsSystem) {
  notes_.answer = [](const std::string&, int) { return perm(); };
  open();
  // A sender outside every system's domains (the ingress allows it): the DSN goes back to
  // the system the message came from.
  auto env = envelope("someone@elsewhere.example", {"carol@notes.example"});
  env.ingress_system = "exchange";
  submit(env);
  run_until([&] { return spool_empty() && exchange_.calls.size() == 1; });
  EXPECT_EQ(exchange_.calls[0].first, std::vector<std::string>{"someone@elsewhere.example"});
}

// ---------------------------------------------------------------- issue 8, defect 4

TEST_F(QueueTest, AContentReadThatFailsPartWayDefersAndNeverQuarantinesThePartialCopy) {
  int reads = 0;
  read_ = [&](spool::MessageId id, const std::function<void(std::string_view)>& sink) -> Expected<void> {
    if (++reads == 1) {
      sink("Subject: t\r\n");  // part of the message, then a transient EIO
      return fail(Error::from_errno(EIO, "cannot read spool segment seg-1 (fault injection)"));
    }
    return spool_->read_content(id, sink);
  };
  open();
  const auto id = submit(envelope("alice@exchange.example", {"carol@notes.example"}), "Subject: t\r\n\r\nhello\r\n");
  run_until([&] { return reads >= 1 && qm_->in_flight() == 0; });
  const auto base = dir_.path() / "quarantine" / spool::format_id(id);
  EXPECT_FALSE(std::filesystem::exists(base.string() + ".eml")) << "a partial copy must never be quarantined";
  auto q = spool_->queued();
  ASSERT_EQ(q.size(), 1u) << "the only intact copy stays in the spool";
  EXPECT_EQ(q[0].recipients[0].status, spool::RecipientStatus::kDeferred);
  EXPECT_NE(q[0].recipients[0].reply.find("cannot read spool segment seg-1"), std::string::npos) << q[0].recipients[0].reply;
  run_until([&] { return spool_empty(); });
  ASSERT_EQ(notes_.calls.size(), 1u);
  EXPECT_EQ(notes_.calls[0].second, "Subject: t\r\n\r\nhello\r\n");
  EXPECT_EQ(reads, 2);
}

TEST_F(QueueTest, AMessageStreamsFromTheSpoolAndADamagedChunkFoundOnTheWayDefersIt) {
  open();
  // Two chunks (the spool's are at most 1 MiB): the delivery has the first window before
  // the damage in the second is found.
  std::string content = "Subject: big\r\n\r\n";
  while (content.size() < (3u << 19)) content += "a line of a big message, streamed a window at a time\r\n";
  const std::string good = content;
  const std::size_t marker_at = (5u << 18) - 40;  // 1.25 MiB: in the second chunk
  content.replace(marker_at, 11, "DAMAGE-HERE");
  submit(envelope("alice@exchange.example", {"carol@notes.example"}), good);
  run_until([&] { return spool_empty(); });
  ASSERT_EQ(notes_.calls.size(), 1u);
  EXPECT_TRUE(notes_.calls[0].second == good) << "a message of two chunks arrives whole, in order";

  const auto id = submit(envelope("alice@exchange.example", {"dave@notes.example"}), content);
  // Flip one octet of the marker on disk: the chunk no longer matches its CRC.
  for (const auto& f : std::filesystem::directory_iterator(dir_.path() / "spool")) {
    if (f.path().filename().string().rfind("seg-", 0) != 0) continue;
    std::fstream seg(f.path(), std::ios::in | std::ios::out | std::ios::binary);
    std::stringstream all;
    all << seg.rdbuf();
    const auto at = all.str().find("DAMAGE-HERE");
    if (at == std::string::npos) continue;
    seg.seekp(static_cast<std::streamoff>(at));
    seg.put('d');
  }
  run_until([&] {
    auto queued = spool_->queued();
    return qm_->in_flight() == 0 && queued.size() == 1 && queued[0].id == id &&
           queued[0].recipients[0].status == spool::RecipientStatus::kDeferred;
  });
  EXPECT_EQ(notes_.calls.size(), 1u) << "nothing of the damaged message was delivered";
  auto q = spool_->queued();
  ASSERT_EQ(q.size(), 1u) << "it stays in the spool; the lifetime decides";
  EXPECT_EQ(q[0].recipients[0].status, spool::RecipientStatus::kDeferred);
  EXPECT_NE(q[0].recipients[0].reply.find("damaged"), std::string::npos) << q[0].recipients[0].reply;
  EXPECT_EQ(spool_->stats().damaged, 1u);
  auto p = registry_->snapshot();
  auto notes = std::find_if(p.begin(), p.end(), [](auto& s) { return s.name == "deliver:notes"; });
  EXPECT_EQ(notes->value("read_errors"), 1u);
  EXPECT_NE(notes->state, status::ProcessState::kDegraded) << "the destination is not to blame";
}

TEST_F(QueueTest, WithAWorkerPoolTheBlockingWorkRunsThereAndNothingChanges) {
  pool_.emplace(2);
  open(fast_retry(), 4, "X-Poison-Test");
  std::string big = "Subject: big\r\n\r\n";
  while (big.size() < (3u << 19)) big += "a line of a big message, read from the spool by the pool\r\n";
  const std::string poison = "X-Poison-Test: 1\r\n\r\n" + big.substr(16);
  submit(envelope("alice@exchange.example", {"carol@notes.example"}), big);
  const auto bad = submit(envelope("alice@exchange.example", {"dave@notes.example"}), poison);
  run_until([&] { return spool_empty(); });
  ASSERT_EQ(notes_.calls.size(), 1u);
  EXPECT_EQ(notes_.calls[0].first, std::vector<std::string>{"carol@notes.example"});
  EXPECT_TRUE(notes_.calls[0].second == big);
  std::ifstream eml(dir_.path() / "quarantine" / (spool::format_id(bad) + ".eml"), std::ios::binary);
  std::stringstream e;
  e << eml.rdbuf();
  EXPECT_TRUE(e.str() == poison) << "the quarantined copy is the whole message, read again from the spool";
  EXPECT_EQ(notes_.in_flight, 0);
}

TEST_F(QueueTest, TemporaryFilesOfAnInterruptedQuarantineWriteAreRemovedAtStart) {
  const auto q = dir_.path() / "quarantine";
  std::filesystem::create_directories(q);
  std::ofstream(q / ".0000000100000009.eml.Zz9Yy8.tmp") << "half a message";
  std::ofstream(q / "0000000100000009.txt") << "kept";
  open();
  EXPECT_FALSE(std::filesystem::exists(q / ".0000000100000009.eml.Zz9Yy8.tmp"));
  EXPECT_TRUE(std::filesystem::exists(q / "0000000100000009.txt"));
}

TEST_F(QueueTest, AQuarantinedMessageIsFinalizedWhenItsOtherDestinationsJobEnds) {
  notes_.throws = "conversion failed (a bug)";
  exchange_.delay = std::chrono::milliseconds(300);  // still delivering when notes quarantines
  open();
  const auto id = submit(envelope("alice@exchange.example", {"bob@exchange.example", "carol@notes.example"}));
  run_until([&] { return spool_empty(); }, std::chrono::seconds(10));
  EXPECT_EQ(exchange_.calls.size(), 1u);
  const auto base = dir_.path() / "quarantine" / spool::format_id(id);
  std::ifstream in(base.string() + ".json");
  ASSERT_TRUE(in) << "the machine-readable record is next to the copy";
  const auto record = nlohmann::json::parse(in);
  EXPECT_EQ(record["id"], spool::format_id(id));
  EXPECT_NE(record["reason"].get<std::string>().find("conversion failed (a bug)"), std::string::npos);
  ASSERT_EQ(record["recipients"].size(), 2u);
  EXPECT_EQ(record["recipients"][0]["address"], "bob@exchange.example");
  EXPECT_EQ(record["recipients"][0]["status"], "delivered") << "a release must not send it to bob again";
  EXPECT_EQ(record["recipients"][1]["status"], "pending");
}

// ---------------------------------------------------------------- issue 8, defect 6

TEST_F(QueueTest, ASuccessNoticeThatCannotBeQueuedIsRetriedWithoutASecondDelivery) {
  notice_failures_ = 1;
  open();
  submit(envelope("alice@exchange.example", {"carol@notes.example"}, kNotifySuccess));
  run_until([&] { return notes_.calls.size() == 1 && qm_->in_flight() == 0; });
  auto q = spool_->queued();
  ASSERT_EQ(q.size(), 1u) << "the message stays until its notice is queued";
  EXPECT_EQ(q[0].recipients[0].status, spool::RecipientStatus::kDelivered) << q[0].recipients[0].reply;
  run_until([&] { return spool_empty() && exchange_.calls.size() == 1; });
  EXPECT_EQ(notes_.calls.size(), 1u) << "the next hop took it once: only the notice is retried";
  ASSERT_EQ(exchange_.calls.size(), 1u);
  EXPECT_NE(exchange_.calls[0].second.find("Action: relayed"), std::string::npos);
  io_.run_for(std::chrono::milliseconds(1500));
  EXPECT_EQ(notes_.calls.size(), 1u);
  EXPECT_EQ(exchange_.calls.size(), 1u) << "exactly one notice";
}

}  // namespace
}  // namespace bridgehead::queue
