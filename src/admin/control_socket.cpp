#include "admin/control_socket.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace bridgehead::admin {

namespace asio = net::asio;
using local = asio::local::stream_protocol;

namespace {
constexpr std::size_t kMaxRequest = 64 * 1024;

// A raw connect() to tell a live daemon from a stale socket file, before we replace it.
bool someone_listening(const std::filesystem::path& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  bool live = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return live;
}
}  // namespace

ControlServer::ControlServer(asio::io_context& io, std::filesystem::path path, unsigned mode)
    : io_(io), path_(std::move(path)), mode_(mode) {}

ControlServer::~ControlServer() { stop(); }

void ControlServer::handle_async(const std::string& command, AsyncHandler handler) {
  async_handlers_[command] = std::move(handler);
}

void ControlServer::handle(const std::string& command, Handler handler) {
  handlers_[command] = std::move(handler);
}

Expected<void> ControlServer::start() {
  if (path_.native().size() >= sizeof(sockaddr_un{}.sun_path)) {
    return fail(Error::permanent(ErrorCode::kConfig,
                                 fmt::format("control socket path {} is too long for a Unix socket", path_.string()),
                                 "set [admin] control_socket to a shorter path"));
  }
  std::error_code fec;
  std::filesystem::create_directories(path_.parent_path(), fec);
  if (std::filesystem::exists(path_, fec)) {
    if (someone_listening(path_)) {
      return fail(Error::permanent(
          ErrorCode::kUnavailable,
          fmt::format("another daemon is already listening on the control socket {}", path_.string()),
          "stop it first, or give this instance its own state_dir"));
    }
    std::filesystem::remove(path_, fec);
  }
  acceptor_ = std::make_unique<local::acceptor>(io_);
  net::error_code ec;
  acceptor_->open(local(), ec);
  // The socket must never be reachable by other users, not even between bind and chmod.
  mode_t old_mask = ::umask(0177);
  if (!ec) acceptor_->bind(local::endpoint(path_.string()), ec);
  ::umask(old_mask);
  if (!ec) acceptor_->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return fail(Error::permanent(ErrorCode::kIo,
                                 fmt::format("cannot listen on control socket {}: {}", path_.string(), ec.message()),
                                 "check that the directory exists and is writable by the daemon's user"));
  }
  if (::chmod(path_.c_str(), static_cast<mode_t>(mode_)) != 0) {
    return fail(Error::from_errno(errno, fmt::format("chmod control socket {}", path_.string())));
  }
  net::spawn_logged(io_.get_executor(), accept_loop(), "control socket");
  return {};
}

void ControlServer::stop() {
  if (!acceptor_) return;
  net::error_code ec;
  acceptor_->close(ec);
  acceptor_.reset();
  std::error_code fec;
  std::filesystem::remove(path_, fec);
}

net::awaitable<void> ControlServer::accept_loop() {
  while (acceptor_ && acceptor_->is_open()) {
    auto [ec, socket] = co_await acceptor_->async_accept(net::use_nothrow);
    if (ec) {
      if (ec == asio::error::operation_aborted) co_return;
      continue;
    }
    net::spawn_logged(io_.get_executor(), serve(std::move(socket)), "control session");
  }
}

net::awaitable<void> ControlServer::serve(local::socket socket) {
  std::string line;
  auto [ec, n] = co_await asio::async_read_until(socket, asio::dynamic_buffer(line, kMaxRequest), '\n',
                                                 net::use_nothrow);
  if (ec) co_return;
  nlohmann::json reply;
  auto request = nlohmann::json::parse(line.substr(0, n), nullptr, false);
  // The request may carry the connector ID's password (unlock): no copy of it outlives
  // the parse.
  explicit_bzero(line.data(), line.size());
  auto error_reply = [](const Error& e) {
    return nlohmann::json{{"ok", false},
                          {"error", e.message},
                          {"remedy", e.remedy},
                          {"code", to_string(e.code)},
                          {"transient", e.transient()}};
  };
  if (request.is_discarded() || !request.is_object() || !request.contains("command") ||
      !request["command"].is_string()) {
    reply = {{"ok", false}, {"error", "request is not a JSON object with a \"command\""}, {"remedy", ""}};
  } else {
    const std::string command = request["command"].get<std::string>();
    Expected<nlohmann::json> result = fail(Error::permanent(
        ErrorCode::kInvalidArgument, fmt::format("unknown control command \"{}\"", command),
        "use a bridgehead CLI of the same version as the daemon"));
    if (auto it = handlers_.find(command); it != handlers_.end()) {
      result = it->second(request);
    } else if (auto at = async_handlers_.find(command); at != async_handlers_.end()) {
      result = co_await at->second(std::move(request));
    }
    reply = result ? nlohmann::json{{"ok", true}, {"result", std::move(*result)}} : error_reply(result.error());
  }
  std::string out = reply.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  co_await asio::async_write(socket, asio::buffer(out), net::use_nothrow);
}

Expected<nlohmann::json> control_request(const std::filesystem::path& socket_path,
                                         const nlohmann::json& request,
                                         std::chrono::milliseconds timeout) {
  auto not_running = [&](std::string why) {
    return fail(Error::transient_error(
        ErrorCode::kUnavailable,
        fmt::format("the Bridgehead daemon is not running ({} at {})", why, socket_path.string()),
        "start it with `bridgehead run --config FILE`, or pass the --config of the running daemon"));
  };
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail(Error::from_errno(errno, "create a Unix socket"));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.native().size() >= sizeof addr.sun_path) {
    return fail(Error::permanent(ErrorCode::kInvalidArgument, "control socket path too long: " + socket_path.string()));
  }
  std::strncpy(addr.sun_path, socket_path.c_str(), sizeof(addr.sun_path) - 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    int err = errno;
    if (err == ENOENT) return not_running("no control socket");
    if (err == ECONNREFUSED) return not_running("nobody listens on the control socket");
    if (err == EACCES) {
      return fail(Error::permanent(ErrorCode::kPermission,
                                   fmt::format("no permission to use the control socket {}", socket_path.string()),
                                   "run the command as the user the daemon runs as"));
    }
    return fail(Error::from_errno(err, "connect to control socket " + socket_path.string()));
  }
  std::string out = request.dump() + "\n";
  struct Wiper {
    std::string& s;
    ~Wiper() { explicit_bzero(s.data(), s.size()); }
  } wiper{out};
  std::size_t off = 0;
  while (off < out.size()) {
    ssize_t w = ::send(fd, out.data() + off, out.size() - off, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      return fail(Error::from_errno(errno, "write to control socket"));
    }
    off += static_cast<std::size_t>(w);
  }
  std::string in;
  char buf[65536];
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (in.find('\n') == std::string::npos) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      return fail(Error::transient_error(ErrorCode::kTimeout, "the daemon did not answer on the control socket in time",
                                         "look at the daemon's log; it may be overloaded or stuck"));
    }
    pollfd p{fd, POLLIN, 0};
    int pr = ::poll(&p, 1, static_cast<int>(left.count()));
    if (pr < 0 && errno == EINTR) continue;
    if (pr <= 0) continue;
    ssize_t r = ::recv(fd, buf, sizeof buf, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      return fail(Error::from_errno(errno, "read from control socket"));
    }
    if (r == 0) break;
    in.append(buf, static_cast<std::size_t>(r));
  }
  auto reply = nlohmann::json::parse(in, nullptr, false);
  if (reply.is_discarded() || !reply.is_object()) {
    return fail(Error::permanent(ErrorCode::kParse, "the daemon's reply on the control socket is not JSON"));
  }
  if (!reply.value("ok", false)) {
    const auto code = error_code_from_string(reply.value("code", std::string())).value_or(ErrorCode::kInternal);
    Error e = Error::permanent(code, reply.value("error", std::string("request failed")),
                               reply.value("remedy", std::string()));
    if (reply.value("transient", false)) e.severity = Severity::kTransient;
    return fail(std::move(e));
  }
  return reply["result"];
}

}  // namespace bridgehead::admin
