#include "smtp/server/listener.hpp"

#include <algorithm>
#include <ctime>
#include <limits>
#include <map>
#include <optional>
#include <set>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/duration.hpp"
#include "net/blocking.hpp"
#include "net/completion.hpp"
#include "net/deadline.hpp"
#include "net/endpoint.hpp"
#include "net/spawn.hpp"

namespace bridgehead::smtp {

namespace asio = net::asio;
using net::tcp;

namespace {
constexpr std::size_t kReadSize = 64 * 1024;
// Content is handed to the spool in pieces of about this size, which bounds what a
// session holds in memory however large the message is. Each piece is a round trip to the
// spool's writer thread (two thread switches, which cost more CPU than writing 64 KiB), so
// pieces are not smaller than this (docs/performance.md, "Streaming from the spool").
constexpr std::size_t kSpoolPiece = 256 * 1024;
// What a piece is given room for up front: a full piece plus one read, which the decoder
// can make twice as long at most (bare LFs normalized to CRLF).
constexpr std::size_t kPieceCapacity = kSpoolPiece + 2 * kReadSize;

Reply storage_failure_reply() {
  return Reply{452, "4.3.1", "Insufficient system storage; message not accepted, try again later"};
}
}  // namespace

class InboundSession;

struct Listener::State {
  ListenerOptions options;
  spool::Spool& spool;
  RecipientCheck check;
  std::shared_ptr<status::Process> process;
  std::string listen_text;
  std::shared_ptr<SessionBudget> budget;
  std::set<std::shared_ptr<InboundSession>> sessions;
  bool stopping = false;
  events::EventBus own_events;  // when the daemon gives none

  State(ListenerOptions o, spool::Spool& s, RecipientCheck c, std::shared_ptr<status::Process> p)
      : options(std::move(o)), spool(s), check(std::move(c)), process(std::move(p)) {
    budget = options.budget ? options.budget : std::make_shared<SessionBudget>();
    if (!options.events) options.events = &own_events;
    // The counters are the events' first reader for this system.
    options.events->subscribe([system = options.system, process = process](const events::MessageEvent& e) {
      if (e.system != system) return;
      if (e.kind == events::EventKind::kReceived) {
        process->add("messages_accepted");
        process->add("bytes_accepted", e.size);
      } else if (e.kind == events::EventKind::kRefused) {
        process->add("messages_refused");
      }
    });
    if (!options.cleanup) {
      options.cleanup =
          std::make_shared<const cleanup::Cleanup>(cleanup::Options{.hostname = options.session.hostname, .steps = {}});
    }
  }

  void update_activity() const {
    if (process->state() != status::ProcessState::kRunning) return;
    process->set_activity(
        fmt::format("listening on {}, {} session{}", listen_text, sessions.size(), sessions.size() == 1 ? "" : "s"));
  }
};

// One client connection. Runs on the io_context's (single) thread; the spool's
// completions are posted back to it, so no member is touched concurrently.
class InboundSession : public std::enable_shared_from_this<InboundSession> {
 public:
  InboundSession(tcp::socket socket, std::shared_ptr<Listener::State> state, std::string client)
      : plain_(std::move(socket)),
        state_(std::move(state)),
        client_(std::move(client)),
        deadline_(plain_.get_executor(),
                  [this] {
                    net::error_code ignored;
                    plain_or_tls_lowest().cancel(ignored);
                  }),
        session_(make_options(*state_), state_->check) {}

  net::awaitable<void> run();
  /// The daemon is stopping: end the session at the next safe point (never while a
  /// commit is in flight: its 250 must still reach the client).
  void shut() {
    shutdown_ = true;
    net::error_code ec;
    plain_or_tls_lowest().cancel(ec);
  }

 private:
  static SessionOptions make_options(const Listener::State& st) {
    SessionOptions o = st.options.session;
    o.starttls_available = st.options.tls != nullptr;
    o.tls_active = false;
    return o;
  }

  tcp::socket& plain_or_tls_lowest() { return tls_ ? tls_->next_layer() : plain_; }

  // The RFC 5321 4.5.3.2 timeouts: one deadline for the whole session, moved by each read
  // and write, instead of a timer raced against every read. A session that timed out or is
  // closing gets no new one: its 421 goes out without, and then it ends.
  void arm(std::chrono::seconds timeout) {
    if (!closing_ && !deadline_.expired()) deadline_.arm(timeout);
  }

  net::awaitable<bool> read_more(std::chrono::seconds timeout) {
    if (shutdown_) co_return false;
    if (pos_ > 0 && pos_ == in_.size()) {
      in_.clear();
      pos_ = 0;
    } else if (pos_ > kReadSize) {
      in_.erase(0, pos_);
      pos_ = 0;
    }
    // Read into an uninitialized buffer and append what came: resizing in_ by 64 KiB
    // would zero-fill it on every read, a QUIT included.
    const std::size_t n = co_await read_raw(timeout);
    in_.append(read_buf_.get(), n);
    co_return n > 0;
  }

  // One read into read_buf_: how many octets came, 0 when the connection ended, failed or
  // timed out. Message content is decoded straight from there (content_input), so a large
  // message is not copied into in_ first.
  net::awaitable<std::size_t> read_raw(std::chrono::seconds timeout) {
    if (shutdown_) co_return 0;
    if (!read_buf_) read_buf_ = std::make_unique_for_overwrite<char[]>(kReadSize);
    arm(timeout);
    auto buf = asio::buffer(read_buf_.get(), kReadSize);
    auto [ec, n] = tls_ ? co_await tls_->async_read_some(buf, net::use_nothrow)
                        : co_await plain_.async_read_some(buf, net::use_nothrow);
    co_return ec ? 0 : n;
  }

  // The next input of a message's content, at most `max` octets: what is buffered, else
  // one fresh read (nullopt: the connection ended). content_used() then says how much of
  // it was content; the rest (pipelined commands after the end of the data) is kept for
  // the command loop.
  net::awaitable<std::optional<std::string_view>> content_input(std::uint64_t max) {
    if (pos_ < in_.size()) {
      fresh_ = false;
      co_return std::string_view(in_).substr(pos_,
                                             static_cast<std::size_t>(std::min<std::uint64_t>(max, in_.size() - pos_)));
    }
    in_.clear();
    pos_ = 0;
    fresh_ = true;
    const std::size_t n = co_await read_raw(state_->options.data_timeout);
    if (n == 0) co_return std::nullopt;
    fresh_len_ = n;
    co_return std::string_view(read_buf_.get(), static_cast<std::size_t>(std::min<std::uint64_t>(max, n)));
  }
  void content_used(std::size_t used) {
    if (!fresh_) {
      pos_ += used;
      return;
    }
    in_.assign(read_buf_.get() + used, fresh_len_ - used);
    fresh_ = false;
  }

  net::awaitable<bool> write(std::string_view data) {
    if (data.empty()) co_return true;
    arm(state_->options.command_timeout);
    auto [ec, n] = tls_ ? co_await asio::async_write(*tls_, asio::buffer(data), net::use_nothrow)
                        : co_await asio::async_write(plain_, asio::buffer(data), net::use_nothrow);
    co_return !ec;
  }

  net::awaitable<bool> flush() {
    bool ok = co_await write(out_);
    out_.clear();
    co_return ok;
  }

  bool open_for_goodbye() const { return tls_ ? tls_->next_layer().is_open() : plain_.is_open(); }

  bool complete_line_buffered() const { return in_.find('\n', pos_) != std::string::npos; }

  // After DATA's content or a BDAT chunk: its reply, then, unless the session ends, the
  // replies so far go out when no further command is already waiting (RFC 2920).
  net::awaitable<bool> after_content(Action end) {
    if (end.reply) queue_reply(*end.reply);
    if (end.next == NextStep::kClose) co_return false;
    if (!complete_line_buffered()) co_return co_await flush();
    co_return true;
  }

  void queue_reply(const Reply& r) {
    if (r.code >= 400) state_->process->add("replies_refused");
    out_ += r.render();
  }

  // Takes a whole command line out of the buffer; nullopt when more input is needed.
  // An over-long line is discarded through its LF and reported as such.
  enum class LineResult { kLine, kTooLong, kNeedMore };
  LineResult take_line(std::string& line) {
    auto nl = in_.find('\n', pos_);
    if (nl == std::string::npos) {
      if (in_.size() - pos_ > state_->options.max_line_length) {
        discarding_ = true;
        pos_ = in_.size();
      }
      return LineResult::kNeedMore;
    }
    std::size_t end = nl;
    if (end > pos_ && in_[end - 1] == '\r') --end;
    bool too_long = discarding_ || (nl + 1 - pos_) > state_->options.max_line_length;
    discarding_ = false;
    line.assign(in_, pos_, end - pos_);
    pos_ = nl + 1;
    return too_long ? LineResult::kTooLong : LineResult::kLine;
  }

  net::awaitable<Action> receive_data();
  net::awaitable<Action> receive_bdat_chunk();
  net::awaitable<Action> finish_message();
  bool header_section_ready();
  net::awaitable<void> run_cleanup();
  std::optional<Reply> content_verdict() const {
    return cleanup::first_problem(decoder_->verdict(), decoder_->verdict_at(), refusal_);
  }
  void begin_content(DataDecoder::Mode mode);
  void drop_content();
  void forget_content();
  void drop_content_of_ended_transaction() {
    if (message_ && session_.transaction() != content_transaction_) drop_content();
  }
  net::awaitable<bool> spool_piece(std::string& piece);
  // Before `input` octets are decoded into the piece: a message that is not small gets the
  // piece's full room at once instead of a copy at every doubling up to it; a small one
  // never asks for that much.
  void make_room(std::size_t input) {
    constexpr std::size_t kSmall = 16 * 1024;
    const std::size_t need = piece_.size() + 2 * input;  // bare LFs can double it
    if (need > piece_.capacity() && piece_.size() + input > kSmall && piece_.capacity() < kPieceCapacity) {
      piece_.reserve(kPieceCapacity);
    }
  }
  void report_storage_failure();
  void publish(events::EventKind kind, spool::MessageId id, const std::optional<Reply>& reply) const;
  Envelope connection_envelope() const;

  tcp::socket plain_;
  // The context this session's TLS runs on; declared before tls_ so it outlives the stream
  // even when the listener switches to a new one (a connector ID unlocked or re-read).
  std::shared_ptr<asio::ssl::context> tls_ctx_;
  std::unique_ptr<asio::ssl::stream<tcp::socket>> tls_;
  std::shared_ptr<Listener::State> state_;
  std::string client_;
  net::Deadline deadline_;  // cancels the socket when it passes
  Session session_;
  std::string in_;
  std::unique_ptr<char[]> read_buf_;
  std::size_t pos_ = 0;
  bool fresh_ = false;         // content_input() handed out read_buf_, not in_
  std::size_t fresh_len_ = 0;  // octets read into read_buf_ then
  std::string out_;
  bool discarding_ = false;
  bool closing_ = false;
  bool shutdown_ = false;

  // The message being received (DATA or a BDAT transaction). It belongs to the session's
  // transaction numbered content_transaction_ and to no other: every reset drops it.
  std::optional<spool::MessageId> message_;
  std::uint64_t content_transaction_ = 0;
  std::optional<DataDecoder> decoder_;
  std::string piece_;
  bool spool_failed_ = false;
  Error spool_error_;
  // Until cleanup has run, piece_ holds the header section, and nothing is spooled: cleanup
  // may rewrite it, and puts the trace header in front.
  bool headers_pending_ = false;
  std::size_t header_scanned_ = 0;  // octets of piece_ already searched for the section's end
  Envelope envelope_;               // as cleanup left it: what is committed
  std::optional<cleanup::Refusal> refusal_;
};

void InboundSession::publish(events::EventKind kind, spool::MessageId id, const std::optional<Reply>& reply) const {
  events::MessageEvent ev;
  ev.kind = kind;
  ev.at_ms = unix_now_ms();
  ev.queue_id = spool::format_id(id);
  ev.system = state_->options.system;
  ev.sender = session_.envelope().mail_from;
  ev.client = client_;
  if (kind == events::EventKind::kReceived && decoder_) ev.size = decoder_->size();
  if (reply) {
    ev.reply = fmt::format("{} {} {}", reply->code, reply->enhanced, reply->text);
    std::replace(ev.reply.begin(), ev.reply.end(), '\n', ' ');
  }
  state_->options.events->publish(ev);
}

Envelope InboundSession::connection_envelope() const {
  Envelope env = session_.envelope();
  env.client_address = client_;
  env.ingress_system = state_->options.system;
  env.received_at = static_cast<std::int64_t>(std::time(nullptr));
  return env;
}

void InboundSession::begin_content(DataDecoder::Mode mode) {
  drop_content();  // never write over a message in progress: its spool pieces would be pinned
  message_ = state_->spool.begin_message();
  content_transaction_ = session_.transaction();
  decoder_.emplace(mode, state_->options.content);
  headers_pending_ = true;
  header_scanned_ = 0;
}

// Whether cleanup can run now: the header section has ended, or the piece is full without
// an end in sight (the rest of an overlong header section streams on as if it were body,
// as beyond Postfix's header_size_limit).
bool InboundSession::header_section_ready() {
  const bool ended = cleanup::header_section_end(piece_, header_scanned_).has_value();
  header_scanned_ = piece_.size();
  return ended || piece_.size() >= kSpoolPiece;
}

// Once per message: cleanup (on the worker pool when it has steps) with the header section, which it hands
// back with the trace header on top (or refuses the message: its reply is given at the end
// of the content, unless the decoder found an earlier problem).
net::awaitable<void> InboundSession::run_cleanup() {
  headers_pending_ = false;
  const std::size_t cut = cleanup::header_section_end(piece_).value_or(piece_.size());
  cleanup::Message m{.envelope = connection_envelope(),
                     .headers = piece_.substr(0, cut),
                     .queue_id = spool::format_id(*message_),
                     .esmtp = session_.esmtp()};
  using Result = tl::expected<cleanup::Message, cleanup::Refusal>;
  auto work = [c = state_->options.cleanup, m = std::move(m)]() mutable -> Result {
    const auto now = m.envelope.received_at;
    if (auto r = c->run(m, now); !r) return tl::unexpected(std::move(r.error()));
    return std::move(m);
  };
  Result r;
  if (state_->options.blocking && state_->options.cleanup->needs_pool()) {
    r = co_await net::run_blocking(state_->options.blocking, std::move(work));
  } else {
    r = work();
  }
  if (!r) {
    refusal_ = std::move(r.error());
    co_return;
  }
  piece_.replace(0, cut, r->headers);
  envelope_ = std::move(r->envelope);
}

// The message will not be committed (reset, refused, failed, client gone): the spool
// forgets what was written of it, so its segments are not pinned, and nothing of it
// (decoded content, decoder state, the Received header naming its recipient) can reach a
// later transaction: not even plaintext bytes a man in the middle sent before STARTTLS.
void InboundSession::drop_content() {
  if (message_) state_->spool.abort(*message_);
  forget_content();
}

// After a commit: the message is the spool's now.
void InboundSession::forget_content() {
  message_.reset();
  decoder_.reset();
  headers_pending_ = false;
  refusal_.reset();
  std::string().swap(piece_);  // an idle session keeps no piece-sized buffer
  spool_failed_ = false;
}

void InboundSession::report_storage_failure() {
  state_->process->report_error(status::ProcessState::kDegraded, spool_error_);
  state_->process->add("messages_deferred_storage");
  spdlog::error("ingress:{}: cannot store message from {}: {}", state_->options.system, client_,
                spool_error_.describe());
}

// Hands a full piece to the spool and waits until it is written, so a fast client cannot
// make us buffer more than one piece; nothing is fsynced until the commit.
net::awaitable<bool> InboundSession::spool_piece(std::string& piece) {
  // A message cleanup refused is not stored: it is dropped at its end.
  if (piece.empty() || spool_failed_ || refusal_) {
    piece.clear();
    co_return !spool_failed_;
  }
  auto id = *message_;
  auto& sp = state_->spool;
  // Named, not a temporary inside the co_await: GCC 12 destroys such temporaries twice.
  auto start = [&sp, id, data = std::move(piece)](spool::Completion<void> done) mutable {
    sp.append(id, std::move(data), std::move(done));
  };
  auto r = co_await net::await_completion<void>(std::move(start));
  piece.clear();
  // Moved to the spool, so empty without capacity: grown by appends it would be copied
  // about twice more on its way to the next piece. (The first piece grows from nothing: a
  // small message must not cost a large allocation.)
  piece.reserve(kPieceCapacity);
  if (!r) {
    spool_failed_ = true;
    spool_error_ = r.error();
  }
  co_return !spool_failed_;
}

net::awaitable<Action> InboundSession::finish_message() {
  if (headers_pending_) co_await run_cleanup();  // the whole message came in one piece
  const std::optional<Reply> verdict = content_verdict();
  tl::expected<std::string, Reply> stored = tl::unexpected(storage_failure_reply());
  auto id = *message_;
  std::string piece = std::move(piece_);
  if (verdict) {
    drop_content();
    publish(events::EventKind::kRefused, id, *verdict);
  } else {
    if (!spool_failed_) {
      Envelope env = std::move(envelope_);
      env.received_at = static_cast<std::int64_t>(std::time(nullptr));
      auto& sp = state_->spool;
      std::optional<Envelope> announce;
      if (state_->options.on_queued) announce = env;
      // The 250 below is sent only after this completes, i.e. after the fdatasync that
      // covers the content and the commit record: rule 2, accepted mail is never lost.
      // The last piece goes with the commit: one writer batch per message, not two.
      auto start = [&sp, id, env = std::move(env), last = std::move(piece)](spool::Completion<void> done) mutable {
        sp.commit(id, std::move(last), std::move(env), std::move(done));
      };
      auto r = co_await net::await_completion<void>(std::move(start));
      if (r) {
        stored = spool::format_id(id);
        // Received before queued: the queue publishes its own event as it takes the message.
        publish(events::EventKind::kReceived, id, std::nullopt);
        if (announce) state_->options.on_queued(id, *announce, decoder_->size());
      } else {
        spool_failed_ = true;
        spool_error_ = r.error();
      }
    }
    if (spool_failed_) {
      report_storage_failure();
      drop_content();
      publish(events::EventKind::kRefused, id, storage_failure_reply());
    } else {
      if (state_->process->state() == status::ProcessState::kDegraded) {
        state_->process->recover("storage works again");
        state_->update_activity();
      }
      forget_content();
    }
  }
  co_return session_.on_message_end(verdict, stored);
}

net::awaitable<Action> InboundSession::receive_data() {
  begin_content(DataDecoder::Mode::kData);
  for (;;) {
    auto input = co_await content_input(std::numeric_limits<std::uint64_t>::max());
    if (!input) {
      drop_content();
      co_return Action{std::nullopt, NextStep::kClose};
    }
    make_room(input->size());
    content_used(decoder_->feed(*input, piece_));
    if (headers_pending_) {
      // At the end of the content finish_message runs it, so a small message makes one
      // trip to the pool, not two.
      if (decoder_->done()) break;
      if (!header_section_ready()) continue;
      co_await run_cleanup();
    }
    if (piece_.size() >= kSpoolPiece) co_await spool_piece(piece_);
    if (decoder_->done()) break;
  }
  co_return co_await finish_message();
}

net::awaitable<Action> InboundSession::receive_bdat_chunk() {
  const std::uint64_t size = session_.last_command().bdat_size;
  const bool last = session_.last_command().bdat_last;
  // A BDAT the session refused (no MAIL, no accepted recipient) is read only to stay in
  // sync with the client: its bytes are not commands, and they must never reach the queue.
  const bool discard = session_.discarding_content();
  // Later chunks continue the message of this same transaction only; a transaction that
  // was reset took its content with it (drop_content_of_ended_transaction).
  if (!discard && !message_) begin_content(DataDecoder::Mode::kBdat);
  std::uint64_t remaining = size;
  while (remaining > 0) {
    auto input = co_await content_input(remaining);
    if (!input) {
      drop_content();
      co_return Action{std::nullopt, NextStep::kClose};
    }
    if (!discard) {
      make_room(input->size());
      decoder_->feed(*input, piece_);
    }
    content_used(input->size());
    remaining -= input->size();
    if (headers_pending_ && !(last && remaining == 0) && header_section_ready()) co_await run_cleanup();
    if (!headers_pending_ && piece_.size() >= kSpoolPiece) co_await spool_piece(piece_);
  }
  if (discard) {
    if (last && message_) publish(events::EventKind::kRefused, *message_, storage_failure_reply());
    co_return last ? session_.on_message_end(std::nullopt, tl::unexpected(storage_failure_reply()))
                   : session_.on_bdat_chunk(size, std::nullopt);
  }
  if (last) {
    decoder_->finish(piece_);
    co_return co_await finish_message();
  }
  // A piece the spool could not write fails the transaction now (RFC 3030 4.2: a chunk may
  // be answered with an error), rather than after the client sent all the rest for nothing.
  std::optional<Reply> verdict = content_verdict();
  if (!verdict && spool_failed_) {
    verdict = storage_failure_reply();
    report_storage_failure();
  }
  // A message refused at a chunk is as refused as one refused at its end.
  if (verdict && message_) publish(events::EventKind::kRefused, *message_, verdict);
  Action a = session_.on_bdat_chunk(size, verdict);
  // A refused chunk ended the transaction: drop what was spooled so far.
  drop_content_of_ended_transaction();
  co_return a;
}

net::awaitable<void> InboundSession::run() {
  auto self = shared_from_this();
  arm(state_->options.command_timeout);
  queue_reply(session_.greeting());
  bool open = co_await flush();
  std::string line;
  while (open && !closing_ && !shutdown_) {
    auto lr = take_line(line);
    if (lr == LineResult::kNeedMore) {
      if (!out_.empty() && !(open = co_await flush())) break;
      if (!co_await read_more(state_->options.command_timeout)) break;
      continue;
    }
    Action a = lr == LineResult::kTooLong ? session_.on_line_too_long() : session_.on_line(line);
    // RSET, EHLO, HELO (and any other reset) end the transaction whose content is in
    // progress: its spool space is released now, not when the session ends.
    drop_content_of_ended_transaction();
    if (a.reply) queue_reply(*a.reply);
    switch (a.next) {
      case NextStep::kContinue:
        // RFC 2920: replies to a pipelined group go out together, when input runs dry.
        if (!complete_line_buffered()) open = co_await flush();
        break;
      case NextStep::kReadData:
        if (!(open = co_await flush())) break;
        open = co_await after_content(co_await receive_data());
        break;
      case NextStep::kReadBdatChunk:
        open = co_await after_content(co_await receive_bdat_chunk());
        break;
      case NextStep::kStartTls: {
        if (!(open = co_await flush())) break;
        // CVE-2011-0411: anything the client pipelined after STARTTLS arrived in plaintext
        // and must not be executed inside the TLS session; nor may any content received in
        // plaintext become part of a message sent inside it (RFC 3207 4.2).
        in_.clear();
        pos_ = 0;
        drop_content();
        tls_ctx_ = state_->options.tls;
        // Null when the listener lost its certificate after this session began (the connector
        // ID became unusable): the 220 has gone out, so all that is left is to close.
        if (!tls_ctx_) {
          open = false;
          break;
        }
        tls_ = std::make_unique<asio::ssl::stream<tcp::socket>>(std::move(plain_), *tls_ctx_);
        arm(state_->options.command_timeout);
        auto [ec] = co_await tls_->async_handshake(asio::ssl::stream_base::server, net::use_nothrow);
        if (ec) {
          state_->process->add("tls_handshake_failures");
          spdlog::info("ingress:{}: TLS handshake with {} failed: {}", state_->options.system, client_, ec.message());
          open = false;
          break;
        }
        state_->process->add("tls_sessions");
        session_.on_tls_started();
        break;
      }
      case NextStep::kClose:
        co_await flush();
        open = false;
        break;
    }
  }
  if (deadline_.expired() && !closing_) {
    out_ = Reply{421, "4.4.2", state_->options.session.hostname + " Error: timeout exceeded"}.render();
    closing_ = true;  // no new deadline; the socket was cancelled, not closed
    co_await flush();
  } else if (shutdown_ && !closing_ && open_for_goodbye()) {
    // RFC 5321 3.8: a server that must shut down says 421 rather than just closing.
    out_ += Reply{421, "4.3.2", state_->options.session.hostname + " Service shutting down, try again later"}.render();
    co_await flush();
  }
  drop_content();  // the client went away, timed out or was told 421: no 250 was given
  closing_ = true;
  deadline_.disarm();
  net::error_code ec;
  if (tls_) {
    tls_->next_layer().shutdown(tcp::socket::shutdown_both, ec);
    tls_->next_layer().close(ec);
  } else {
    plain_.shutdown(tcp::socket::shutdown_both, ec);
    plain_.close(ec);
  }
}

Listener::Listener(asio::io_context& io, ListenerOptions options, spool::Spool& spool, RecipientCheck check,
                   std::shared_ptr<status::Process> process)
    : io_(io),
      state_(std::make_shared<State>(std::move(options), spool, std::move(check), std::move(process))),
      acceptor_(io) {}

Listener::~Listener() { stop(); }

Expected<void> Listener::start() {
  net::error_code ec;
  const auto& ep = state_->options.endpoint;
  acceptor_.open(ep.protocol(), ec);
  if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor_.bind(ep, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    Error e = Error::transient_error(ErrorCode::kUnavailable,
                                     fmt::format("cannot listen on {}: {}", net::to_string(ep), ec.message()),
                                     "free the port or change `listen` of system \"" + state_->options.system + "\"");
    state_->process->report_error(status::ProcessState::kError, e);
    return fail(e);
  }
  state_->listen_text = net::to_string(acceptor_.local_endpoint());
  state_->process->set_state(status::ProcessState::kRunning, "");
  state_->update_activity();
  net::spawn_logged(io_.get_executor(), accept_loop(), "ingress:" + state_->options.system);
  return {};
}

std::size_t Listener::active_sessions() const { return state_->sessions.size(); }

void Listener::set_tls(std::shared_ptr<net::asio::ssl::context> tls) {
  state_->options.tls = std::move(tls);
  state_->update_activity();
}

void Listener::stop() {
  if (state_->stopping) return;
  state_->stopping = true;
  net::error_code ec;
  acceptor_.close(ec);
  for (const auto& s : state_->sessions) s->shut();
  state_->process->set_state(status::ProcessState::kStopped, "stopped");
}

tcp::endpoint Listener::local_endpoint() const {
  net::error_code ec;
  return acceptor_.local_endpoint(ec);
}

net::awaitable<void> Listener::accept_loop() {
  auto st = state_;
  while (!st->stopping) {
    auto [ec, socket] = co_await acceptor_.async_accept(net::use_nothrow);
    if (ec) {
      if (st->stopping || ec == asio::error::operation_aborted) co_return;
      // EMFILE and friends: say so and keep going rather than stop listening.
      st->process->report_error(status::ProcessState::kDegraded,
                                Error::transient_error(ErrorCode::kIo, "accept failed: " + ec.message(),
                                                       "raise the open-files limit (ulimit -n)"));
      asio::steady_timer pause(io_, std::chrono::milliseconds(100));
      co_await pause.async_wait(net::use_nothrow);
      continue;
    }
    net::error_code rec;
    auto remote = socket.remote_endpoint(rec);
    if (rec) continue;
    std::string client_ip = remote.address().to_string();
    st->process->add("connections");
    const auto& o = st->options;
    std::optional<Reply> refuse;
    auto& budget = *st->budget;
    if (budget.total >= o.max_sessions) {
      refuse = Reply{421, "4.7.0", o.session.hostname + " too many connections, try again later"};
    } else if (budget.per_client[client_ip] >= o.max_sessions_per_client) {
      refuse = Reply{421, "4.7.0", o.session.hostname + " too many connections from " + client_ip};
    }
    if (refuse) {
      st->process->add("connections_refused");
      auto text = std::make_shared<std::string>(refuse->render());
      auto sock = std::make_shared<tcp::socket>(std::move(socket));
      asio::async_write(*sock, asio::buffer(*text), [text, sock](net::error_code, std::size_t) {
        net::error_code ignored;
        sock->shutdown(tcp::socket::shutdown_both, ignored);
        sock->close(ignored);
      });
      if (budget.per_client[client_ip] == 0) budget.per_client.erase(client_ip);
      continue;
    }
    socket.set_option(tcp::no_delay(true), rec);
    auto session = std::make_shared<InboundSession>(std::move(socket), st, net::to_string(remote));
    st->sessions.insert(session);
    budget.total += 1;
    budget.per_client[client_ip] += 1;
    st->update_activity();
    net::spawn(io_.get_executor(), session->run(), [st, session, client_ip](std::exception_ptr ep) {
      if (ep) {
        try {
          std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          spdlog::error("ingress:{}: session with {} ended by exception: {}", st->options.system, client_ip, e.what());
        }
      }
      st->sessions.erase(session);
      st->budget->total -= 1;
      if (--st->budget->per_client[client_ip] == 0) st->budget->per_client.erase(client_ip);
      st->update_activity();
    });
  }
}

ListenerOptions listener_options(const ServerSettings& s, std::string system, std::string hostname) {
  ListenerOptions o;
  o.system = std::move(system);
  o.session.hostname = std::move(hostname);
  o.session.max_message_size = s.max_message_size;
  o.session.max_recipients = s.max_recipients;
  o.session.max_junk_commands = s.max_junk_commands;
  o.session.max_errors = s.max_errors;
  o.content.max_line_length = s.max_line_length;
  o.content.max_message_size = s.max_message_size;
  o.content.bare_linefeed = s.bare_linefeed;
  o.max_line_length = s.max_line_length;
  o.max_sessions = s.max_sessions;
  o.max_sessions_per_client = s.max_sessions_per_client;
  o.command_timeout = std::chrono::seconds(s.command_timeout_seconds);
  o.data_timeout = std::chrono::seconds(s.data_timeout_seconds);
  return o;
}

}  // namespace bridgehead::smtp
