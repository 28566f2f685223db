// The connector ID's password: a string type that wipes itself and cannot be printed, and
// the places a password comes from, in the order the daemon tries them (config
// `id_password_file`, systemd credential, environment, terminal prompt). Handing a password
// to a running daemon (`bridgehead unlock`) is not here: that is the control socket's job.
#pragma once

#include <cstddef>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "core/expected.hpp"

namespace bridgehead::identity {

/// A password in memory. Its bytes are wiped (OPENSSL_cleanse) when it is destroyed,
/// cleared, moved from or grown; it never reallocates without wiping the old buffer. It
/// has no formatter and no stream operator, so it cannot end up in a log by accident.
class SecretString {
 public:
  SecretString() = default;
  explicit SecretString(std::string_view text);
  SecretString(SecretString&& other) noexcept;
  SecretString& operator=(SecretString&& other) noexcept;
  SecretString(const SecretString&) = delete;
  SecretString& operator=(const SecretString&) = delete;
  ~SecretString();

  /// An explicit copy (copies are never made implicitly).
  SecretString clone() const { return SecretString(view()); }
  void push_back(char c);
  /// Wipes the contents; the string is empty afterwards.
  void clear();

  std::string_view view() const { return {data_ != nullptr ? data_ : "", size_}; }
  /// NUL-terminated, for C APIs. Valid until the next change.
  const char* c_str() const { return data_ != nullptr ? data_ : ""; }
  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  /// Constant-time comparison of the contents.
  bool equals(const SecretString& other) const;

 private:
  char* data_ = nullptr;  // size_ bytes and a NUL; capacity_ + 1 allocated
  std::size_t size_ = 0;
  std::size_t capacity_ = 0;
};

/// Where the daemon's password comes from, in the order they are tried (the first one that
/// is configured wins).
enum class PasswordSource {
  kNone,               ///< nothing configured: the ID stays locked until `bridgehead unlock`
  kPasswordFile,       ///< config `id_password_file`
  kSystemdCredential,  ///< $CREDENTIALS_DIRECTORY/bridgehead-id-password
  kEnvironment,        ///< BRIDGEHEAD_ID_PASSWORD (discouraged)
  kTerminal,           ///< a prompt on the controlling terminal (daemon in the foreground)
};
/// "id_password_file", "systemd-credential", "environment", "terminal", "none".
std::string_view to_string(PasswordSource source);

inline constexpr std::string_view kPasswordEnvVar = "BRIDGEHEAD_ID_PASSWORD";
inline constexpr std::string_view kCredentialName = "bridgehead-id-password";

struct PasswordSourceInfo {
  PasswordSource source = PasswordSource::kNone;
  std::filesystem::path path;  ///< the file, for kPasswordFile and kSystemdCredential
  std::string description;     ///< for `bridgehead check`: "id_password_file /etc/bridgehead/id.pw"
  bool discouraged = false;    ///< true for kEnvironment; `check` warns about it
};

/// What the process sees around it: environment variables and the terminal. Tests replace
/// it; Environment::process() is the real one.
struct Environment {
  std::function<std::optional<std::string>(const std::string& name)> get;
  std::function<bool()> has_terminal;
  std::function<Expected<SecretString>(std::string_view prompt)> prompt;

  static Environment process();
};

/// Which source the daemon would use, without reading any password. `id_password_file` is
/// the config setting (empty when unset); a credential counts only when its file exists, the
/// environment variable only when it is set and not empty.
PasswordSourceInfo resolve_password_source(const std::filesystem::path& id_password_file,
                                           const Environment& env = Environment::process());

/// Reads the password from `source`; `prompt` is shown for kTerminal. Fails with
/// kUnavailable for kNone (the remedy lists the ways to supply it), kPermission for a
/// password file group or others can access, kNotFound/kIo for an unreadable file.
Expected<SecretString> read_password(const PasswordSourceInfo& source, std::string_view prompt,
                                     const Environment& env = Environment::process());

/// Reads a password file: a regular file readable only by its owner (mode 0600 or
/// stricter, else kPermission naming the file, its mode and `chmod 600`), at most 4 KiB,
/// not empty, without NUL bytes; one trailing newline (LF or CRLF) is dropped. `setting`
/// names where the path came from in errors ("id_password_file", "--password-file").
Expected<SecretString> read_password_file(const std::filesystem::path& path, std::string_view setting);

/// Overwrites the value of the environment variable `name` with NUL bytes where it lies (the
/// process's environment block, which /proc/PID/environ shows), then removes the variable.
/// unsetenv() alone only drops the pointer and leaves the bytes. Not thread-safe, like setenv.
void wipe_environment_variable(const std::string& name);

/// Makes OpenSSL wipe every block it frees or moves (CRYPTO_set_mem_functions). Some of its
/// code frees buffers that held a password without cleansing them (OpenSSL 3.0's PKCS#12 key
/// derivation frees its input, the password repeated as UTF-16, with a plain free), which
/// would leave the connector ID's password in the daemon's memory after an unlock. Must run
/// before OpenSSL allocates anything; returns false when it is too late (nothing changed).
bool wipe_openssl_frees();

/// True when the process has a controlling terminal to prompt on (/dev/tty opens).
bool terminal_available();

/// Shows `prompt` on /dev/tty and reads one line with echo off, restoring the terminal
/// even when interrupted (the signal is then re-raised). Fails with kUnavailable without a
/// terminal, kInvalidArgument at end of input before a newline.
Expected<SecretString> prompt_on_terminal(std::string_view prompt);

}  // namespace bridgehead::identity
