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

#include <nlohmann/json.hpp>

#include "core/expected.hpp"
#include "net/asio.hpp"

namespace bridgehead::admin {

class ControlServer {
 public:
  /// Returns the result object, or an Error that is sent back as {"ok":false,...}.
  using Handler = std::function<Expected<nlohmann::json>(const nlohmann::json& request)>;
  /// For requests whose work must not block the I/O thread (it is awaited on another).
  using AsyncHandler = std::function<net::awaitable<Expected<nlohmann::json>>(nlohmann::json request)>;

  ControlServer(net::asio::io_context& io, std::filesystem::path path, unsigned mode);
  ~ControlServer();
  void handle(const std::string& command, Handler handler);
  void handle_async(const std::string& command, AsyncHandler handler);
  /// Binds the socket. A stale socket file is replaced; a live one (another daemon on the
  /// same state directory) is an error naming the path.
  Expected<void> start();
  void stop();

 private:
  net::awaitable<void> accept_loop();
  net::awaitable<void> serve(net::asio::local::stream_protocol::socket socket);

  net::asio::io_context& io_;
  std::filesystem::path path_;
  unsigned mode_;
  std::map<std::string, Handler> handlers_;
  std::map<std::string, AsyncHandler> async_handlers_;
  std::unique_ptr<net::asio::local::stream_protocol::acceptor> acceptor_;
};

/// Sends one request to the daemon's control socket and returns its "result". A daemon
/// that is not running is reported as such (kUnavailable), with the remedy; an error the
/// daemon answered keeps its code and severity. The request's bytes are wiped after
/// sending (it may carry the connector ID's password).
Expected<nlohmann::json> control_request(const std::filesystem::path& socket,
                                         const nlohmann::json& request,
                                         std::chrono::milliseconds timeout = std::chrono::seconds(10));

}  // namespace bridgehead::admin
