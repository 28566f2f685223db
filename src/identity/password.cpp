#include "identity/password.hpp"

#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <fmt/format.h>

namespace bridgehead::identity {

// ---- SecretString ----------------------------------------------------------------------

SecretString::SecretString(std::string_view text) {
  for (char c : text) push_back(c);
}

SecretString::SecretString(SecretString&& other) noexcept
    : data_(other.data_), size_(other.size_), capacity_(other.capacity_) {
  other.data_ = nullptr;
  other.size_ = other.capacity_ = 0;
}

SecretString& SecretString::operator=(SecretString&& other) noexcept {
  if (this != &other) {
    clear();
    delete[] data_;
    data_ = other.data_;
    size_ = other.size_;
    capacity_ = other.capacity_;
    other.data_ = nullptr;
    other.size_ = other.capacity_ = 0;
  }
  return *this;
}

SecretString::~SecretString() {
  if (data_ != nullptr) {
    OPENSSL_cleanse(data_, capacity_ + 1);
    delete[] data_;
  }
}

void SecretString::push_back(char c) {
  if (size_ == capacity_) {
    // Grow by copying into a new buffer and wiping the old one: a realloc could leave
    // the password behind in freed memory.
    const std::size_t cap = capacity_ == 0 ? 64 : capacity_ * 2;
    char* fresh = new char[cap + 1];
    if (data_ != nullptr) {
      std::memcpy(fresh, data_, size_);
      OPENSSL_cleanse(data_, capacity_ + 1);
      delete[] data_;
    }
    data_ = fresh;
    capacity_ = cap;
  }
  data_[size_++] = c;
  data_[size_] = '\0';
}

void SecretString::clear() {
  if (data_ != nullptr) OPENSSL_cleanse(data_, capacity_ + 1);
  size_ = 0;
}

bool SecretString::equals(const SecretString& other) const {
  return size_ == other.size_ && CRYPTO_memcmp(c_str(), other.c_str(), size_) == 0;
}

// ---- sources ---------------------------------------------------------------------------

std::string_view to_string(PasswordSource source) {
  switch (source) {
    case PasswordSource::kNone:
      return "none";
    case PasswordSource::kPasswordFile:
      return "id_password_file";
    case PasswordSource::kSystemdCredential:
      return "systemd-credential";
    case PasswordSource::kEnvironment:
      return "environment";
    case PasswordSource::kTerminal:
      return "terminal";
  }
  return "none";
}

namespace {

constexpr std::size_t kMaxPasswordFile = 4096;

std::string who_can_access(mode_t mode) {
  const bool group = (mode & 070) != 0;
  const bool others = (mode & 007) != 0;
  if (group && others) return "its group and others";
  return group ? "its group" : "others";
}

/// Reads at most kMaxPasswordFile bytes of an open file into a SecretString.
Expected<SecretString> read_secret(int fd, const std::filesystem::path& path, std::string_view setting) {
  SecretString out;
  std::array<char, 512> buf{};
  while (true) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      OPENSSL_cleanse(buf.data(), buf.size());
      return fail(Error::from_errno(err, fmt::format("cannot read {} {}", setting, path.string())));
    }
    if (n == 0) break;
    for (ssize_t i = 0; i < n; ++i) out.push_back(buf[static_cast<std::size_t>(i)]);
    if (out.size() > kMaxPasswordFile) {
      OPENSSL_cleanse(buf.data(), buf.size());
      return fail(Error::permanent(ErrorCode::kInvalidArgument,
                                   fmt::format("{} {} is larger than {} bytes; it is not a password file", setting,
                                               path.string(), kMaxPasswordFile),
                                   "put only the password in it, on one line"));
    }
  }
  OPENSSL_cleanse(buf.data(), buf.size());
  // One trailing newline is the editor's, not the password's.
  std::string_view v = out.view();
  if (!v.empty() && v.back() == '\n') v.remove_suffix(1);
  if (!v.empty() && v.back() == '\r') v.remove_suffix(1);
  if (v.empty()) {
    return fail(Error::permanent(ErrorCode::kInvalidArgument, fmt::format("{} {} is empty", setting, path.string()),
                                 "write the password into it, on one line"));
  }
  if (v.find('\0') != std::string_view::npos) {
    return fail(
        Error::permanent(ErrorCode::kInvalidArgument,
                         fmt::format("{} {} contains a NUL byte; it is not a password file", setting, path.string()),
                         "put only the password in it, on one line"));
  }
  return SecretString(v);
}

Expected<SecretString> open_and_read(const std::filesystem::path& path, std::string_view setting, bool check_mode) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT) {
      return fail(Error::permanent(ErrorCode::kNotFound, fmt::format("{} {} does not exist", setting, path.string()),
                                   "create it with the password on one line and mode 0600, or change the setting"));
    }
    return fail(Error::from_errno(err, fmt::format("cannot open {} {}", setting, path.string())));
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  // The mode is checked on the opened file (fstat), so a swap between check and read
  // cannot slip in a different file.
  struct stat st {};
  if (::fstat(fd, &st) != 0) return fail(Error::from_errno(errno, fmt::format("cannot stat {}", path.string())));
  if (!S_ISREG(st.st_mode)) {
    return fail(Error::permanent(ErrorCode::kInvalidArgument,
                                 fmt::format("{} {} is not a regular file", setting, path.string()),
                                 "point it at a file that holds the password"));
  }
  const mode_t mode = st.st_mode & 07777;
  if (check_mode && (mode & 077) != 0) {
    return fail(Error::permanent(
        ErrorCode::kPermission,
        fmt::format("{} {} can be read or changed by {} (mode {:04o}); a password file must be accessible to its "
                    "owner only",
                    setting, path.string(), who_can_access(mode), mode),
        fmt::format("run: chmod 600 {}", path.string())));
  }
  return read_secret(fd, path, setting);
}

}  // namespace

Expected<SecretString> read_password_file(const std::filesystem::path& path, std::string_view setting) {
  return open_and_read(path, setting, true);
}

bool terminal_available() {
  const int fd = ::open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) return false;
  ::close(fd);
  return true;
}

namespace {

volatile sig_atomic_t g_prompt_signal = 0;

extern "C" void on_prompt_signal(int sig) { g_prompt_signal = sig; }

void write_all(int fd, std::string_view s) {
  while (!s.empty()) {
    const ssize_t n = ::write(fd, s.data(), s.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    s.remove_prefix(static_cast<std::size_t>(n));
  }
}

}  // namespace

Expected<SecretString> prompt_on_terminal(std::string_view prompt) {
  const int fd = ::open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) {
    return fail(Error::permanent(ErrorCode::kUnavailable, "no terminal to ask for the password on",
                                 "give the password in a file (--password-file, mode 0600)"));
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  termios saved{};
  if (::tcgetattr(fd, &saved) != 0) {
    return fail(Error::permanent(ErrorCode::kUnavailable, "/dev/tty is not a terminal; cannot ask for the password",
                                 "give the password in a file (--password-file, mode 0600)"));
  }
  // Catch the signals that end a prompt, so the terminal gets its echo back before the
  // process stops or dies; the signal is raised again once the terminal is restored.
  static constexpr std::array<int, 5> kSignals = {SIGINT, SIGTERM, SIGQUIT, SIGHUP, SIGTSTP};
  std::array<struct sigaction, kSignals.size()> old_actions{};
  struct sigaction sa {};
  sa.sa_handler = on_prompt_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: read() returns EINTR
  g_prompt_signal = 0;
  for (std::size_t i = 0; i < kSignals.size(); ++i) ::sigaction(kSignals[i], &sa, &old_actions[i]);

  // Echo goes off before the prompt appears: whatever is typed once the prompt shows is
  // neither echoed nor discarded by the TCSAFLUSH below.
  termios quiet = saved;
  quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO | ECHOE | ECHOK | ECHONL);
  ::tcsetattr(fd, TCSAFLUSH, &quiet);
  write_all(fd, prompt);

  SecretString out;
  bool got_newline = false;
  bool too_long = false;
  while (g_prompt_signal == 0) {
    char c = 0;
    const ssize_t n = ::read(fd, &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (c == '\n' || c == '\r') {
      got_newline = true;
      break;
    }
    if (out.size() >= kMaxPasswordFile) {
      too_long = true;
    } else {
      out.push_back(c);
    }
  }
  ::tcsetattr(fd, TCSAFLUSH, &saved);
  write_all(fd, "\n");
  for (std::size_t i = 0; i < kSignals.size(); ++i) ::sigaction(kSignals[i], &old_actions[i], nullptr);
  if (const int sig = g_prompt_signal; sig != 0) {
    out.clear();
    ::raise(sig);
    return fail(Error::permanent(ErrorCode::kUnavailable, "the password prompt was interrupted"));
  }
  if (!got_newline) {
    return fail(Error::permanent(ErrorCode::kInvalidArgument, "no password entered (end of input at the prompt)"));
  }
  if (too_long) {
    return fail(Error::permanent(ErrorCode::kInvalidArgument,
                                 fmt::format("the password is longer than {} characters", kMaxPasswordFile)));
  }
  return out;
}

namespace {

void* wiping_malloc(std::size_t n, const char*, int) { return std::malloc(n); }

void wiping_free(void* p, const char*, int) {
  if (p == nullptr) return;
  OPENSSL_cleanse(p, malloc_usable_size(p));
  std::free(p);
}

// Never realloc() in place: a block that moves would leave its old bytes behind unwiped.
void* wiping_realloc(void* p, std::size_t n, const char* file, int line) {
  if (p == nullptr) return std::malloc(n);
  if (n == 0) {
    wiping_free(p, file, line);
    return nullptr;
  }
  const std::size_t old = malloc_usable_size(p);
  if (n <= old) return p;
  void* q = std::malloc(n);
  if (q == nullptr) return nullptr;
  std::memcpy(q, p, old);
  wiping_free(p, file, line);
  return q;
}

}  // namespace

bool wipe_openssl_frees() { return CRYPTO_set_mem_functions(wiping_malloc, wiping_realloc, wiping_free) == 1; }

void wipe_environment_variable(const std::string& name) {
  if (char* v = std::getenv(name.c_str()); v != nullptr) OPENSSL_cleanse(v, std::strlen(v));
  ::unsetenv(name.c_str());
}

Environment Environment::process() {
  Environment env;
  env.get = [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
  env.has_terminal = terminal_available;
  env.prompt = prompt_on_terminal;
  return env;
}

PasswordSourceInfo resolve_password_source(const std::filesystem::path& id_password_file, const Environment& env) {
  PasswordSourceInfo info;
  if (!id_password_file.empty()) {
    info.source = PasswordSource::kPasswordFile;
    info.path = id_password_file;
    info.description = fmt::format("id_password_file {}", id_password_file.string());
    return info;
  }
  if (auto dir = env.get("CREDENTIALS_DIRECTORY"); dir && !dir->empty()) {
    const auto path = std::filesystem::path(*dir) / std::string(kCredentialName);
    std::error_code ec;
    if (std::filesystem::exists(path, ec)) {
      info.source = PasswordSource::kSystemdCredential;
      info.path = path;
      info.description = fmt::format("systemd credential {} ({})", kCredentialName, path.string());
      return info;
    }
  }
  if (auto v = env.get(std::string(kPasswordEnvVar)); v && !v->empty()) {
    OPENSSL_cleanse(v->data(), v->size());
    info.source = PasswordSource::kEnvironment;
    info.description = fmt::format(
        "environment variable {} (discouraged: processes of the same user can read it and child processes inherit "
        "it; prefer id_password_file or a systemd credential)",
        kPasswordEnvVar);
    info.discouraged = true;
    return info;
  }
  if (env.has_terminal && env.has_terminal()) {
    info.source = PasswordSource::kTerminal;
    info.description = "a prompt on the terminal (the daemon runs in the foreground)";
    return info;
  }
  info.description = "none: a password-protected ID stays locked until `bridgehead unlock`";
  return info;
}

Expected<SecretString> read_password(const PasswordSourceInfo& source, std::string_view prompt,
                                     const Environment& env) {
  switch (source.source) {
    case PasswordSource::kPasswordFile:
      return read_password_file(source.path, "id_password_file");
    case PasswordSource::kSystemdCredential:
      // systemd owns the credential's mode (0400 for the service's user) and its
      // directory is private to the service; a mode check would only get in the way.
      return open_and_read(source.path, "systemd credential", false);
    case PasswordSource::kEnvironment: {
      auto v = env.get(std::string(kPasswordEnvVar));
      if (!v || v->empty()) break;
      SecretString s(*v);
      OPENSSL_cleanse(v->data(), v->size());
      return s;
    }
    case PasswordSource::kTerminal:
      if (!env.prompt) break;
      return env.prompt(prompt);
    case PasswordSource::kNone:
      break;
  }
  return fail(Error::transient_error(
      ErrorCode::kUnavailable, "no password for the connector ID is available",
      fmt::format("set id_password_file (mode 0600), provide the systemd credential {}, set {}, run in the foreground "
                  "on a terminal, or run `bridgehead unlock`",
                  kCredentialName, kPasswordEnvVar)));
}

}  // namespace bridgehead::identity
