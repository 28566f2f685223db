#include "queue/transport.hpp"

#include <fmt/format.h>

#include "net/blocking.hpp"

namespace bridgehead::queue {
namespace {

namespace asio = net::asio;
using smtp::client::Connection;

// Our own answer for every recipient: `code` and `enhanced` what it stands for, 0 and ""
// when `why` is only a description (a connection refused).
TransactionResult all_recipients(const std::vector<std::size_t>& indices, Outcome outcome, int code,
                                 std::string_view enhanced, const std::string& why, std::string remote) {
  TransactionResult r;
  r.remote = std::move(remote);
  const std::string reply = code == 0 ? why : fmt::format("{} {} {}", code, enhanced, why);
  for (std::size_t i : indices) {
    r.recipients.push_back(
        {.index = i, .outcome = outcome, .reply = reply, .code = code, .enhanced = std::string(enhanced)});
  }
  return r;
}

class SmtpTransport final : public Transport {
 public:
  SmtpTransport(asio::any_io_executor io, SmtpTarget target) : io_(std::move(io)), target_(std::move(target)) {}

  std::string describe() const override {
    return fmt::format("{}{}:{}", target_.options.lmtp ? "LMTP " : "", target_.host, target_.port);
  }
  bool final_delivery() const override { return target_.options.lmtp; }

  net::awaitable<TransactionResult> deliver(const Envelope& envelope, std::vector<std::size_t> indices,
                                            smtp::client::ContentSource& content) override {
    std::unique_ptr<Connection> conn;
    if (!idle_.empty()) {
      conn = std::move(idle_.back());
      idle_.pop_back();
    } else {
      auto opened = co_await Connection::open(io_, target_.host, target_.port, target_.options);
      if (!opened) {
        // A 5xx greeting is the destination's own permanent answer; everything else
        // (refused, timeout, TLS) may pass.
        co_return all_recipients(indices, opened.error().transient() ? Outcome::kDeferred : Outcome::kFailed, 0, "",
                                 opened.error().describe(), fmt::format("{}:{}", target_.host, target_.port));
      }
      conn = std::move(*opened);
    }
    TransactionResult result = co_await conn->send(envelope, std::move(indices), content);
    if (result.reusable) {
      idle_.push_back(std::move(conn));
    } else {
      co_await conn->close();
    }
    co_return result;
  }

  net::awaitable<void> release() override {
    auto idle = std::move(idle_);
    idle_.clear();
    for (auto& c : idle) co_await c->close();
  }

 private:
  asio::any_io_executor io_;
  SmtpTarget target_;
  std::vector<std::unique_ptr<Connection>> idle_;
};

// Maildir files conventionally have LF line endings; the spool keeps CRLF (SMTP's form).
std::string to_lf(std::string_view crlf) {
  std::string out;
  out.reserve(crlf.size());
  for (std::size_t i = 0; i < crlf.size(); ++i) {
    if (crlf[i] == '\r' && i + 1 < crlf.size() && crlf[i + 1] == '\n') continue;
    out += crlf[i];
  }
  return out;
}

class MaildirTransport final : public Transport {
 public:
  MaildirTransport(asio::thread_pool& pool, std::filesystem::path root, std::string hostname)
      : pool_(pool), writer_(std::move(root), std::move(hostname)) {}

  std::string describe() const override { return "Maildir below " + writer_.root().string(); }
  bool final_delivery() const override { return true; }

  net::awaitable<TransactionResult> deliver(const Envelope& envelope, std::vector<std::size_t> indices,
                                            smtp::client::ContentSource& content) override {
    // Each Maildir file is written whole: the content is read first (from the spool, a
    // window at a time on the pool).
    auto whole = co_await smtp::client::read_whole(content);
    if (!whole) {
      co_return all_recipients(indices, Outcome::kDeferred, 451, "4.3.0",
                               "cannot read the message to deliver it: " + whole.error().describe(), "maildir");
    }
    // The fsyncs block: they run on the pool, and this coroutine resumes on the I/O thread.
    auto work = [this, &envelope, &indices, content = std::move(*whole)]() -> TransactionResult {
      TransactionResult r;
      r.remote = "maildir";
      const std::string body = to_lf(content);
      for (std::size_t i : indices) {
        const std::string& rcpt = envelope.recipients[i].address;
        const std::string prepend =
            fmt::format("Return-Path: <{}>\nDelivered-To: {}\n", envelope.mail_from, rcpt);
        auto delivered = writer_.deliver(rcpt, prepend, body);
        if (delivered) {
          r.recipients.push_back({.index = i,
                                  .outcome = Outcome::kDelivered,
                                  .reply = "250 2.0.0 delivered to " + delivered->string(),
                                  .code = 250,
                                  .enhanced = "2.0.0"});
        } else {
          const Error& e = delivered.error();
          const int code = e.transient() ? 451 : 550;
          const char* enhanced = e.transient() ? "4.3.0" : "5.1.3";
          r.recipients.push_back({.index = i,
                                  .outcome = e.transient() ? Outcome::kDeferred : Outcome::kFailed,
                                  .reply = fmt::format("{} {} cannot deliver to the Maildir: {}", code, enhanced,
                                                       e.describe()),
                                  .code = code,
                                  .enhanced = enhanced});
        }
      }
      return r;
    };
    co_return co_await net::run_blocking(pool_.get_executor(), std::move(work));
  }

 private:
  asio::thread_pool& pool_;
  maildir::MaildirWriter writer_;
};

}  // namespace

std::unique_ptr<Transport> make_smtp_transport(net::asio::any_io_executor io, SmtpTarget target) {
  return std::make_unique<SmtpTransport>(std::move(io), std::move(target));
}

std::unique_ptr<Transport> make_maildir_transport(net::asio::thread_pool& pool, std::filesystem::path root,
                                                  std::string hostname) {
  return std::make_unique<MaildirTransport>(pool, std::move(root), std::move(hostname));
}

}  // namespace bridgehead::queue
