// A private slapd for C++ tests: runs `python3 tests/support/slapd.py serve` (the fixture the
// Python tests use), reads the one JSON line it prints, and stops it in the destructor by
// closing its stdin (then SIGTERM, then SIGKILL for the script and, by its pid, for slapd),
// so no process outlives the test. Header-only; needs nlohmann_json (bridgehead::core has it).
// The script and interpreter come from BRIDGEHEAD_SLAPD_SCRIPT and BRIDGEHEAD_PYTHON3, which
// the test's CMakeLists defines.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace bridgehead::test_support {

struct SlapdInfo {
  std::string uri;        ///< ldap://127.0.0.1:PORT (StartTLS available)
  std::string ldaps_uri;  ///< ldaps://127.0.0.1:PORT
  std::string base;       ///< dc=acme,dc=example or o=Acme
  std::string root_dn, root_password;
  std::string service_dn, service_password;  ///< subject to the size limit, unlike the rootdn
  std::string ca_file, wrong_ca_file;
  std::string client_cert, client_key, client_p12;  ///< PEM, PEM, PKCS#12 without a password
  std::string client_maps_to;                       ///< the entry SASL EXTERNAL with the client cert is
  std::string dir;
  int size_limit = 0;
  int sessionlog = 0;         ///< syncprov's session log size; 0: none
  std::string dsa_dn;         ///< ad_dsa: the NTDS Settings entry the rootDSE's dsServiceName names
  std::string invocation_id;  ///< ad_dsa: its invocationId as 32 hex digits (octets in order)
  long long highest_usn = 0;  ///< ad_dsa: the rootDSE's highestCommittedUSN (fixed while slapd runs)
  pid_t pid = -1;             ///< slapd's
};

struct SlapdOptions {
  std::string profile = "ad";  ///< "ad" or "domino"
  bool dbnosync = true;
  std::string ldif_file;         ///< loaded with slapadd before slapd starts; empty: none
  int sessionlog = 0;            ///< syncprov-sessionlog N (refreshDeletes with a recent cookie); 0: none
  bool ad_dsa = false;           ///< ad profile: rootDSE highestCommittedUSN/dsServiceName, an NTDS Settings entry
  long long highest_usn = 1000;  ///< with ad_dsa
  bool show_deleted = false;     ///< ad profile: supportedControl lists AD's show-deleted control
};

class SlapdProcess {
 public:
  using Options = SlapdOptions;

  /// Starts slapd in `dir`; throws std::runtime_error with the fixture's message on failure.
  explicit SlapdProcess(const std::filesystem::path& dir, Options options = {}) {
    std::vector<std::string> args = {
        BRIDGEHEAD_PYTHON3, BRIDGEHEAD_SLAPD_SCRIPT, "serve", "--profile", options.profile, "--dir", dir.string()};
    if (options.dbnosync) args.emplace_back("--dbnosync");
    if (!options.ldif_file.empty()) {
      args.emplace_back("--ldif");
      args.push_back(options.ldif_file);
    }
    if (options.sessionlog > 0) {
      args.emplace_back("--sessionlog");
      args.push_back(std::to_string(options.sessionlog));
    }
    if (options.ad_dsa || options.show_deleted) {
      args.emplace_back("--ad-dsa");
      args.emplace_back("--highest-usn");
      args.push_back(std::to_string(options.highest_usn));
    }
    if (options.show_deleted) args.emplace_back("--show-deleted");
    int in[2], out[2];
    if (::pipe2(in, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
    if (::pipe2(out, O_CLOEXEC) != 0) {
      ::close(in[0]);
      ::close(in[1]);
      throw std::runtime_error("pipe failed");
    }
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(in[0], 0);
      ::dup2(out[1], 1);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(in[0]);
    ::close(out[1]);
    stdin_ = in[1];
    stdout_ = out[0];
    if (pid_ < 0) {
      close_fds();
      throw std::runtime_error("fork failed");
    }
    std::string line;
    try {
      line = read_line(std::chrono::seconds(180));
    } catch (...) {
      stop();
      throw;
    }
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      stop();
      throw std::runtime_error("slapd.py printed no JSON: " + line);
    }
    if (j.contains("error")) {
      stop();
      throw std::runtime_error("slapd.py: " + j["error"].get<std::string>());
    }
    auto s = [&](const char* k) { return j.value(k, std::string()); };
    info_.uri = s("uri");
    info_.ldaps_uri = s("ldaps_uri");
    info_.base = s("base");
    info_.root_dn = s("root_dn");
    info_.root_password = s("root_password");
    info_.service_dn = s("service_dn");
    info_.service_password = s("service_password");
    info_.ca_file = s("ca_file");
    info_.wrong_ca_file = s("wrong_ca_file");
    info_.client_cert = s("client_cert");
    info_.client_key = s("client_key");
    info_.client_p12 = s("client_p12");
    info_.client_maps_to = s("client_maps_to");
    info_.dir = s("dir");
    info_.size_limit = j.value("size_limit", 0);
    info_.sessionlog = j.value("sessionlog", 0);
    info_.dsa_dn = s("dsa_dn");
    info_.invocation_id = s("invocation_id");
    info_.highest_usn = j.value("highest_usn", 0LL);
    info_.pid = j.value("pid", -1);
  }

  SlapdProcess(const SlapdProcess&) = delete;
  SlapdProcess& operator=(const SlapdProcess&) = delete;
  ~SlapdProcess() { stop(); }

  const SlapdInfo& info() const { return info_; }

  /// Stops slapd and the script; safe to call twice.
  void stop() {
    if (pid_ <= 0) return;
    close_fds();  // EOF on the script's stdin: it stops slapd and exits
    bool clean = wait_exit(std::chrono::seconds(30));
    if (!clean) {
      ::kill(pid_, SIGTERM);  // the script's handler still stops slapd
      if (!wait_exit(std::chrono::seconds(15))) {
        ::kill(pid_, SIGKILL);
        wait_exit(std::chrono::seconds(5));
      }
    }
    pid_ = -1;
    // The script stops slapd itself; only when it had to be killed may slapd be left.
    if (!clean && info_.pid > 0) ::kill(info_.pid, SIGKILL);
    info_.pid = -1;
  }

 private:
  std::string read_line(std::chrono::seconds timeout) {
    std::string line;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) throw std::runtime_error("slapd.py printed nothing within the deadline: " + line);
      pollfd p{stdout_, POLLIN, 0};
      int r = ::poll(&p, 1, static_cast<int>(left.count()));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) continue;
      char c;
      ssize_t n = ::read(stdout_, &c, 1);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) throw std::runtime_error("slapd.py exited before it printed its JSON line: " + line);
      if (c == '\n') return line;
      line.push_back(c);
    }
  }

  bool wait_exit(std::chrono::seconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_ || (r < 0 && errno == ECHILD)) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }

  void close_fds() {
    if (stdin_ >= 0) ::close(stdin_);
    if (stdout_ >= 0) ::close(stdout_);
    stdin_ = stdout_ = -1;
  }

  pid_t pid_ = -1;
  int stdin_ = -1;
  int stdout_ = -1;
  SlapdInfo info_;
};

}  // namespace bridgehead::test_support
