#include "admin/control_socket.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "net/spawn.hpp"

namespace bridgehead::admin {

namespace asio = net::asio;
using local = asio::local::stream_protocol;

namespace {
constexpr std::size_t kMaxRequest = 64 * 1024;

// Wipes every block it frees. The parser's lexer collects each string of a request (an
// unlock's password) in a buffer that grows and is freed as the parse goes on; with this
// allocator none of those buffers leaves its bytes behind.
template <class T>
struct WipingAllocator {
  using value_type = T;
  WipingAllocator() = default;
  template <class U>
  WipingAllocator(const WipingAllocator<U>&) noexcept {}  // NOLINT: rebinding is implicit
  T* allocate(std::size_t n) { return std::allocator<T>{}.allocate(n); }
  void deallocate(T* p, std::size_t n) noexcept {
    explicit_bzero(p, n * sizeof(T));
    std::allocator<T>{}.deallocate(p, n);
  }
  template <class U>
  bool operator==(const WipingAllocator<U>&) const noexcept {
    return true;
  }
};
using WipedString = std::basic_string<char, std::char_traits<char>, WipingAllocator<char>>;
using RequestJson = nlohmann::basic_json<std::map, std::vector, WipedString, bool, std::int64_t, std::uint64_t, double,
                                         WipingAllocator>;

// The handlers' type; each string is copied once, at its final size, so a handler that
// wipes a value (unlock wipes "password") leaves no copy of it.
nlohmann::json plain(const RequestJson& j) {
  using T = RequestJson::value_t;
  switch (j.type()) {
    case T::object: {
      auto out = nlohmann::json::object();
      for (auto it = j.begin(); it != j.end(); ++it) out[std::string(it.key().data(), it.key().size())] = plain(*it);
      return out;
    }
    case T::array: {
      auto out = nlohmann::json::array();
      for (const auto& v : j) out.push_back(plain(v));
      return out;
    }
    case T::string: {
      const auto& s = j.get_ref<const WipedString&>();
      return nlohmann::json(std::string(s.data(), s.size()));
    }
    case T::boolean: return j.get<bool>();
    case T::number_integer: return j.get<std::int64_t>();
    case T::number_unsigned: return j.get<std::uint64_t>();
    case T::number_float: return j.get<double>();
    default: return nullptr;
  }
}

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

ControlServer::ControlServer(asio::io_context& io, std::filesystem::path path, unsigned mode,
                             std::shared_ptr<status::Process> process)
    : io_(io), path_(std::move(path)), mode_(mode), process_(std::move(process)) {}

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
  if (process_) process_->set_state(status::ProcessState::kRunning, "listening on " + path_.string());
  net::spawn_logged(io_.get_executor(), accept_loop(), "control socket");
  return {};
}

Expected<void> ControlServer::hand_over(unsigned uid, unsigned gid) {
  if (::lchown(path_.c_str(), static_cast<uid_t>(uid), static_cast<gid_t>(gid)) != 0) {
    return fail(Error::from_errno(errno, fmt::format("give the control socket {} to the daemon's user", path_.string())));
  }
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
      if (ec == asio::error::operation_aborted || !acceptor_) co_return;
      // EMFILE and friends: the next accept() fails the same way at once, so pause rather
      // than spin, and say why `bridgehead status` may not get through.
      const Error e = Error::transient_error(
          ErrorCode::kIo, fmt::format("the control socket {} cannot accept: {}", path_.string(), ec.message()),
          "raise the daemon's open-files limit (LimitNOFILE= in its systemd unit, ulimit -n)");
      ++accept_errors_;
      if (accept_errors_ == 1) spdlog::error("{}", e.describe());
      if (process_) {
        process_->report_error(status::ProcessState::kDegraded, e);
        process_->add("accept_errors");
      }
      asio::steady_timer pause(io_, kAcceptErrorPause);
      co_await pause.async_wait(net::use_nothrow);
      continue;
    }
    if (accept_errors_ > 0) {
      spdlog::info("the control socket {} accepts again after {} failed accept(s)", path_.string(), accept_errors_);
      accept_errors_ = 0;
      if (process_) process_->recover("listening on " + path_.string());
    }
    net::spawn_logged(io_.get_executor(), serve(std::move(socket)), "control session");
  }
}

net::awaitable<void> ControlServer::serve(local::socket socket) {
  std::string line;
  // Room for the largest request up front: a string that grows while reading leaves the
  // bytes read so far (an unlock's password) in the buffer it frees.
  line.reserve(kMaxRequest);
  auto [ec, n] = co_await asio::async_read_until(socket, asio::dynamic_buffer(line, kMaxRequest), '\n',
                                                 net::use_nothrow);
  if (ec) {
    explicit_bzero(line.data(), line.size());
    co_return;
  }
  nlohmann::json reply;
  // The request may carry the connector ID's password (unlock): it is parsed in place, with
  // no copy of the line, by a parser whose buffers are wiped when freed, and the line is
  // wiped before its buffer is freed.
  nlohmann::json request;
  {
    const auto parsed = RequestJson::parse(line.data(), line.data() + n, nullptr, false);
    request = parsed.is_discarded() ? nlohmann::json(nlohmann::json::value_t::discarded) : plain(parsed);
  }
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

tl::expected<nlohmann::json, ControlError> control_request(const std::filesystem::path& socket_path,
                                                           const nlohmann::json& request,
                                                           std::chrono::milliseconds timeout) {
  auto not_running = [&](std::string why) {
    return tl::unexpected(ControlError(
        Error::transient_error(
            ErrorCode::kUnavailable,
            fmt::format("the Bridgehead daemon is not running ({} at {})", why, socket_path.string()),
            "start it with `bridgehead run --config FILE`, or pass the --config of the running daemon"),
        true));
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
