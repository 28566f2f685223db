#include "smtp/client/connection.hpp"

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <optional>
#include <stdexcept>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/text.hpp"
#include "net/blocking.hpp"
#include "net/deadline.hpp"
#include "net/endpoint.hpp"
#include "smtp/client/reply_reader.hpp"
#include "smtp/client/wire_encoding.hpp"

namespace bridgehead::smtp::client {

namespace {

using net::error_code;
using net::tcp;
using std::chrono::seconds;

constexpr std::size_t kReadSize = 16 * 1024;
// The content is written once this much of it is stuffed: large enough for few writes,
// small enough that a delivery never holds more than about this plus one piece.
constexpr std::size_t kWriteSize = 64 * 1024;
constexpr seconds kQuitTimeout{5};

bool is_ip_literal(const std::string& host) {
  error_code ec;
  (void)asio::ip::make_address(host, ec);
  return !ec;
}

// "mx.other.example, *.other.example": what a certificate is for, from its subjectAltName
// DNS and IP entries, or its common name when it has none; escaped, it is the peer's text.
std::string certificate_names(X509* cert) {
  if (cert == nullptr) return {};
  std::string names;
  auto add = [&names](std::string_view name) {
    if (!names.empty()) names += ", ";
    names += escape_control(name);
  };
  auto* sans = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; sans != nullptr && i < sk_GENERAL_NAME_num(sans); ++i) {
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(sans, i);
    if (gn->type == GEN_DNS) {
      const ASN1_STRING* s = gn->d.dNSName;
      add(std::string_view(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                           static_cast<std::size_t>(ASN1_STRING_length(s))));
    } else if (gn->type == GEN_IPADD) {
      const ASN1_OCTET_STRING* ip = gn->d.iPAddress;
      const unsigned char* b = ASN1_STRING_get0_data(ip);
      if (ASN1_STRING_length(ip) == 4) {
        asio::ip::address_v4::bytes_type bytes;
        std::copy(b, b + 4, bytes.begin());
        add(asio::ip::address_v4(bytes).to_string());
      } else if (ASN1_STRING_length(ip) == 16) {
        asio::ip::address_v6::bytes_type bytes;
        std::copy(b, b + 16, bytes.begin());
        add(asio::ip::address_v6(bytes).to_string());
      }
    }
  }
  GENERAL_NAMES_free(sans);
  if (names.empty()) {
    char cn[256];
    const int n = X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn);
    if (n > 0) add(std::string_view(cn, static_cast<std::size_t>(n)));
  }
  return names;
}

std::string host_port(const std::string& host, std::uint16_t port) {
  if (host.find(':') != std::string::npos) return fmt::format("[{}]:{}", host, port);
  return fmt::format("{}:{}", host, port);
}

Outcome outcome_of(int code) {
  if (code < 400) return Outcome::kDelivered;
  return code < 500 ? Outcome::kDeferred : Outcome::kFailed;
}

std::string describe(const error_code& ec) {
  // A peer that closes a TLS session without close_notify looks like a truncated stream.
  if (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated) return "end of file";
  return ec.message();
}

// Why a conversation cannot go on: the connection broke, timed out, answered nonsense or 421.
struct Trouble {
  ErrorCode code = ErrorCode::kUnavailable;
  std::string message;      // our description
  std::optional<ServerReply> server_reply;  // the 421 reply, when that is what ended it
};

template <typename T>
using OrTrouble = tl::expected<T, Trouble>;

}  // namespace

struct Connection::Impl {
  Impl(asio::any_io_executor executor, std::string h, std::uint16_t p, ClientOptions o)
      : ex(std::move(executor)),
        host(std::move(h)),
        port(p),
        where(host_port(host, port)),
        options(std::move(o)),
        plain(ex),
        deadline(ex, [this] {
          // The pending operation completes with operation_aborted; expired() tells why.
          error_code ignored;
          lowest().cancel(ignored);
          if (resolving) resolving->cancel();
        }),
        remote(where) {}

  asio::any_io_executor ex;
  std::string host;
  std::uint16_t port;
  std::string where;  // host:port as configured, for messages
  ClientOptions options;
  tcp::socket plain;
  std::unique_ptr<asio::ssl::context> tls_ctx;
  std::unique_ptr<asio::ssl::stream<tcp::socket>> tls;
  tcp::resolver* resolving = nullptr;  // while connect() resolves the host name
  // One operation's deadline at a time (a Deadline::Scope): a write, a whole reply, the
  // connect, the TLS handshake.
  net::Deadline deadline;
  ReplyReader reader;
  std::unique_ptr<char[]> read_buf;
  std::string out;  // commands and content on their way out; reused between messages
  Capabilities caps;
  std::string remote;
  bool usable = false;   // no trouble so far: the session is in a known state
  bool carried = false;  // MAIL was sent before: the next message starts with RSET

  tcp::socket& lowest() { return tls ? tls->next_layer() : plain; }

  awaitable<std::optional<Trouble>> write(std::string_view data, std::string_view stage, seconds timeout) {
    net::Deadline::Scope scope(deadline, timeout);
    auto [ec, n] = tls ? co_await asio::async_write(*tls, asio::buffer(data), net::use_nothrow)
                       : co_await asio::async_write(plain, asio::buffer(data), net::use_nothrow);
    if (!ec) co_return std::nullopt;
    usable = false;
    if (deadline.expired()) {
      co_return Trouble{
          ErrorCode::kTimeout, fmt::format("timed out after {}s sending {} to {}", timeout.count(), stage, remote), {}};
    }
    co_return Trouble{ErrorCode::kUnavailable,
                      fmt::format("connection to {} lost while sending {}: {}", remote, stage, describe(ec)),
                      {}};
  }

  awaitable<OrTrouble<ServerReply>> read_reply(std::string_view stage, seconds timeout) {
    ServerReply reply;
    std::optional<net::Deadline::Scope> scope;
    for (;;) {
      const auto status = reader.next(reply);
      if (status == ReplyReader::Status::kComplete) {
        if (reply.code == 421) {
          // RFC 5321 3.8: the server is closing the session; whatever it says is final for
          // this connection but not for the message.
          usable = false;
          co_return tl::unexpected(Trouble{
              ErrorCode::kUnavailable, fmt::format("{} closed the session after {}: {}", remote, stage, reply.one_line()),
              reply});
        }
        co_return reply;
      }
      if (status == ReplyReader::Status::kMalformed) {
        usable = false;
        co_return tl::unexpected(
            Trouble{ErrorCode::kUnavailable,
                    fmt::format("malformed reply from {} to {}: \"{}\"", remote, stage, reader.malformed_line()),
                    {}});
      }
      if (!scope) scope.emplace(deadline, timeout);
      if (!read_buf) read_buf = std::make_unique_for_overwrite<char[]>(kReadSize);
      auto buf = asio::buffer(read_buf.get(), kReadSize);
      auto [ec, n] = tls ? co_await tls->async_read_some(buf, net::use_nothrow)
                         : co_await plain.async_read_some(buf, net::use_nothrow);
      reader.append(std::string_view(read_buf.get(), n));
      if (!ec || n > 0) continue;
      usable = false;
      if (deadline.expired()) {
        co_return tl::unexpected(Trouble{
            ErrorCode::kTimeout,
            fmt::format("timed out after {}s waiting for the reply to {} from {}", timeout.count(), stage, remote),
            {}});
      }
      co_return tl::unexpected(Trouble{
          ErrorCode::kUnavailable, fmt::format("connection to {} lost after {}: {}", remote, stage, describe(ec)), {}});
    }
  }

  // Writes `command` (CRLF included) and reads its reply.
  awaitable<OrTrouble<ServerReply>> command(std::string_view cmd, std::string_view stage) {
    if (auto t = co_await write(cmd, stage, options.command_timeout)) co_return tl::unexpected(std::move(*t));
    co_return co_await read_reply(stage, options.command_timeout);
  }

  awaitable<Expected<void>> connect();
  awaitable<Expected<void>> hello();
  awaitable<Expected<void>> starttls();
  void close_socket() {
    usable = false;
    error_code ignored;
    lowest().shutdown(tcp::socket::shutdown_both, ignored);
    lowest().close(ignored);
  }
};

namespace {

Error open_error(const Trouble& t) { return Error::transient_error(t.code, t.message); }

}  // namespace

awaitable<Expected<void>> Connection::Impl::connect() {
  const seconds timeout = options.connect_timeout;
  net::Deadline::Scope scope(deadline, timeout);
  auto timed_out = [&] {
    return Error::transient_error(ErrorCode::kTimeout,
                                  fmt::format("timed out after {}s connecting to {}", timeout.count(), where),
                                  "check that the next hop is reachable from here (routing, firewall)");
  };
  std::vector<tcp::endpoint> endpoints;
  error_code ec;
  auto addr = asio::ip::make_address(host, ec);
  if (!ec) {
    endpoints.emplace_back(addr, port);
  } else {
    tcp::resolver resolver(ex);
    resolving = &resolver;
    auto [rec, results] = co_await resolver.async_resolve(host, std::to_string(port), net::use_nothrow);
    resolving = nullptr;
    if (rec) {
      if (deadline.expired()) co_return fail(timed_out());
      co_return fail(Error::transient_error(ErrorCode::kUnavailable,
                                            fmt::format("cannot resolve {}: {}", host, rec.message()),
                                            "check the next hop's host name and this machine's DNS"));
    }
    for (const auto& r : results) endpoints.push_back(r.endpoint());
  }
  error_code last;
  for (const auto& ep : endpoints) {
    error_code ignored;
    plain.close(ignored);
    auto [cec] = co_await plain.async_connect(ep, net::use_nothrow);
    if (!cec) {
      last = {};
      remote = net::to_string(ep);
      break;
    }
    last = cec;
    if (deadline.expired()) co_return fail(timed_out());
  }
  if (last || endpoints.empty()) {
    co_return fail(Error::transient_error(
        ErrorCode::kUnavailable,
        fmt::format("cannot connect to {}: {}", where, last ? last.message() : "the name has no address"),
        "check that the next hop is running and listening there"));
  }
  plain.set_option(tcp::no_delay(true), ec);
  usable = true;
  co_return Expected<void>{};
}

awaitable<Expected<void>> Connection::Impl::hello() {
  const char* verb = options.lmtp ? "LHLO" : "EHLO";
  out = fmt::format("{} {}\r\n", verb, options.helo_name);
  auto r = co_await command(out, verb);
  if (!r) co_return fail(open_error(r.error()));
  if (r->code / 100 == 2) {
    parse_capabilities(*r, caps);
    caps.esmtp = true;
    co_return Expected<void>{};
  }
  if (!options.lmtp && r->code >= 500) {
    // RFC 5321 3.2: a server that does not know EHLO still knows HELO.
    out = fmt::format("HELO {}\r\n", options.helo_name);
    auto h = co_await command(out, "HELO");
    if (!h) co_return fail(open_error(h.error()));
    if (h->code / 100 == 2) {
      caps = Capabilities{};
      co_return Expected<void>{};
    }
    co_return fail(Error::transient_error(ErrorCode::kUnavailable,
                                          fmt::format("{} refused both EHLO and HELO: {}", where, h->one_line()),
                                          "check helo_name, or whether the next hop accepts mail from this host"));
  }
  co_return fail(Error::transient_error(ErrorCode::kUnavailable,
                                        fmt::format("{} refused {}: {}", where, verb, r->one_line()),
                                        options.lmtp ? "check that the next hop speaks LMTP" : ""));
}

awaitable<Expected<void>> Connection::Impl::starttls() {
  const bool required = options.tls == TlsPolicy::kRequired;
  if (options.tls == TlsPolicy::kNone) co_return Expected<void>{};
  if (!caps.starttls) {
    if (!required) co_return Expected<void>{};
    co_return fail(Error::transient_error(
        ErrorCode::kUnavailable, fmt::format("TLS is required for {} but the server does not offer STARTTLS", where),
        "enable STARTTLS on the next hop, or lower its tls policy to opportunistic"));
  }
  auto r = co_await command("STARTTLS\r\n", "STARTTLS");
  if (!r) co_return fail(open_error(r.error()));
  if (r->code != 220) {
    // The session is intact after a refused STARTTLS: opportunistic TLS carries on in plaintext.
    if (!required) {
      spdlog::info("smtp client: {} refused STARTTLS ({}); continuing without TLS", where, r->one_line());
      co_return Expected<void>{};
    }
    co_return fail(
        Error::transient_error(ErrorCode::kUnavailable, fmt::format("{} refused STARTTLS: {}", where, r->one_line())));
  }
  // Anything the server sent after its 220 arrived in plaintext and must not be read as
  // part of the TLS session (the client side of CVE-2011-0411).
  reader.clear();

  tls_ctx = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_client);
  tls_ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                       asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1);
  error_code ec;
  if (required) {
    tls_ctx->set_verify_mode(asio::ssl::verify_peer, ec);
    if (!options.ca_file.empty()) {
      tls_ctx->load_verify_file(options.ca_file, ec);
      if (ec) {
        usable = false;
        co_return fail(Error::transient_error(
            ErrorCode::kConfig,
            fmt::format("cannot load the CA file {} for {}: {}", options.ca_file, where, ec.message()),
            "point ca_file at a readable PEM bundle of the CAs that signed the next hop's certificate"));
      }
    } else {
      tls_ctx->set_default_verify_paths(ec);
    }
  } else {
    tls_ctx->set_verify_mode(asio::ssl::verify_none, ec);
  }
  if (options.configure_tls) options.configure_tls(*tls_ctx);

  tls = std::make_unique<asio::ssl::stream<tcp::socket>>(std::move(plain), *tls_ctx);
  SSL* ssl = tls->native_handle();
  // The name the certificate must carry: never nothing, or any certificate a trusted CA
  // issued to anyone would do (issue 8).
  const std::string& expected_name = !options.verify_name.empty() ? options.verify_name : host;
  const bool expect_ip = is_ip_literal(expected_name);
  if (!expect_ip) SSL_set_tlsext_host_name(ssl, expected_name.c_str());
  auto presented = std::make_shared<std::string>();  // the names of a certificate that did not match
  if (required) {
    // OpenSSL checks the name during the handshake, so a mismatch fails it like a bad chain.
    if (expect_ip) {
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), expected_name.c_str());
    } else {
      SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      SSL_set1_host(ssl, expected_name.c_str());
    }
    tls->set_verify_callback([presented](bool preverified, asio::ssl::verify_context& vc) {
      X509_STORE_CTX* store = vc.native_handle();
      const int err = X509_STORE_CTX_get_error(store);
      if (!preverified && (err == X509_V_ERR_HOSTNAME_MISMATCH || err == X509_V_ERR_IP_ADDRESS_MISMATCH)) {
        *presented = certificate_names(X509_STORE_CTX_get0_cert(store));
      }
      return preverified;
    }, ec);
  }

  error_code hec;
  bool fired = false;
  {
    net::Deadline::Scope scope(deadline, options.command_timeout);
    auto [e] = co_await tls->async_handshake(asio::ssl::stream_base::client, net::use_nothrow);
    hec = e;
    fired = deadline.expired();
  }
  if (hec) {
    usable = false;
    if (fired) {
      co_return fail(Error::transient_error(
          ErrorCode::kTimeout,
          fmt::format("timed out after {}s in the TLS handshake with {}", options.command_timeout.count(), where)));
    }
    const long verify = SSL_get_verify_result(ssl);
    if (required && (verify == X509_V_ERR_HOSTNAME_MISMATCH || verify == X509_V_ERR_IP_ADDRESS_MISMATCH)) {
      co_return fail(Error::transient_error(
          ErrorCode::kCertificate,
          fmt::format("the TLS certificate of {} is for {}, not {}", where,
                      presented->empty() ? std::string("other names") : *presented, expected_name),
          options.verify_name.empty()
              ? "set tls_verify_name to a name the next hop's certificate carries, or give its address by that name"
              : "set tls_verify_name to a name the next hop's certificate carries"));
    }
    if (required && verify != X509_V_OK) {
      co_return fail(Error::transient_error(
          ErrorCode::kUnavailable,
          fmt::format("the TLS certificate of {} does not verify: {}", where, X509_verify_cert_error_string(verify)),
          "check tls_ca_file for this next hop, or lower its tls policy to opportunistic"));
    }
    co_return fail(Error::transient_error(ErrorCode::kUnavailable,
                                          fmt::format("TLS handshake with {} failed: {}", where, hec.message())));
  }
  // RFC 3207 4.2: forget what the server said before TLS and ask again.
  caps = Capabilities{};
  co_return co_await hello();
}

awaitable<Expected<std::unique_ptr<Connection>>> Connection::open(asio::any_io_executor ex, std::string host,
                                                                  std::uint16_t port, ClientOptions options) {
  auto impl = std::make_unique<Impl>(std::move(ex), std::move(host), port, std::move(options));
  auto connected = co_await impl->connect();
  if (!connected) co_return fail(std::move(connected.error()));

  auto greeting = co_await impl->read_reply("greeting", impl->options.command_timeout);
  if (!greeting) {
    impl->close_socket();
    const Trouble& t = greeting.error();
    if (t.server_reply) {
      co_return fail(Error::transient_error(ErrorCode::kUnavailable,
                                            fmt::format("{} refused the session: {}", impl->where,
                                                        t.server_reply->one_line()),
                                            "the next hop is busy or shutting down; the queue retries"));
    }
    co_return fail(open_error(t));
  }
  if (greeting->code / 100 != 2) {
    impl->close_socket();
    const std::string line = greeting->one_line();
    if (greeting->code >= 500) {
      co_return fail(Error::permanent(ErrorCode::kUnavailable,
                                      fmt::format("{} does not accept mail from this host: {}", impl->where, line),
                                      "ask the next hop's administrator, or route this mail elsewhere"));
    }
    co_return fail(
        Error::transient_error(ErrorCode::kUnavailable, fmt::format("{} refused the session: {}", impl->where, line)));
  }
  auto hello = co_await impl->hello();
  if (hello) hello = co_await impl->starttls();
  if (!hello) {
    impl->close_socket();
    co_return fail(std::move(hello.error()));
  }
  co_return std::unique_ptr<Connection>(new Connection(std::move(impl)));
}

Connection::Connection(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Connection::~Connection() = default;

const Capabilities& Connection::capabilities() const { return impl_->caps; }
bool Connection::tls_active() const { return impl_->tls != nullptr; }
std::string Connection::remote() const { return impl_->remote; }

awaitable<TransactionResult> Connection::send(const Envelope& envelope, std::vector<std::size_t> indices,
                                              std::string_view content) {
  StringContentSource source(content);
  co_return co_await send(envelope, std::move(indices), source);
}

awaitable<TransactionResult> Connection::send(const Envelope& envelope, std::vector<std::size_t> indices,
                                              ContentSource& content) {
  Impl& c = *impl_;
  for (std::size_t i : indices) {
    if (i >= envelope.recipients.size()) {
      throw std::out_of_range(fmt::format("smtp client: recipient index {} out of {}", i, envelope.recipients.size()));
    }
  }
  TransactionResult result;
  result.remote = c.remote;
  result.dsn_relayed = c.caps.dsn;
  result.recipients.reserve(indices.size());
  for (std::size_t i : indices) {
    RecipientResult r;
    r.index = i;
    result.recipients.push_back(std::move(r));
  }
  std::vector<bool> settled(indices.size(), false);

  auto settle = [&](std::size_t k, Outcome outcome, const ServerReply& reply) {
    result.recipients[k] = RecipientResult::from_reply(result.recipients[k].index, outcome, reply);
    settled[k] = true;
  };
  auto settle_open = [&](Outcome outcome, const ServerReply& reply) {
    for (std::size_t k = 0; k < settled.size(); ++k) {
      if (!settled[k]) settle(k, outcome, reply);
    }
  };
  // Our own answer for every recipient still open: `code` and `enhanced` are what it
  // stands for (0 and "" when it is only a description, such as a read that failed).
  auto settle_open_own = [&](Outcome outcome, int code, std::string_view enhanced, const std::string& text) {
    for (std::size_t k = 0; k < settled.size(); ++k) {
      if (settled[k]) continue;
      auto& r = result.recipients[k];
      r.outcome = outcome;
      r.reply = code == 0 ? text : fmt::format("{} {} {}", code, enhanced, text);
      r.from_server = false;
      r.code = code;
      r.enhanced = std::string(enhanced);
      settled[k] = true;
    }
  };
  auto trouble = [&](const Trouble& t) {
    // Every recipient without a final answer may be tried again; this connection is done.
    c.usable = false;
    if (t.server_reply) {
      settle_open(Outcome::kDeferred, *t.server_reply);
    } else {
      settle_open_own(Outcome::kDeferred, 0, "", t.message);
    }
    result.reusable = false;
    return std::move(result);
  };

  if (!c.usable) {
    co_return trouble(
        Trouble{ErrorCode::kUnavailable,
                fmt::format("connection to {} cannot take another message after an earlier failure", c.remote),
                {}});
  }
  result.reusable = true;
  if (indices.empty()) co_return result;

  // Refusals decided here, before anything is sent, leave the session as it was.
  if (envelope.smtputf8 && !c.caps.smtputf8) {
    settle_open_own(Outcome::kFailed, 550, "5.6.7",
                    fmt::format("{} does not support SMTPUTF8, which this message needs (RFC 6531)", c.where));
    co_return result;
  }
  ContentSource* body = &content;
  ContentInfo info = content.info();
  std::string read;        // the whole message, when it had to be read to decide or convert
  std::string downgraded;  // its 7-bit form
  std::optional<StringContentSource> whole_source;
  if (!c.caps.eight_bit_mime && info.eight_bit.value_or(true)) {
    // Whether it is 8-bit at all (a source streaming from the spool cannot say without
    // reading it) and the conversion both need the whole message; a source already in
    // memory is used as it is.
    std::string_view whole;
    if (auto all = content.contiguous()) {
      whole = *all;
    } else {
      auto got = co_await read_whole(content);
      if (!got) {
        settle_open_own(Outcome::kDeferred, 0, "",
                        fmt::format("cannot read the message to convert it to 7-bit for {}: {}", c.where,
                                    got.error().describe()));
        co_return result;
      }
      read = std::move(*got);
      whole = read;
    }
    std::string why;
    // Here eight_bit is true or unknown; only unknown needs the scan.
    if (!info.eight_bit.has_value() && !has_8bit(whole)) {
      // 7-bit after all: sent as it is, from the copy just read.
      body = &whole_source.emplace(whole);
      info = body->info();
    } else if (!c.options.downgrade_8bit) {
      why = fmt::format("{} does not support 8BITMIME and no downgrade is configured", c.where);
    } else {
      // A GMime parse of up to the size limit: on the pool, never on the I/O thread.
      auto convert = [&c, whole] { return c.options.downgrade_8bit(whole); };
      // An if, not ?: around the co_await: with GCC 12 that form freed the result twice.
      Expected<std::string> seven = std::string();
      if (c.options.blocking) {
        seven = co_await net::run_blocking(c.options.blocking, convert);
      } else {
        seven = convert();
      }
      std::string().swap(read);
      if (seven) {
        downgraded = std::move(*seven);
        body = &whole_source.emplace(downgraded);
        info = body->info();
      } else {
        why = seven.error().message;
      }
    }
    if (!why.empty()) {
      settle_open_own(Outcome::kFailed, 554, "5.6.3", "conversion to 7-bit not possible: " + why);
      co_return result;
    }
  }
  const std::uint64_t size = info.wire_size;
  if (c.caps.size != 0 && size > c.caps.size) {
    settle_open_own(Outcome::kFailed, 552, "5.3.4",
                    fmt::format("message size {} exceeds the limit {} of {}", size, c.caps.size, c.where));
    co_return result;
  }

  // The command group: [RSET] MAIL RCPT... DATA, written into c.out; commands[k].second is
  // where command k ends there.
  enum class Kind { kRset, kMail, kRcpt, kData };
  std::vector<std::pair<Kind, std::size_t>> commands;
  commands.reserve(indices.size() + 3);
  std::string& out = c.out;
  out.clear();
  if (c.carried) {
    out += "RSET\r\n";
    commands.emplace_back(Kind::kRset, out.size());
  }
  out += "MAIL FROM:<";
  out += envelope.mail_from;
  out += '>';
  const bool eight_bit_declared = envelope.body == BodyType::k8BitMime || envelope.body == BodyType::kBinaryMime;
  // BINARYMIME is never offered to us by this client (no CHUNKING sending); such content
  // goes as 8BITMIME, which is what it is line by line once in CRLF form.
  if (eight_bit_declared && c.caps.eight_bit_mime) out += " BODY=8BITMIME";
  if (envelope.smtputf8) out += " SMTPUTF8";
  if (c.caps.size != 0) fmt::format_to(std::back_inserter(out), " SIZE={}", size);
  if (c.caps.dsn) {
    if (envelope.ret == DsnRet::kFull) out += " RET=FULL";
    if (envelope.ret == DsnRet::kHeaders) out += " RET=HDRS";
    if (!envelope.envid.empty()) {
      out += " ENVID=";
      out += xtext_encode(envelope.envid);
    }
  }
  out += "\r\n";
  commands.emplace_back(Kind::kMail, out.size());
  for (std::size_t i : indices) {
    const Recipient& rcpt = envelope.recipients[i];
    out += "RCPT TO:<";
    out += rcpt.address;
    out += '>';
    if (c.caps.dsn) {
      if (auto notify = notify_param(rcpt.notify); !notify.empty()) {
        out += " NOTIFY=";
        out += notify;
      }
      if (auto orcpt = orcpt_param(rcpt.orcpt); !orcpt.empty()) {
        out += " ORCPT=";
        out += orcpt;
      }
    }
    out += "\r\n";
    commands.emplace_back(Kind::kRcpt, out.size());
  }
  out += "DATA\r\n";
  commands.emplace_back(Kind::kData, out.size());

  // RFC 2920: with PIPELINING the whole group goes in one write and the replies are read
  // in order; without it, one command, one reply.
  const bool pipelining = c.caps.pipelining;
  std::size_t written = 0;  // commands written so far
  std::size_t rcpt_no = 0;
  bool mail_failed = false;
  std::vector<std::size_t> accepted;  // positions in result.recipients
  accepted.reserve(indices.size());
  bool data_go = false;
  for (std::size_t k = 0; k < commands.size(); ++k) {
    const Kind kind = commands[k].first;
    if (kind == Kind::kData && !pipelining && (mail_failed || accepted.empty())) break;
    if (kind == Kind::kRcpt && !pipelining && mail_failed) break;
    static constexpr std::string_view kStage[] = {"RSET", "MAIL", "RCPT", "DATA"};
    const std::string_view stage = kStage[static_cast<int>(kind)];
    if (k >= written) {
      const std::size_t last = pipelining ? commands.size() - 1 : k;
      const std::size_t begin = k == 0 ? 0 : commands[k - 1].second;
      if (auto t = co_await c.write(std::string_view(out).substr(begin, commands[last].second - begin), stage,
                                    c.options.command_timeout)) {
        co_return trouble(*t);
      }
      written = last + 1;
      c.carried = true;  // the group holds MAIL, or is the RSET of a connection that carried one
    }
    auto reply = co_await c.read_reply(stage, c.options.command_timeout);
    if (!reply) co_return trouble(reply.error());
    const int code = reply->code;
    switch (kind) {
      case Kind::kRset:
        if (code / 100 != 2) {
          co_return trouble(
              Trouble{ErrorCode::kUnavailable, fmt::format("{} refused RSET: {}", c.remote, reply->one_line()), {}});
        }
        break;
      case Kind::kMail:
        if (code / 100 == 2) break;
        if (code / 100 == 3) {
          co_return trouble(Trouble{ErrorCode::kUnavailable,
                                    fmt::format("unexpected reply from {} to MAIL: {}", c.remote, reply->one_line()),
                                    {}});
        }
        mail_failed = true;
        settle_open(outcome_of(code), *reply);
        break;
      case Kind::kRcpt: {
        const std::size_t pos = rcpt_no++;
        if (mail_failed) break;  // pipelined after a refused MAIL: its reply says nothing new
        if (code / 100 == 2) {
          accepted.push_back(pos);
        } else if (code / 100 == 3) {
          co_return trouble(Trouble{ErrorCode::kUnavailable,
                                    fmt::format("unexpected reply from {} to RCPT: {}", c.remote, reply->one_line()),
                                    {}});
        } else {
          settle(pos, outcome_of(code), *reply);
        }
        break;
      }
      case Kind::kData:
        if (mail_failed || accepted.empty()) {
          // Pipelined DATA after no accepted recipient: the server should refuse it; one
          // that says 354 anyway gets an empty message, which it cannot deliver to anyone.
          if (code == 354) {
            if (auto t = co_await c.write(".\r\n", "end of DATA", c.options.command_timeout)) co_return trouble(*t);
            auto end = co_await c.read_reply("end of DATA", c.options.data_timeout);
            if (!end) co_return trouble(end.error());
          }
          break;
        }
        if (code == 354) {
          data_go = true;
        } else if (code / 100 == 2 || code / 100 == 3) {
          co_return trouble(Trouble{ErrorCode::kUnavailable,
                                    fmt::format("unexpected reply from {} to DATA: {}", c.remote, reply->one_line()),
                                    {}});
        } else {
          for (std::size_t pos : accepted) settle(pos, outcome_of(code), *reply);
        }
        break;
    }
  }
  // Without a 354 every recipient is settled: by MAIL's reply, its own RCPT reply, or DATA's.
  if (!data_go) co_return result;

  // The content goes out as it is read: one piece and one write buffer at a time.
  out.clear();
  DotStuffer stuffer;
  for (;;) {
    auto piece = co_await body->next_piece();
    if (!piece) {
      // Past the 354 the server takes whatever ends with "." as the message: only a broken
      // connection keeps a partial copy from being delivered.
      c.close_socket();
      co_return trouble(Trouble{ErrorCode::kIo,
                                fmt::format("cannot read the message content while sending it to {}: {}", c.remote,
                                            piece.error().describe()),
                                {}});
    }
    if (piece->empty()) break;
    stuffer.append(*piece, out);
    if (out.size() >= kWriteSize) {
      if (auto t = co_await c.write(out, "the message content", c.options.data_timeout)) co_return trouble(*t);
      out.clear();
    }
  }
  stuffer.finish(out);
  if (auto t = co_await c.write(out, "the message content", c.options.data_timeout)) co_return trouble(*t);
  if (c.options.lmtp) {
    // RFC 2033 4.2: one reply per accepted recipient, in RCPT order.
    for (std::size_t pos : accepted) {
      auto reply = co_await c.read_reply("end of DATA", c.options.data_timeout);
      if (!reply) co_return trouble(reply.error());
      settle(pos, outcome_of(reply->code), *reply);
    }
  } else {
    auto reply = co_await c.read_reply("end of DATA", c.options.data_timeout);
    if (!reply) co_return trouble(reply.error());
    if (reply->code / 100 == 3) {
      co_return trouble(Trouble{ErrorCode::kUnavailable,
                                fmt::format("unexpected reply from {} to end of DATA: {}", c.remote, reply->one_line()),
                                {}});
    }
    for (std::size_t pos : accepted) settle(pos, outcome_of(reply->code), *reply);
  }
  // A big message must not pin its size in the reused buffer of an idle connection.
  if (out.capacity() > 1024 * 1024) std::string().swap(out);
  co_return result;
}

RecipientResult RecipientResult::from_reply(std::size_t index, Outcome outcome, const ServerReply& reply) {
  return {.index = index,
          .outcome = outcome,
          .reply = reply.one_line(),
          .from_server = true,
          .code = reply.code,
          .enhanced = reply.enhanced()};
}

awaitable<void> Connection::close() {
  Impl& c = *impl_;
  if (c.usable) {
    if (!co_await c.write("QUIT\r\n", "QUIT", kQuitTimeout)) {
      (void)co_await c.read_reply("QUIT", kQuitTimeout);
    }
  }
  c.close_socket();
}

}  // namespace bridgehead::smtp::client
