// The running daemon's hold on its connector ID: whether the ID is open and, when it is not,
// why (locked, wrong password, certificate expired or not yet valid, file unreadable), always
// with the remedy. Opens the file with a password from wherever the daemon got it, slows down
// repeated wrong passwords, and re-reads the file on every unlock, so a re-certified ID is
// taken without a restart; when the file can no longer be read (the daemon dropped root), the
// bytes read before are opened instead. No threads and no sockets: the daemon decides where
// the slow key derivation runs and what the processes that need the ID show meanwhile.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "core/expected.hpp"
#include "identity/id_file.hpp"
#include "identity/password.hpp"

namespace bridgehead::identity {

/// Where the ID stands.
enum class IdStatus {
  kOpen,      ///< key and certificate loaded, the chain verified
  kLocked,    ///< password-protected and no password given yet
  kRejected,  ///< the last password given was wrong
  kUnusable,  ///< the file cannot be read or used (missing, damaged, certificate not valid)
};
/// "open", "locked", "wrong-password", "unusable".
std::string_view to_string(IdStatus status);

/// Wrong passwords in a row before unlocking slows down; from then on each further try must
/// wait 1, 2, 4 ... seconds after the last one, at most kMaxUnlockDelay.
inline constexpr int kFreeWrongPasswords = 2;
inline constexpr std::chrono::seconds kMaxUnlockDelay{60};
/// An open ID whose certificate ends within this is reported as soon to expire.
inline constexpr std::chrono::hours kExpiryWarning{14 * 24};

class IdKeeper {
 public:
  /// `file` is the connector ID; nothing is read until open().
  explicit IdKeeper(std::filesystem::path file, LoadOptions options = {});

  const std::filesystem::path& file() const { return file_; }

  /// Reads the file and opens it with `password` (null: none given; enough for an ID without
  /// one), then verifies key, certificate and chain at `now`. On success the ID becomes the
  /// current one. On failure the current one, if any, stays in use (a mistyped unlock does not
  /// take a working ID away), except when the file itself is now unusable at startup.
  /// Fails with: kLimit when a wrong password came too recently ("try again in N s"; the
  /// file is not read), kWrongPassword, kUnavailable (protected, no password), kCertificate
  /// (expired, not yet valid, chain broken), or the load errors of ConnectorId::load.
  /// Thread-safe; concurrent calls run one after the other.
  Expected<std::shared_ptr<const ConnectorId>> open(const SecretString* password,
                                                    Clock::time_point now = Clock::now());

  /// The ID in use; null while there is none.
  std::shared_ptr<const ConnectorId> current() const;
  IdStatus status() const;
  /// Why there is no usable ID, with the remedy; nullopt while one is open.
  std::optional<Error> problem() const;
  /// What a process that needs the ID is doing meanwhile: "waiting for the connector ID
  /// password", "waiting for a valid connector ID: ...".
  std::string waiting_activity() const;
  /// Called periodically: an open ID whose certificate ran out by `now` becomes kUnusable
  /// with "expired on DATE". Returns true when that happened.
  bool check_expiry(Clock::time_point now = Clock::now());
  /// The current ID's certificate ends within kExpiryWarning of `now`.
  bool expires_soon(Clock::time_point now = Clock::now()) const;
  /// Wrong passwords given in a row.
  int wrong_passwords() const;
  /// Set when the last open() could not read the file (permission denied, as after the
  /// daemon dropped root) and used the bytes of the last successful read instead: why the
  /// file could not be read.
  std::optional<std::string> read_from_copy() const;

 private:
  std::filesystem::path file_;
  LoadOptions options_;
  mutable std::mutex open_mu_;  // serializes open(): one key derivation at a time
  mutable std::mutex mu_;       // guards the members below; never held while loading
  std::shared_ptr<const ConnectorId> current_;
  IdStatus status_ = IdStatus::kLocked;
  std::optional<Error> problem_;
  int wrong_ = 0;
  Clock::time_point last_wrong_{};
  std::string kept_;        // the file's bytes as last read (still encrypted where it has a password)
  bool used_copy_ = false;  // the last open() used kept_ because the file could not be read
  std::string unreadable_;  // why it could not

};

/// What open_at_start() did; the ID's state itself is in the keeper.
struct StartupOpen {
  bool password_needed = false;  ///< the file is password-protected
  PasswordSourceInfo source;     ///< the source tried when a password was needed
  /// Why the source did not open the ID: it could not give a password (a password file
  /// others can read, Ctrl-D at the prompt, no prompt here) or gave a wrong one. The message
  /// names the source; the remedy says how to correct it or to use `bridgehead unlock`.
  std::optional<Error> source_error;
};

/// Opens the ID the way the daemon does at start: without a password, and when the file
/// wants one, with the password from the first configured source (resolve_password_source;
/// a kTerminal source prompts through env.prompt with `prompt`). Used by the daemon and by
/// `bridgehead check` (which gives an env without a prompt), so they cannot disagree.
StartupOpen open_at_start(IdKeeper& keeper, const std::filesystem::path& id_password_file, const Environment& env,
                          std::string_view prompt);

}  // namespace bridgehead::identity
