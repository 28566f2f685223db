// The outbound connection against real peers: Postfix's smtp-sink (with its fault
// injection flags) and scripted aiosmtpd servers (testdata/scripted_server.py) for what
// smtp-sink cannot do: per-recipient replies, LMTP, SIZE, STARTTLS. Every peer is started
// by its test on a free loopback port and killed when the test ends.
#include "smtp/client/connection.hpp"

#include "core/text.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "net/spawn.hpp"
#include "smtp/client/wire_encoding.hpp"
#include "temp_dir.hpp"

extern char** environ;

namespace bridgehead::smtp::client {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using test_support::TempDir;

constexpr const char* kSmtpSink = "/usr/sbin/smtp-sink";
constexpr const char* kPython = "/usr/bin/python3";
constexpr const char* kOpenssl = "/usr/bin/openssl";
const std::string kTestdata = BRIDGEHEAD_CLIENT_TESTDATA;

std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// ---------------------------------------------------------------------------------------
// Processes and ports

// A peer process: stdout and stderr go to `log`; SIGTERM, then SIGKILL, on destruction.
class Child {
 public:
  Child() = default;
  Child(const std::vector<std::string>& argv, const fs::path& log) {
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    if (posix_spawn(&pid_, args[0], &fa, nullptr, args.data(), environ) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&fa);
  }
  Child(Child&& o) noexcept : pid_(std::exchange(o.pid_, -1)) {}
  Child& operator=(Child&& o) noexcept {
    stop();
    pid_ = std::exchange(o.pid_, -1);
    return *this;
  }
  ~Child() { stop(); }

  bool running() {
    if (pid_ <= 0) return false;
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return false;
    }
    return true;
  }
  void stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    for (int i = 0; i < 100; ++i) {
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(20ms);
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

 private:
  pid_t pid_ = -1;
};

// A loopback port nobody listens on right now (bind to port 0, then let it go).
std::uint16_t free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    close(fd);
    throw std::runtime_error("cannot find a free loopback port");
  }
  close(fd);
  return ntohs(a.sin_port);
}

bool connectable(std::uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  close(fd);
  return ok;
}

// A socket that listens but never accepts: the kernel completes the handshake, and the
// client then waits forever for a greeting.
class SilentListener {
 public:
  SilentListener() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(fd_, 8) != 0 ||
        getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      throw std::runtime_error("cannot listen on loopback");
    }
    port_ = ntohs(a.sin_port);
  }
  ~SilentListener() { close(fd_); }
  std::uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
};

// ---------------------------------------------------------------------------------------
// smtp-sink

struct SinkMessage {
  std::string helo, mail_args;
  std::vector<std::string> rcpt_args;
  std::string content;  // as dumped: dot-unstuffed, LF line ends
};

// smtp-sink on a free loopback port; each transaction is dumped to one file.
class SmtpSink {
 public:
  explicit SmtpSink(std::vector<std::string> flags) {
    if (access(kSmtpSink, X_OK) != 0) {
      ADD_FAILURE() << kSmtpSink << " is missing: install the postfix package (scripts/install-deps)";
      return;
    }
    // smtp-sink drops root privileges (-u nobody) before it writes dumps.
    fs::permissions(dir_.path(), fs::perms::others_exec | fs::perms::group_exec, fs::perm_options::add);
    fs::create_directory(dir_.path() / "dump");
    fs::permissions(dir_.path() / "dump", fs::perms::all);
    for (int attempt = 0; attempt < 5 && port_ == 0; ++attempt) {
      const std::uint16_t port = free_port();
      std::vector<std::string> argv{kSmtpSink, "-v", "-u", "nobody", "-D", dump_path().string()};
      argv.insert(argv.end(), flags.begin(), flags.end());
      argv.push_back("127.0.0.1:" + std::to_string(port));
      argv.push_back("32");
      child_ = Child(argv, log_path());
      for (int i = 0; i < 250 && child_.running(); ++i) {
        if (connectable(port)) {
          port_ = port;
          break;
        }
        std::this_thread::sleep_for(20ms);
      }
    }
    if (port_ == 0) ADD_FAILURE() << "smtp-sink did not start: " << read_file(log_path());
  }

  std::uint16_t port() const { return port_; }
  std::string log() const { return read_file(log_path()); }

  /// The dumped transactions, waiting up to 2s for at least `expected` of them.
  std::vector<SinkMessage> messages(std::size_t expected = 0) const {
    std::vector<SinkMessage> out;
    for (int i = 0; i < 100; ++i) {
      out = parse(read_file(dump_path()));
      if (out.size() >= expected) break;
      std::this_thread::sleep_for(20ms);
    }
    return out;
  }

 private:
  fs::path dump_path() const { return dir_.path() / "dump" / "transactions"; }
  fs::path log_path() const { return dir_.path() / "sink.log"; }

  // Each transaction: "X-…" lines, a three-line Received: header, the content, an empty line.
  static std::vector<SinkMessage> parse(const std::string& dump) {
    std::vector<SinkMessage> out;
    const std::string marker = "X-Client-Addr: ";
    std::size_t at = dump.rfind(marker, 0) == 0 ? 0 : std::string::npos;
    while (at != std::string::npos) {
      std::size_t next = dump.find("\n" + marker, at);
      const std::string block = dump.substr(at, next == std::string::npos ? std::string::npos : next + 1 - at);
      at = next == std::string::npos ? next : next + 1;
      SinkMessage m;
      std::istringstream in(block);
      std::string line;
      std::size_t consumed = 0;
      int received_lines = 0;
      while (received_lines < 3 && std::getline(in, line)) {
        consumed += line.size() + 1;
        if (line.rfind("X-Helo-Args: ", 0) == 0) m.helo = line.substr(13);
        if (line.rfind("X-Mail-Args: ", 0) == 0) m.mail_args = line.substr(13);
        if (line.rfind("X-Rcpt-Args: ", 0) == 0) m.rcpt_args.push_back(line.substr(13));
        if (line.rfind("Received: ", 0) == 0 || received_lines > 0) ++received_lines;
      }
      if (received_lines < 3) break;  // still being written
      m.content = block.substr(std::min(consumed, block.size()));
      if (!m.content.ends_with("\n\n")) break;  // still being written
      m.content.pop_back();
      out.push_back(std::move(m));
    }
    return out;
  }

  TempDir dir_{"bridgehead_sink"};
  Child child_;
  std::uint16_t port_ = 0;
};

// ---------------------------------------------------------------------------------------
// The scripted aiosmtpd server

struct Received {
  std::string helo, mail_from;
  std::vector<std::string> mail_options, rcpt_tos;
  std::vector<std::vector<std::string>> rcpt_options;
  bool tls = false;
  std::string content;  // exactly as the server got it, dot-unstuffed
};

std::string base64_decode(std::string_view in) {
  static const std::string kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  unsigned buf = 0;
  int bits = 0;
  for (char c : in) {
    auto pos = kAlphabet.find(c);
    if (pos == std::string::npos) continue;
    buf = (buf << 6) | static_cast<unsigned>(pos);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((buf >> bits) & 0xFF);
    }
  }
  return out;
}

class ScriptedServer {
 public:
  explicit ScriptedServer(std::vector<std::string> flags) {
    if (access(kPython, X_OK) != 0 || std::system((std::string(kPython) + " -c 'import aiosmtpd'").c_str()) != 0) {
      ADD_FAILURE() << kPython << " with aiosmtpd is missing: install python3-aiosmtpd (scripts/install-deps)";
      return;
    }
    std::vector<std::string> argv{kPython,       kTestdata + "/scripted_server.py",
                                  "--port-file", (dir_.path() / "port").string(),
                                  "--record",    record_path().string()};
    argv.insert(argv.end(), flags.begin(), flags.end());
    child_ = Child(argv, dir_.path() / "server.log");
    for (int i = 0; i < 500 && child_.running(); ++i) {
      if (fs::exists(dir_.path() / "port")) {
        port_ = static_cast<std::uint16_t>(std::stoi(read_file(dir_.path() / "port")));
        break;
      }
      std::this_thread::sleep_for(20ms);
    }
    if (port_ == 0) ADD_FAILURE() << "scripted_server.py did not start: " << read_file(dir_.path() / "server.log");
  }

  std::uint16_t port() const { return port_; }

  std::vector<Received> messages() const {
    std::vector<Received> out;
    std::istringstream in(read_file(record_path()));
    std::string line;
    while (std::getline(in, line)) {
      auto j = nlohmann::json::parse(line);
      Received r;
      r.helo = j.at("helo").get<std::string>();
      r.mail_from = j.at("mail_from").get<std::string>();
      r.mail_options = j.at("mail_options").get<std::vector<std::string>>();
      r.rcpt_tos = j.at("rcpt_tos").get<std::vector<std::string>>();
      r.rcpt_options = j.at("rcpt_options").get<std::vector<std::vector<std::string>>>();
      r.tls = j.at("tls").get<bool>();
      r.content = base64_decode(j.at("content").get<std::string>());
      out.push_back(std::move(r));
    }
    return out;
  }

 private:
  fs::path record_path() const { return dir_.path() / "record.jsonl"; }

  TempDir dir_{"bridgehead_scripted"};
  Child child_;
  std::uint16_t port_ = 0;
};

// ---------------------------------------------------------------------------------------
// Throwaway PKI: a CA, a server certificate for localhost/127.0.0.1 it signed, one it signed
// for another name only, an unrelated CA, and a self-signed certificate.

struct Pki {
  fs::path ca, server_cert, server_key, other_ca, self_cert, self_key, misnamed_cert, misnamed_key;
};

const Pki& pki() {
  static TempDir dir("bridgehead_pki");
  static const Pki made = [] {
    const fs::path d = dir.path();
    const std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    std::ofstream(d / "ext.cnf") << "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                                    "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n";
    std::ofstream(d / "misnamed.cnf") << "subjectAltName=DNS:mx.other.example\n"
                                         "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n";
    const std::string o = kOpenssl;
    const std::string cmd =
        "cd " + d.string() + " && ( " + o + " req -x509 -days 2" + ec +
        " -keyout ca.key -out ca.pem -subj '/CN=Bridgehead Test CA'"
        " -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign && " +
        o + " req" + ec + " -keyout server.key -out server.csr -subj /CN=localhost && " + o +
        " x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2"
        " -extfile ext.cnf && " +
        o + " req" + ec + " -keyout misnamed.key -out misnamed.csr -subj /CN=mx.other.example && " + o +
        " x509 -req -in misnamed.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out misnamed.pem -days 2"
        " -extfile misnamed.cnf && " +
        o + " req -x509 -days 2" + ec +
        " -keyout other.key -out other.pem -subj '/CN=Other CA'"
        " -addext basicConstraints=critical,CA:TRUE && " +
        o + " req -x509 -days 2" + ec +
        " -keyout self.key -out self.pem -subj /CN=self-signed.test"
        " ) > openssl.log 2>&1";
    if (access(kOpenssl, X_OK) != 0 || std::system(cmd.c_str()) != 0) {
      throw std::runtime_error("cannot make test certificates with openssl (install openssl): " +
                               read_file(d / "openssl.log"));
    }
    return Pki{d / "ca.pem",   d / "server.pem", d / "server.key",   d / "other.pem",
               d / "self.pem", d / "self.key",   d / "misnamed.pem", d / "misnamed.key"};
  }();
  return made;
}

// ---------------------------------------------------------------------------------------
// Driving the client

struct Job {
  Envelope envelope;
  std::vector<std::size_t> indices;
  std::string content;
};

struct Run {
  std::optional<Error> open_error;
  Capabilities caps;
  bool tls = false;
  std::string remote;
  std::vector<TransactionResult> results;
};

// Opens a connection, sends each job on it in turn, closes it.
Run talk(std::uint16_t port, ClientOptions options, std::vector<Job> jobs, std::string host = "127.0.0.1") {
  asio::io_context io;
  Run run;
  auto body = [&]() -> awaitable<void> {
    auto c = co_await Connection::open(io.get_executor(), host, port, options);
    if (!c) {
      run.open_error = c.error();
      co_return;
    }
    Connection& conn = **c;
    run.caps = conn.capabilities();
    run.tls = conn.tls_active();
    run.remote = conn.remote();
    for (auto& j : jobs) run.results.push_back(co_await conn.send(j.envelope, j.indices, j.content));
    co_await conn.close();
  };
  std::exception_ptr failure;
  net::spawn(io.get_executor(), body(), [&failure](std::exception_ptr e) { failure = e; });
  io.run();
  if (failure) std::rethrow_exception(failure);
  return run;
}

Job job(std::vector<std::string> rcpts, std::string content, std::string from = "sender@example.com") {
  Job j;
  j.envelope.mail_from = std::move(from);
  for (auto& r : rcpts) j.envelope.recipients.push_back(Recipient{std::move(r), kNotifyNone, {}});
  for (std::size_t i = 0; i < j.envelope.recipients.size(); ++i) j.indices.push_back(i);
  j.content = std::move(content);
  return j;
}

ClientOptions quick_options() {
  ClientOptions o;
  o.helo_name = "client.test";
  o.tls = TlsPolicy::kNone;
  o.connect_timeout = 5s;
  o.command_timeout = 10s;
  o.data_timeout = 10s;
  return o;
}

const std::string kTrickyContent =
    "From: a@example.com\r\nSubject: dots\r\n\r\n.leading dot\r\n.\r\n..two dots\r\nlast line without CRLF";

bool contains(const std::string& haystack, std::string_view needle) {
  return haystack.find(needle) != std::string::npos;
}

// ---------------------------------------------------------------------------------------
// Delivery against smtp-sink

TEST(SmtpClient, DeliversWithPipeliningAndDotStuffsOnTheWire) {
  SmtpSink sink({});
  ASSERT_NE(sink.port(), 0);
  auto run = talk(sink.port(), quick_options(), {job({"one@example.net", "two@example.net"}, kTrickyContent)});
  ASSERT_FALSE(run.open_error) << run.open_error->describe();
  EXPECT_TRUE(run.caps.esmtp);
  EXPECT_TRUE(run.caps.pipelining);
  EXPECT_TRUE(run.caps.dsn);
  EXPECT_FALSE(run.tls);
  EXPECT_EQ(run.remote, "127.0.0.1:" + std::to_string(sink.port()));
  ASSERT_EQ(run.results.size(), 1u);
  const auto& r = run.results[0];
  ASSERT_EQ(r.recipients.size(), 2u);
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(r.recipients[i].index, i);
    EXPECT_EQ(r.recipients[i].outcome, Outcome::kDelivered) << r.recipients[i].reply;
    EXPECT_TRUE(r.recipients[i].from_server);
    EXPECT_EQ(r.recipients[i].reply.substr(0, 3), "250");
  }
  EXPECT_TRUE(r.reusable);
  EXPECT_EQ(r.remote, run.remote);

  auto got = sink.messages(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].helo, "client.test");
  EXPECT_EQ(got[0].mail_args, "<sender@example.com>");
  EXPECT_EQ(got[0].rcpt_args, (std::vector<std::string>{"<one@example.net>", "<two@example.net>"}));
  // smtp-sink dumps the content dot-unstuffed, with LF line ends.
  EXPECT_EQ(got[0].content,
            "From: a@example.com\nSubject: dots\n\n.leading dot\n.\n..two dots\nlast line without CRLF\n");
  EXPECT_TRUE(contains(sink.log(), "smtp-sink: QUIT\n"));
}

TEST(SmtpClient, DeliversOneCommandAtATimeWithoutPipelining) {
  SmtpSink sink({"-p"});
  ASSERT_NE(sink.port(), 0);
  auto run =
      talk(sink.port(), quick_options(), {job({"one@example.net", "two@example.net"}, "Subject: x\r\n\r\nhi\r\n")});
  ASSERT_FALSE(run.open_error) << run.open_error->describe();
  EXPECT_FALSE(run.caps.pipelining);
  ASSERT_EQ(run.results.size(), 1u);
  for (const auto& rr : run.results[0].recipients) EXPECT_EQ(rr.outcome, Outcome::kDelivered) << rr.reply;
  auto got = sink.messages(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].content, "Subject: x\n\nhi\n");
}

TEST(SmtpClient, FallsBackToHeloWhenEhloIsRefused) {
  SmtpSink sink({"-e"});
  ASSERT_NE(sink.port(), 0);
  auto j = job({"one@example.net"}, "Subject: x\r\n\r\nhi\r\n");
  j.envelope.recipients[0].notify = kNotifySuccess;  // no DSN over plain SMTP: must not be sent
  auto run = talk(sink.port(), quick_options(), {j});
  ASSERT_FALSE(run.open_error) << run.open_error->describe();
  EXPECT_FALSE(run.caps.esmtp);
  EXPECT_FALSE(run.caps.pipelining);
  ASSERT_EQ(run.results.size(), 1u);
  EXPECT_EQ(run.results[0].recipients[0].outcome, Outcome::kDelivered) << run.results[0].recipients[0].reply;
  EXPECT_FALSE(run.results[0].dsn_relayed);
  EXPECT_TRUE(contains(sink.log(), "smtp-sink: HELO client.test\n"));
  auto got = sink.messages(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].rcpt_args, std::vector<std::string>{"<one@example.net>"});
}

TEST(SmtpClient, ReusesTheConnectionWithRsetBetweenMessages) {
  SmtpSink sink({});
  ASSERT_NE(sink.port(), 0);
  auto run = talk(sink.port(), quick_options(),
                  {job({"one@example.net"}, "Subject: first\r\n\r\n1\r\n"),
                   job({"two@example.net"}, "Subject: second\r\n\r\n2\r\n", "other@example.com")});
  ASSERT_FALSE(run.open_error) << run.open_error->describe();
  ASSERT_EQ(run.results.size(), 2u);
  for (const auto& res : run.results) {
    EXPECT_TRUE(res.reusable);
    EXPECT_EQ(res.recipients[0].outcome, Outcome::kDelivered) << res.recipients[0].reply;
  }
  auto got = sink.messages(2);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].content, "Subject: first\n\n1\n");
  EXPECT_EQ(got[1].mail_args, "<other@example.com>");
  EXPECT_EQ(got[1].content, "Subject: second\n\n2\n");
  const std::string log = sink.log();
  EXPECT_TRUE(contains(log, "smtp-sink: RSET\n")) << log;
  EXPECT_EQ(log.find("smtp-sink: RSET"), log.rfind("smtp-sink: RSET")) << "exactly one RSET expected:\n" << log;
}

TEST(SmtpClient, RefusedRsetMakesTheNextMessageConnectionTrouble) {
  SmtpSink sink({"-f", "RSET"});
  ASSERT_NE(sink.port(), 0);
  auto run = talk(sink.port(), quick_options(),
                  {job({"one@example.net"}, "Subject: first\r\n\r\n1\r\n"), job({"two@example.net"}, "x\r\n")});
  ASSERT_EQ(run.results.size(), 2u);
  EXPECT_EQ(run.results[0].recipients[0].outcome, Outcome::kDelivered);
  const auto& second = run.results[1];
  EXPECT_FALSE(second.reusable);
  EXPECT_EQ(second.recipients[0].outcome, Outcome::kDeferred);
  EXPECT_FALSE(second.recipients[0].from_server);
  EXPECT_TRUE(contains(second.recipients[0].reply, "RSET")) << second.recipients[0].reply;
  EXPECT_EQ(sink.messages(1).size(), 1u);
}

TEST(SmtpClient, PassesDsnParametersXtextEncodedWhenOffered) {
  SmtpSink sink({});
  ASSERT_NE(sink.port(), 0);
  auto j = job({"one@example.net", "two@example.net"}, "Subject: dsn\r\n\r\nx\r\n");
  j.envelope.ret = DsnRet::kHeaders;
  j.envelope.envid = "id+1 x";
  j.envelope.recipients[0].notify = kNotifySuccess | kNotifyFailure;
  j.envelope.recipients[0].orcpt = "rfc822;first+tag@example.net";
  j.envelope.recipients[1].notify = kNotifyNever;
  auto run = talk(sink.port(), quick_options(), {j});
  ASSERT_EQ(run.results.size(), 1u);
  EXPECT_TRUE(run.results[0].dsn_relayed);
  auto got = sink.messages(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].mail_args, "<sender@example.com> RET=HDRS ENVID=id+2B1+20x");
  EXPECT_EQ(got[0].rcpt_args,
            (std::vector<std::string>{"<one@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;first+2Btag@example.net",
                                      "<two@example.net> NOTIFY=NEVER"}));
}

TEST(SmtpClient, LeavesDsnParametersOutWhenNotOffered) {
  SmtpSink sink({"-N"});
  ASSERT_NE(sink.port(), 0);
  auto j = job({"one@example.net"}, "Subject: dsn\r\n\r\nx\r\n");
  j.envelope.ret = DsnRet::kFull;
  j.envelope.envid = "id1";
  j.envelope.recipients[0].notify = kNotifyFailure;
  j.envelope.recipients[0].orcpt = "rfc822;one@example.net";
  auto run = talk(sink.port(), quick_options(), {j});
  ASSERT_EQ(run.results.size(), 1u);
  EXPECT_FALSE(run.caps.dsn);
  EXPECT_FALSE(run.results[0].dsn_relayed);
  EXPECT_EQ(run.results[0].recipients[0].outcome, Outcome::kDelivered);
  auto got = sink.messages(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].mail_args, "<sender@example.com>");
  EXPECT_EQ(got[0].rcpt_args, std::vector<std::string>{"<one@example.net>"});
}

TEST(SmtpClient, DeclaresEightBitBodyWhenTheServerHasEightBitMime) {
  SmtpSink sink({});
  ASSERT_NE(sink.port(), 0);
  auto j = job({"one@example.net"}, "Subject: caf\xc3\xa9\r\n\r\nna\xc3\xafve\r\n");
  j.envelope.body = BodyType::k8BitMime;
  auto run = talk(sink.port(), quick_options(), {j});
  ASSERT_EQ(run.results.size(), 1u);
  EXPECT_EQ(run.results[0].recipients[0].outcome, Outcome::kDelivered);
  auto got = sink.messages(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].mail_args, "<sender@example.com> BODY=8BITMIME");
  EXPECT_EQ(got[0].content, "Subject: caf\xc3\xa9\n\nna\xc3\xafve\n");
}

TEST(SmtpClient, DowngradesEightBitContentForAServerWithoutEightBitMime) {
  SmtpSink sink({"-8"});
  ASSERT_NE(sink.port(), 0);
  auto options = quick_options();
  int calls = 0;
  std::string seen;
  options.downgrade_8bit = [&](std::string_view in) -> Expected<std::string> {
    ++calls;
    seen = std::string(in);
    return std::string(
        "Subject: =?utf-8?q?caf=C3=A9?=\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
        "na=C3=AFve\r\n");
  };
  auto j = job({"one@example.net"}, "Subject: caf\xc3\xa9\r\n\r\nna\xc3\xafve\r\n");
  j.envelope.body = BodyType::k8BitMime;
  auto run = talk(sink.port(), options, {j});
  ASSERT_EQ(run.results.size(), 1u);
  EXPECT_FALSE(run.caps.eight_bit_mime);
  EXPECT_EQ(run.results[0].recipients[0].outcome, Outcome::kDelivered) << run.results[0].recipients[0].reply;
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(seen, j.content);
  auto got = sink.messages(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].mail_args, "<sender@example.com>");
  EXPECT_EQ(got[0].content,
            "Subject: =?utf-8?q?caf=C3=A9?=\nContent-Transfer-Encoding: quoted-printable\n\nna=C3=AFve\n");
}

TEST(SmtpClient, FailsEightBitContentWithoutDowngradeAndKeepsTheConnection) {
  SmtpSink sink({"-8"});
  ASSERT_NE(sink.port(), 0);
  auto options = quick_options();
  auto eight = job({"one@example.net", "two@example.net"}, "Subject: x\r\n\r\nna\xc3\xafve\r\n");
  auto seven = job({"three@example.net"}, "Subject: y\r\n\r\nplain\r\n");
  auto run = talk(sink.port(), options, {eight, seven});
  ASSERT_EQ(run.results.size(), 2u);
  for (const auto& rr : run.results[0].recipients) {
    EXPECT_EQ(rr.outcome, Outcome::kFailed);
    EXPECT_FALSE(rr.from_server);
    EXPECT_EQ(rr.reply.rfind("554 5.6.3 conversion to 7-bit not possible: ", 0), 0u) << rr.reply;
  }
  EXPECT_TRUE(run.results[0].reusable);
  EXPECT_EQ(run.results[1].recipients[0].outcome, Outcome::kDelivered);

  // A downgrade hook that fails fails the message with its reason.
  options.downgrade_8bit = [](std::string_view) -> Expected<std::string> {
    return fail(Error::permanent(ErrorCode::kParse, "part 2 is binary"));
  };
  auto run2 = talk(sink.port(), options, {eight});
  ASSERT_EQ(run2.results.size(), 1u);
  EXPECT_EQ(run2.results[0].recipients[0].outcome, Outcome::kFailed);
  EXPECT_EQ(run2.results[0].recipients[0].reply, "554 5.6.3 conversion to 7-bit not possible: part 2 is binary");
  auto got = sink.messages(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].content, "Subject: y\n\nplain\n");
}

TEST(SmtpClient, FailsSmtpUtf8MessageForAServerWithoutSmtpUtf8) {
  SmtpSink sink({});
  ASSERT_NE(sink.port(), 0);
  auto j = job({"j\xc3\xb6rg@example.net"}, "Subject: x\r\n\r\nhi\r\n");
  j.envelope.smtputf8 = true;
  auto run = talk(sink.port(), quick_options(), {j, job({"one@example.net"}, "x\r\n")});
  ASSERT_EQ(run.results.size(), 2u);
  const auto& rr = run.results[0].recipients[0];
  EXPECT_EQ(rr.outcome, Outcome::kFailed);
  EXPECT_FALSE(rr.from_server);
  EXPECT_EQ(rr.reply.rfind("550 5.6.7 127.0.0.1:" + std::to_string(sink.port()) + " does not support SMTPUTF8", 0), 0u)
      << rr.reply;
  EXPECT_TRUE(run.results[0].reusable);
  EXPECT_EQ(run.results[1].recipients[0].outcome, Outcome::kDelivered);
}

TEST(SmtpClient, RefusedRecipientsGetTheServersPermanentReply) {
  SmtpSink sink({"-f", "RCPT"});
  ASSERT_NE(sink.port(), 0);
  auto run = talk(sink.port(), quick_options(),
                  {job({"one@example.net", "two@example.net"}, "x\r\n"), job({"three@example.net"}, "y\r\n")});
  ASSERT_EQ(run.results.size(), 2u);
  for (const auto& res : run.results) {
    EXPECT_TRUE(res.reusable);
    for (const auto& rr : res.recipients) {
      EXPECT_EQ(rr.outcome, Outcome::kFailed);
      EXPECT_TRUE(rr.from_server);
      EXPECT_EQ(rr.reply, "500 5.3.0 Error: command failed");
    }
  }
  EXPECT_TRUE(sink.messages().empty());
  EXPECT_FALSE(contains(sink.log(), "smtp-sink: DATA\n")) << "DATA must not follow when no recipient was accepted";
}

TEST(SmtpClient, TransientMailRefusalDefersEveryRecipient) {
  SmtpSink sink({"-r", "MAIL"});
  ASSERT_NE(sink.port(), 0);
  auto run = talk(sink.port(), quick_options(), {job({"one@example.net", "two@example.net"}, "x\r\n")});
  ASSERT_EQ(run.results.size(), 1u);
  EXPECT_TRUE(run.results[0].reusable);
  for (const auto& rr : run.results[0].recipients) {
    EXPECT_EQ(rr.outcome, Outcome::kDeferred);
    EXPECT_TRUE(rr.from_server);
    EXPECT_EQ(rr.reply, "450 4.3.0 Error: command failed");
  }
  EXPECT_TRUE(sink.messages().empty());
}

TEST(SmtpClient, DisconnectAfterTheMessageDefersAndEndsTheConnection) {
  SmtpSink sink({"-q", "."});
  ASSERT_NE(sink.port(), 0);
  auto run = talk(sink.port(), quick_options(),
                  {job({"one@example.net", "two@example.net"}, "x\r\n"), job({"three@example.net"}, "y\r\n")});
  ASSERT_EQ(run.results.size(), 2u);
  EXPECT_FALSE(run.results[0].reusable);
  for (const auto& rr : run.results[0].recipients) {
    EXPECT_EQ(rr.outcome, Outcome::kDeferred);
    EXPECT_FALSE(rr.from_server);
    EXPECT_EQ(rr.reply,
              "connection to 127.0.0.1:" + std::to_string(sink.port()) + " lost after end of DATA: end of file");
  }
  // Used anyway, a broken connection defers without touching the network.
  EXPECT_EQ(run.results[1].recipients[0].outcome, Outcome::kDeferred);
  EXPECT_FALSE(run.results[1].reusable);
}

TEST(SmtpClient, ServiceClosingReplyDefersWithTheServersWords) {
  SmtpSink sink({"-Q", "RCPT"});
  ASSERT_NE(sink.port(), 0);
  auto run = talk(sink.port(), quick_options(), {job({"one@example.net", "two@example.net"}, "x\r\n")});
  ASSERT_EQ(run.results.size(), 1u);
  EXPECT_FALSE(run.results[0].reusable);
  for (const auto& rr : run.results[0].recipients) {
    EXPECT_EQ(rr.outcome, Outcome::kDeferred);
    EXPECT_TRUE(rr.from_server);
    EXPECT_EQ(rr.reply.substr(0, 4), "421 ") << rr.reply;
  }
}

TEST(SmtpClient, SlowDataReplyTimesOut) {
  SmtpSink sink({"-p", "-w", "4"});
  ASSERT_NE(sink.port(), 0);
  auto options = quick_options();
  options.command_timeout = 1s;
  auto run = talk(sink.port(), options, {job({"one@example.net"}, "x\r\n")});
  ASSERT_EQ(run.results.size(), 1u);
  EXPECT_FALSE(run.results[0].reusable);
  const auto& rr = run.results[0].recipients[0];
  EXPECT_EQ(rr.outcome, Outcome::kDeferred);
  EXPECT_FALSE(rr.from_server);
  EXPECT_EQ(rr.reply, "timed out after 1s waiting for the reply to DATA from 127.0.0.1:" + std::to_string(sink.port()));
}

// ---------------------------------------------------------------------------------------
// open() failures

TEST(SmtpClientOpen, RefusedConnectionIsTransientAndNamesTheAddress) {
  const std::uint16_t port = free_port();
  auto run = talk(port, quick_options(), {});
  ASSERT_TRUE(run.open_error);
  EXPECT_TRUE(run.open_error->transient());
  EXPECT_EQ(run.open_error->code, ErrorCode::kUnavailable);
  EXPECT_TRUE(contains(run.open_error->message, "127.0.0.1:" + std::to_string(port))) << run.open_error->message;
  EXPECT_TRUE(contains(run.open_error->message, "refused")) << run.open_error->message;
}

TEST(SmtpClientOpen, SilentServerTimesOutWaitingForTheGreeting) {
  SilentListener silent;
  auto options = quick_options();
  options.connect_timeout = 1s;
  options.command_timeout = 1s;
  const auto start = std::chrono::steady_clock::now();
  auto run = talk(silent.port(), options, {});
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(run.open_error);
  EXPECT_TRUE(run.open_error->transient());
  EXPECT_EQ(run.open_error->code, ErrorCode::kTimeout);
  EXPECT_EQ(run.open_error->message,
            "timed out after 1s waiting for the reply to greeting from 127.0.0.1:" + std::to_string(silent.port()));
  EXPECT_LT(took, 5s);
}

TEST(SmtpClientOpen, GreetingRefusalIsPermanentFor5xxAndTransientFor4xx) {
  {
    SmtpSink sink({"-f", "CONNECT"});
    ASSERT_NE(sink.port(), 0);
    auto run = talk(sink.port(), quick_options(), {});
    ASSERT_TRUE(run.open_error);
    EXPECT_FALSE(run.open_error->transient()) << run.open_error->describe();
    EXPECT_TRUE(contains(run.open_error->message, "127.0.0.1:" + std::to_string(sink.port())));
    EXPECT_TRUE(contains(run.open_error->message, "500 5.3.0")) << run.open_error->message;
  }
  {
    SmtpSink sink({"-r", "CONNECT"});
    ASSERT_NE(sink.port(), 0);
    auto run = talk(sink.port(), quick_options(), {});
    ASSERT_TRUE(run.open_error);
    EXPECT_TRUE(run.open_error->transient());
    EXPECT_TRUE(contains(run.open_error->message, "450 4.3.0")) << run.open_error->message;
  }
}

TEST(SmtpClientOpen, ResolvesHostNames) {
  SmtpSink sink({});
  ASSERT_NE(sink.port(), 0);
  auto run = talk(sink.port(), quick_options(), {job({"one@example.net"}, "x\r\n")}, "localhost");
  ASSERT_FALSE(run.open_error) << run.open_error->describe();
  ASSERT_EQ(run.results.size(), 1u);
  EXPECT_EQ(run.results[0].recipients[0].outcome, Outcome::kDelivered);
}

// ---------------------------------------------------------------------------------------
// Against the scripted server: per-recipient replies, SIZE, LMTP

TEST(SmtpClientScripted, MixedRecipientRepliesWithPipeliningAndExactContent) {
  ScriptedServer server({"--pipelining", "--rcpt-reply", "bad@example.net=550 5.1.1 <bad@example.net>: user unknown",
                         "--rcpt-reply", "full@example.net=452 4.2.2 <full@example.net>: mailbox full"});
  ASSERT_NE(server.port(), 0);
  auto run =
      talk(server.port(), quick_options(),
           {job({"good@example.net", "bad@example.net", "full@example.net", "also@example.net"}, kTrickyContent)});
  ASSERT_FALSE(run.open_error) << run.open_error->describe();
  EXPECT_TRUE(run.caps.pipelining);
  ASSERT_EQ(run.results.size(), 1u);
  const auto& rs = run.results[0].recipients;
  ASSERT_EQ(rs.size(), 4u);
  EXPECT_EQ(rs[0].outcome, Outcome::kDelivered);
  EXPECT_EQ(rs[1].outcome, Outcome::kFailed);
  EXPECT_EQ(rs[1].reply, "550 5.1.1 <bad@example.net>: user unknown");
  EXPECT_TRUE(rs[1].from_server);
  EXPECT_EQ(rs[2].outcome, Outcome::kDeferred);
  EXPECT_EQ(rs[2].reply, "452 4.2.2 <full@example.net>: mailbox full");
  EXPECT_EQ(rs[3].outcome, Outcome::kDelivered);
  EXPECT_EQ(rs[3].reply, "250 2.0.0 Ok: queued");
  EXPECT_TRUE(run.results[0].reusable);

  auto got = server.messages();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].rcpt_tos, (std::vector<std::string>{"good@example.net", "also@example.net"}));
  // Dot-unstuffed by the server, the content is exactly what was handed over (plus the
  // CRLF the last line lacked).
  EXPECT_EQ(got[0].content, kTrickyContent + "\r\n");
}

TEST(SmtpClientScripted, MixedRecipientRepliesOneByOne) {
  ScriptedServer server({"--rcpt-reply", "bad@example.net=550 5.1.1 no such user"});
  ASSERT_NE(server.port(), 0);
  auto run = talk(server.port(), quick_options(),
                  {job({"bad@example.net", "good@example.net"}, "Subject: x\r\n\r\nhi\r\n"),
                   job({"bad@example.net"}, "y\r\n"), job({"good@example.net"}, "z\r\n")});
  ASSERT_EQ(run.results.size(), 3u);
  EXPECT_FALSE(run.caps.pipelining);
  EXPECT_EQ(run.results[0].recipients[0].outcome, Outcome::kFailed);
  EXPECT_EQ(run.results[0].recipients[1].outcome, Outcome::kDelivered);
  EXPECT_EQ(run.results[1].recipients[0].outcome, Outcome::kFailed);
  EXPECT_TRUE(run.results[1].reusable);
  EXPECT_EQ(run.results[2].recipients[0].outcome, Outcome::kDelivered);
  auto got = server.messages();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[1].content, "z\r\n");
}

TEST(SmtpClientScripted, SizeIsDeclaredAndAnOversizedMessageFailsBeforeMail) {
  ScriptedServer server({"--pipelining", "--size", "100"});
  ASSERT_NE(server.port(), 0);
  const std::string big = "Subject: big\r\n\r\n" + std::string(200, 'x') + "\r\n";
  auto run = talk(server.port(), quick_options(),
                  {job({"one@example.net"}, big), job({"one@example.net"}, "Subject: small\r\n\r\nx\r\n")});
  ASSERT_EQ(run.results.size(), 2u);
  EXPECT_EQ(run.caps.size, 100u);
  const auto& rr = run.results[0].recipients[0];
  EXPECT_EQ(rr.outcome, Outcome::kFailed);
  EXPECT_FALSE(rr.from_server);
  EXPECT_EQ(rr.reply, "552 5.3.4 message size " + std::to_string(big.size()) +
                          " exceeds the limit 100 of 127.0.0.1:" + std::to_string(server.port()));
  EXPECT_TRUE(run.results[0].reusable);
  EXPECT_EQ(run.results[1].recipients[0].outcome, Outcome::kDelivered);
  auto got = server.messages();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].mail_options, std::vector<std::string>{"SIZE=21"});  // "Subject: small\r\n\r\nx\r\n"
}

TEST(SmtpClientScripted, SmtpUtf8IsDeclaredWhenOffered) {
  ScriptedServer server({"--smtputf8"});
  ASSERT_NE(server.port(), 0);
  auto j = job({"j\xc3\xb6rg@example.net"}, "Subject: x\r\n\r\nhi\r\n");
  j.envelope.smtputf8 = true;
  j.envelope.body = BodyType::k8BitMime;
  auto run = talk(server.port(), quick_options(), {j});
  ASSERT_EQ(run.results.size(), 1u);
  EXPECT_EQ(run.results[0].recipients[0].outcome, Outcome::kDelivered) << run.results[0].recipients[0].reply;
  auto got = server.messages();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].mail_options, (std::vector<std::string>{"BODY=8BITMIME", "SMTPUTF8"}));
}

TEST(SmtpClientScripted, LmtpGivesEachAcceptedRecipientItsOwnFinalReply) {
  ScriptedServer server({"--lmtp", "--pipelining", "--data-reply", "b@example.net=452 4.2.2 <b@example.net> over quota",
                         "--data-reply", "c@example.net=550 5.1.1 <c@example.net> no mailbox", "--rcpt-reply",
                         "d@example.net=550 5.1.1 <d@example.net> unknown"});
  ASSERT_NE(server.port(), 0);
  auto options = quick_options();
  options.lmtp = true;
  auto run = talk(server.port(), options,
                  {job({"a@example.net", "b@example.net", "c@example.net", "d@example.net", "e@example.net"},
                       "Subject: lmtp\r\n\r\nhello\r\n"),
                   job({"e@example.net"}, "second\r\n")});
  ASSERT_FALSE(run.open_error) << run.open_error->describe();
  ASSERT_EQ(run.results.size(), 2u);
  const auto& rs = run.results[0].recipients;
  ASSERT_EQ(rs.size(), 5u);
  EXPECT_EQ(rs[0].outcome, Outcome::kDelivered);
  EXPECT_EQ(rs[0].reply, "250 2.1.5 <a@example.net> delivered");
  EXPECT_EQ(rs[1].outcome, Outcome::kDeferred);
  EXPECT_EQ(rs[1].reply, "452 4.2.2 <b@example.net> over quota");
  EXPECT_EQ(rs[2].outcome, Outcome::kFailed);
  EXPECT_EQ(rs[2].reply, "550 5.1.1 <c@example.net> no mailbox");
  EXPECT_EQ(rs[3].outcome, Outcome::kFailed);
  EXPECT_EQ(rs[3].reply, "550 5.1.1 <d@example.net> unknown");
  EXPECT_EQ(rs[4].outcome, Outcome::kDelivered);
  EXPECT_EQ(rs[4].reply, "250 2.1.5 <e@example.net> delivered");
  for (const auto& rr : rs) EXPECT_TRUE(rr.from_server);
  EXPECT_TRUE(run.results[0].reusable);
  EXPECT_EQ(run.results[1].recipients[0].outcome, Outcome::kDelivered);
  auto got = server.messages();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].helo, "client.test");
  EXPECT_EQ(got[0].content, "Subject: lmtp\r\n\r\nhello\r\n");
}

// ---------------------------------------------------------------------------------------
// Content from a source, in pieces (issue 8: a delivery never holds the whole message)

// Hands out the given pieces in order, then the end; or fails after `fail_after` pieces.
class PieceSource final : public ContentSource {
 public:
  PieceSource(std::vector<std::string> pieces, std::size_t fail_after = SIZE_MAX)
      : pieces_(std::move(pieces)), fail_after_(fail_after) {
    std::string whole;
    for (const auto& p : pieces_) whole += p;
    info_ = {message_size(whole), has_8bit(whole)};
  }
  ContentInfo info() const override { return info_; }
  awaitable<Expected<std::string_view>> next_piece() override {
    if (next_ == fail_after_) {
      co_return fail(Error::transient_error(ErrorCode::kIo, "cannot read spool segment 7: Input/output error"));
    }
    if (next_ == pieces_.size()) co_return std::string_view();
    ++reads_;
    co_return std::string_view(pieces_[next_++]);
  }
  std::size_t reads() const { return reads_; }

 private:
  std::vector<std::string> pieces_;
  std::size_t fail_after_;
  std::size_t next_ = 0;
  std::size_t reads_ = 0;
  ContentInfo info_;
};

// Opens a connection and sends `j` once per source, in turn, on it.
Run talk_sources(std::uint16_t port, ClientOptions options, const Job& j, std::vector<ContentSource*> sources) {
  asio::io_context io;
  Run run;
  auto body = [&]() -> awaitable<void> {
    auto c = co_await Connection::open(io.get_executor(), "127.0.0.1", port, options);
    if (!c) {
      run.open_error = c.error();
      co_return;
    }
    for (ContentSource* s : sources) run.results.push_back(co_await (*c)->send(j.envelope, j.indices, *s));
    co_await (*c)->close();
  };
  std::exception_ptr failure;
  net::spawn(io.get_executor(), body(), [&failure](std::exception_ptr e) { failure = e; });
  io.run();
  if (failure) std::rethrow_exception(failure);
  return run;
}

std::vector<std::string> cut(std::string_view content, std::size_t piece) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < content.size(); i += piece) out.emplace_back(content.substr(i, piece));
  return out;
}

TEST(SmtpClientStreaming, ContentInPiecesArrivesExactlyWhateverThePieceSize) {
  ScriptedServer server({"--pipelining"});
  ASSERT_NE(server.port(), 0);
  // Dot lines and CRLFs at every offset of the pieces, and a body larger than a write.
  std::string content = "Subject: pieces\r\n\r\n.one\r\n.\r\n..two\r\nx\r\n.\r\n";
  for (int i = 0; content.size() < 300000; ++i) content += (i % 3 == 0 ? "." : "") + std::string(i % 97, 'a') + "\r\n";
  content += ".last line without CRLF";
  std::string want = content + "\r\n";
  const std::vector<std::size_t> sizes = {1, 2, 3, 5, 4096, 65536, 1 << 20};
  std::vector<PieceSource> sources;
  sources.reserve(sizes.size());
  std::vector<ContentSource*> order;
  for (std::size_t n : sizes) order.push_back(&sources.emplace_back(cut(content, n)));
  auto run = talk_sources(server.port(), quick_options(), job({"one@example.net"}, ""), order);
  ASSERT_FALSE(run.open_error) << run.open_error->describe();
  ASSERT_EQ(run.results.size(), sizes.size());
  for (const auto& r : run.results) EXPECT_EQ(r.recipients[0].outcome, Outcome::kDelivered) << r.recipients[0].reply;
  auto got = server.messages();
  ASSERT_EQ(got.size(), sizes.size());
  for (std::size_t k = 0; k < got.size(); ++k) {
    EXPECT_EQ(got[k].content.size(), want.size()) << "pieces of " << sizes[k];
    EXPECT_TRUE(got[k].content == want) << "pieces of " << sizes[k];
  }
}

TEST(SmtpClientStreaming, AReadErrorAfterDataBreaksTheConnectionSoNothingPartialIsDelivered) {
  ScriptedServer server({"--pipelining"});
  ASSERT_NE(server.port(), 0);
  PieceSource broken({"Subject: half\r\n\r\n", "the first half\r\n", "never sent\r\n"}, 2);
  auto run = talk_sources(server.port(), quick_options(), job({"one@example.net", "two@example.net"}, ""),
                          {&broken});
  ASSERT_FALSE(run.open_error) << run.open_error->describe();
  ASSERT_EQ(run.results.size(), 1u);
  for (const auto& r : run.results[0].recipients) {
    EXPECT_EQ(r.outcome, Outcome::kDeferred);
    EXPECT_FALSE(r.from_server);
    EXPECT_TRUE(contains(r.reply, "cannot read the message content while sending it to 127.0.0.1:")) << r.reply;
    EXPECT_TRUE(contains(r.reply, "spool segment 7: Input/output error")) << r.reply;
  }
  EXPECT_FALSE(run.results[0].reusable);
  EXPECT_EQ(broken.reads(), 2u);
  std::this_thread::sleep_for(200ms);  // the server would have recorded by now
  EXPECT_TRUE(server.messages().empty());
}

TEST(SmtpClientStreaming, TheDowngradeRunsOnTheBlockingExecutorWithTheWholeMessage) {
  SmtpSink sink({"-8"});
  ASSERT_NE(sink.port(), 0);
  asio::thread_pool pool(1);
  auto options = quick_options();
  options.blocking = pool.get_executor();
  std::thread::id converted_on;
  std::string seen;
  options.downgrade_8bit = [&](std::string_view in) -> Expected<std::string> {
    converted_on = std::this_thread::get_id();
    seen = std::string(in);
    return std::string("Subject: =?utf-8?q?caf=C3=A9?=\r\n\r\nplain now\r\n");
  };
  const std::string original = "Subject: caf\xc3\xa9\r\n\r\nna\xc3\xafve\r\n";
  PieceSource source(cut(original, 3));
  auto run = talk_sources(sink.port(), options, job({"one@example.net"}, ""), {&source});
  pool.join();
  ASSERT_EQ(run.results.size(), 1u);
  EXPECT_EQ(run.results[0].recipients[0].outcome, Outcome::kDelivered) << run.results[0].recipients[0].reply;
  EXPECT_NE(converted_on, std::thread::id());
  EXPECT_NE(converted_on, std::this_thread::get_id()) << "the downgrade ran on the I/O thread";
  EXPECT_EQ(seen, original);
  auto got = sink.messages(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].content, "Subject: =?utf-8?q?caf=C3=A9?=\n\nplain now\n");
}

// ---------------------------------------------------------------------------------------
// STARTTLS

TEST(SmtpClientTls, RequiredTlsVerifiesTheChainAndTheName) {
  const Pki& p = pki();
  ScriptedServer server({"--pipelining", "--tls-cert", p.server_cert.string(), "--tls-key", p.server_key.string()});
  ASSERT_NE(server.port(), 0);
  auto options = quick_options();
  options.tls = TlsPolicy::kRequired;
  options.ca_file = p.ca.string();
  options.verify_name = "localhost";
  bool hook_called = false;
  options.configure_tls = [&hook_called](asio::ssl::context&) { hook_called = true; };
  auto run = talk(server.port(), options, {job({"one@example.net"}, "Subject: tls\r\n\r\n.secret\r\n")});
  ASSERT_FALSE(run.open_error) << run.open_error->describe();
  EXPECT_TRUE(hook_called);
  EXPECT_TRUE(run.tls);
  EXPECT_FALSE(run.caps.starttls) << "capabilities must be those of the EHLO after STARTTLS";
  ASSERT_EQ(run.results.size(), 1u);
  EXPECT_EQ(run.results[0].recipients[0].outcome, Outcome::kDelivered) << run.results[0].recipients[0].reply;
  auto got = server.messages();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_TRUE(got[0].tls);
  EXPECT_EQ(got[0].content, "Subject: tls\r\n\r\n.secret\r\n");
}

TEST(SmtpClientTls, RequiredTlsFailsAgainstTheWrongCaOrName) {
  const Pki& p = pki();
  ScriptedServer server({"--tls-cert", p.server_cert.string(), "--tls-key", p.server_key.string()});
  ASSERT_NE(server.port(), 0);
  auto options = quick_options();
  options.tls = TlsPolicy::kRequired;
  options.ca_file = p.other_ca.string();
  auto run = talk(server.port(), options, {});
  ASSERT_TRUE(run.open_error);
  EXPECT_TRUE(run.open_error->transient());
  EXPECT_TRUE(contains(run.open_error->message, "does not verify")) << run.open_error->message;
  EXPECT_TRUE(contains(run.open_error->message, "127.0.0.1:" + std::to_string(server.port())));

  options.ca_file = p.ca.string();
  options.verify_name = "mx.elsewhere.example";
  auto run2 = talk(server.port(), options, {});
  ASSERT_TRUE(run2.open_error);
  EXPECT_TRUE(run2.open_error->transient());
  EXPECT_TRUE(contains(run2.open_error->message, "is for localhost, 127.0.0.1, not mx.elsewhere.example"))
      << run2.open_error->message;
}

// Issue 8: without verify_name the name checked is the host the connection was opened to,
// never nothing; a trusted chain for another name is a mismatch that names both names.
TEST(SmtpClientTls, RequiredTlsChecksTheHostNameWhenNoVerifyNameIsGiven) {
  const Pki& p = pki();
  ScriptedServer server({"--tls-cert", p.misnamed_cert.string(), "--tls-key", p.misnamed_key.string()});
  ASSERT_NE(server.port(), 0);
  auto options = quick_options();
  options.tls = TlsPolicy::kRequired;
  options.ca_file = p.ca.string();
  auto run = talk(server.port(), options, {job({"one@example.net"}, "x\r\n")}, "localhost");
  ASSERT_TRUE(run.open_error) << "a certificate for mx.other.example was accepted for localhost";
  EXPECT_TRUE(run.open_error->transient());
  EXPECT_TRUE(contains(run.open_error->message, "is for mx.other.example, not localhost"))
      << run.open_error->message;
  EXPECT_TRUE(server.messages().empty());

  // A next hop named by IP: the address must be among the certificate's IP names.
  auto by_ip = talk(server.port(), options, {});
  ASSERT_TRUE(by_ip.open_error);
  EXPECT_TRUE(contains(by_ip.open_error->message, "is for mx.other.example, not 127.0.0.1"))
      << by_ip.open_error->message;
}

TEST(SmtpClientTls, RequiredTlsAcceptsTheHostOrItsIpAddressWhenTheCertificateNamesThem) {
  const Pki& p = pki();
  ScriptedServer server({"--tls-cert", p.server_cert.string(), "--tls-key", p.server_key.string()});
  ASSERT_NE(server.port(), 0);
  auto options = quick_options();
  options.tls = TlsPolicy::kRequired;
  options.ca_file = p.ca.string();
  for (const std::string host : {"localhost", "127.0.0.1"}) {
    auto run = talk(server.port(), options, {job({"one@example.net"}, "x\r\n")}, host);
    ASSERT_FALSE(run.open_error) << host << ": " << run.open_error->describe();
    EXPECT_TRUE(run.tls);
  }
}

TEST(SmtpClientTls, RequiredTlsFailsWhenStarttlsIsNotOffered) {
  SmtpSink sink({});
  ASSERT_NE(sink.port(), 0);
  auto options = quick_options();
  options.tls = TlsPolicy::kRequired;
  auto run = talk(sink.port(), options, {});
  ASSERT_TRUE(run.open_error);
  EXPECT_TRUE(run.open_error->transient());
  EXPECT_EQ(run.open_error->message,
            "TLS is required for 127.0.0.1:" + std::to_string(sink.port()) + " but the server does not offer STARTTLS");
}

TEST(SmtpClientTls, OpportunisticTlsAcceptsASelfSignedCertificate) {
  const Pki& p = pki();
  ScriptedServer server({"--tls-cert", p.self_cert.string(), "--tls-key", p.self_key.string()});
  ASSERT_NE(server.port(), 0);
  auto options = quick_options();
  options.tls = TlsPolicy::kOpportunistic;
  auto run = talk(server.port(), options, {job({"one@example.net"}, "x\r\n")});
  ASSERT_FALSE(run.open_error) << run.open_error->describe();
  EXPECT_TRUE(run.tls);
  ASSERT_EQ(run.results.size(), 1u);
  EXPECT_EQ(run.results[0].recipients[0].outcome, Outcome::kDelivered);
  auto got = server.messages();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_TRUE(got[0].tls);

  // Policy "none" stays in plaintext even when STARTTLS is offered.
  options.tls = TlsPolicy::kNone;
  auto plain = talk(server.port(), options, {job({"one@example.net"}, "x\r\n")});
  ASSERT_FALSE(plain.open_error);
  EXPECT_FALSE(plain.tls);
  EXPECT_TRUE(plain.caps.starttls);
}

}  // namespace
}  // namespace bridgehead::smtp::client
