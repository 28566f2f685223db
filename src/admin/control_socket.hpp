// The local control socket: how `bridgehead status` (and later `unlock`) talk to the
// running daemon. A Unix stream socket, mode 0600 by default; one JSON request line in,
// one JSON reply line out. The server side dispatches to handlers the daemon registers;
// it knows nothing of what the commands do.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

#include "status/process.hpp"
#include "core/expected.hpp"
#include "net/asio.hpp"

namespace bridgehead::admin {

class ControlServer {
 public:
  /// Returns the result object, or an Error that is sent back as {"ok":false,...}.
  using Handler = std::function<Expected<nlohmann::json>(const nlohmann::json& request)>;
  /// For requests whose work must not block the I/O thread (it is awaited on another).
  using AsyncHandler = std::function<net::awaitable<Expected<nlohmann::json>>(nlohmann::json request)>;

  /// `process` (optional) shows the socket in status: running, or degraded while accepting
  /// fails (EMFILE and the like), with the cause and the remedy.
  ControlServer(net::asio::io_context& io, std::filesystem::path path, unsigned mode,
                std::shared_ptr<status::Process> process = nullptr);
  ~ControlServer();
  void handle(const std::string& command, Handler handler);
  void handle_async(const std::string& command, AsyncHandler handler);
  /// Binds the socket. A stale socket file is replaced; a live one (another daemon on the
  /// same state directory) is an error naming the path. Nothing is accepted before the
  /// event loop runs.
  Expected<void> start();
  /// Makes the socket file owned by `uid`:`gid` (the daemon's user after it drops root; root
  /// can connect to it anyway). Fails naming the path.
  Expected<void> hand_over(unsigned uid, unsigned gid);
  void stop();

 private:
  net::awaitable<void> accept_loop();
  net::awaitable<void> serve(net::asio::local::stream_protocol::socket socket);

  net::asio::io_context& io_;
  std::filesystem::path path_;
  unsigned mode_;
  std::map<std::string, Handler> handlers_;
  std::map<std::string, AsyncHandler> async_handlers_;
  std::shared_ptr<status::Process> process_;
  std::uint64_t accept_errors_ = 0;  // in a row; a successful accept resets it
  std::unique_ptr<net::asio::local::stream_protocol::acceptor> acceptor_;
};

/// How long the accept loop waits after a failed accept() (EMFILE, ENFILE, ENOBUFS): the
/// failure repeats at once otherwise, and the loop would spin on the I/O thread.
inline constexpr std::chrono::milliseconds kAcceptErrorPause{100};

/// Why a control request failed. `not_running` is true only when no daemon listens on the
/// socket (there is no socket file, or nobody accepts on it): a caller tells that from a
/// refusal the daemon answered, whatever its code, by this flag and never by the message.
struct ControlError : Error {
  // Implicit: every other error of a request (the daemon's answer, a timeout, no
  // permission) is one with not_running false.
  ControlError(Error e, bool daemon_not_running = false)  // NOLINT(google-explicit-constructor)
      : Error(std::move(e)), not_running(daemon_not_running) {}
  bool not_running;
};

/// Sends one request to the daemon's control socket and returns its "result". A daemon
/// that is not running is reported as such (kUnavailable, `not_running`), with the remedy;
/// an error the daemon answered keeps its code and severity. The request's bytes are wiped
/// after sending (it may carry the connector ID's password).
tl::expected<nlohmann::json, ControlError> control_request(const std::filesystem::path& socket,
                                                           const nlohmann::json& request,
                                                           std::chrono::milliseconds timeout = std::chrono::seconds(10));

}  // namespace bridgehead::admin
