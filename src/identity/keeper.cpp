#include "identity/keeper.hpp"

#include <algorithm>

#include <fmt/format.h>

namespace bridgehead::identity {

namespace {

std::string ways_to_unlock(const std::filesystem::path& file) {
  return fmt::format(
      "run `bridgehead unlock` (it asks for the password of {} without echo and hands it to the running "
      "daemon), or give the daemon a password source: id_password_file in [identity] (a file of mode 0600), "
      "the systemd credential {}, or the environment variable {}; mail waits in the queue meanwhile",
      file.string(), kCredentialName, kPasswordEnvVar);
}

std::chrono::seconds unlock_delay(int wrong) {
  if (wrong <= kFreeWrongPasswords) return std::chrono::seconds(0);
  const int doublings = std::min(wrong - kFreeWrongPasswords - 1, 6);
  return std::min(std::chrono::seconds(1LL << doublings), kMaxUnlockDelay);
}

}  // namespace

std::string_view to_string(IdStatus status) {
  switch (status) {
    case IdStatus::kOpen: return "open";
    case IdStatus::kLocked: return "locked";
    case IdStatus::kRejected: return "wrong-password";
    case IdStatus::kUnusable: return "unusable";
  }
  return "unknown";
}

IdKeeper::IdKeeper(std::filesystem::path file, LoadOptions options)
    : file_(std::move(file)), options_(options) {
  problem_ = Error::transient_error(ErrorCode::kUnavailable,
                                    fmt::format("the connector ID {} has not been opened yet", file_.string()),
                                    ways_to_unlock(file_));
}

Expected<std::shared_ptr<const ConnectorId>> IdKeeper::open(const SecretString* password, Clock::time_point now) {
  std::lock_guard serial(open_mu_);
  {
    std::lock_guard lock(mu_);
    const auto wait = unlock_delay(wrong_);
    if (password != nullptr && wrong_ > 0 && now < last_wrong_ + wait) {
      const auto left = std::chrono::ceil<std::chrono::seconds>(last_wrong_ + wait - now);
      return fail(Error::transient_error(
          ErrorCode::kLimit,
          fmt::format("{} wrong passwords in a row for the connector ID {}; the next try is accepted in {} s",
                      wrong_, file_.string(), left.count()),
          fmt::format("wait {} s and run `bridgehead unlock` again with the right password", left.count())));
    }
  }
  PasswordProvider provider;
  if (password != nullptr) {
    provider = [password](const std::string&) -> Expected<SecretString> { return password->clone(); };
  }
  // After the daemon dropped root, a root-only file can no longer be read: the bytes read
  // before the drop (still encrypted) open it instead. A file that can be read wins, so a
  // re-certified ID readable by the daemon's user is taken without a restart.
  auto bytes = read_id_file(file_);
  bool from_copy = false;
  if (!bytes && bytes.error().code == ErrorCode::kPermission) {
    std::lock_guard lock(mu_);
    if (!kept_.empty()) {
      unreadable_ = bytes.error().describe();
      bytes = kept_;
      from_copy = true;
    }
  }
  Expected<ConnectorId> loaded =
      bytes ? ConnectorId::load_from_memory(
                  std::span(reinterpret_cast<const unsigned char*>(bytes->data()), bytes->size()), provider,
                  fmt::format("connector ID {}", file_.string()), options_)
            : Expected<ConnectorId>(fail(bytes.error()));
  {
    std::lock_guard lock(mu_);
    used_copy_ = from_copy;
    if (bytes && !from_copy) kept_ = *bytes;
  }
  Expected<void> checked = loaded ? verify(*loaded, now) : Expected<void>(fail(loaded.error()));

  std::lock_guard lock(mu_);
  if (loaded && checked) {
    current_ = std::make_shared<const ConnectorId>(std::move(*loaded));
    status_ = IdStatus::kOpen;
    problem_.reset();
    wrong_ = 0;
    return current_;
  }
  Error e = checked ? loaded.error() : checked.error();
  switch (e.code) {
    case ErrorCode::kWrongPassword:
      ++wrong_;
      last_wrong_ = now;
      e.message = fmt::format("wrong password for the connector ID {} ({} wrong in a row)", file_.string(), wrong_);
      e.remedy = "run `bridgehead unlock` again with the right password; if it is right, the file has been "
                 "changed or damaged: restore it from a backup";
      e.severity = Severity::kTransient;
      break;
    case ErrorCode::kUnavailable:
      e.message = fmt::format("the connector ID {} is password-protected and no password was supplied",
                              file_.string());
      e.remedy = ways_to_unlock(file_);
      break;
    case ErrorCode::kCertificate:
      e.message = fmt::format("the connector ID {} cannot be used: {}", file_.string(), e.message);
      e.remedy += "; then run `bridgehead unlock` to make the running daemon read it again";
      break;
    default:
      if (e.remedy.empty()) e.remedy = "fix or replace the file";
      e.remedy += "; then run `bridgehead unlock` to make the running daemon read it again";
      break;
  }
  // A working ID stays in use after a failed re-read; without one, the failure is the state.
  if (current_ == nullptr) {
    status_ = e.code == ErrorCode::kWrongPassword ? IdStatus::kRejected
              : e.code == ErrorCode::kUnavailable ? IdStatus::kLocked
                                                  : IdStatus::kUnusable;
    problem_ = e;
  }
  return fail(std::move(e));
}

std::shared_ptr<const ConnectorId> IdKeeper::current() const {
  std::lock_guard lock(mu_);
  return current_;
}

IdStatus IdKeeper::status() const {
  std::lock_guard lock(mu_);
  return status_;
}

std::optional<Error> IdKeeper::problem() const {
  std::lock_guard lock(mu_);
  return problem_;
}

std::string IdKeeper::waiting_activity() const {
  std::lock_guard lock(mu_);
  switch (status_) {
    case IdStatus::kOpen: return "";
    case IdStatus::kLocked: return "waiting for the connector ID password";
    case IdStatus::kRejected: return "waiting for the connector ID password (the last one given was wrong)";
    case IdStatus::kUnusable: return "waiting for a usable connector ID: " + (problem_ ? problem_->message : "");
  }
  return "";
}

bool IdKeeper::check_expiry(Clock::time_point now) {
  std::lock_guard lock(mu_);
  if (current_ == nullptr) return false;
  const auto not_after = current_->info().not_after;
  if (now <= not_after) return false;
  current_.reset();
  status_ = IdStatus::kUnusable;
  problem_ = Error::permanent(
      ErrorCode::kCertificate,
      fmt::format("the connector ID {} cannot be used: its certificate expired on {}", file_.string(),
                  format_time(not_after)),
      fmt::format("re-certify it with `bridgehead id certify {} --certifier CERT.id`, then run `bridgehead "
                  "unlock` to make the running daemon read it again",
                  file_.string()));
  return true;
}

bool IdKeeper::expires_soon(Clock::time_point now) const {
  std::lock_guard lock(mu_);
  return current_ != nullptr && current_->info().not_after - now < kExpiryWarning;
}

std::optional<std::string> IdKeeper::read_from_copy() const {
  std::lock_guard lock(mu_);
  if (!used_copy_) return std::nullopt;
  return unreadable_;
}

int IdKeeper::wrong_passwords() const {
  std::lock_guard lock(mu_);
  return wrong_;
}

StartupOpen open_at_start(IdKeeper& keeper, const std::filesystem::path& id_password_file, const Environment& env,
                          std::string_view prompt) {
  StartupOpen r;
  auto plain = keeper.open(nullptr);
  if (plain || plain.error().code != ErrorCode::kUnavailable) return r;
  r.password_needed = true;
  r.source = resolve_password_source(id_password_file, env);
  if (r.source.source == PasswordSource::kNone) return r;
  const std::string source_name =
      r.source.description.empty() ? std::string(to_string(r.source.source)) : r.source.description;
  auto password = read_password(r.source, prompt, env);
  if (!password) {
    Error e = password.error();
    e.message = fmt::format("the connector ID {} stays locked: its password source ({}) failed: {}",
                            keeper.file().string(), source_name, e.message);
    e.remedy = r.source.source == PasswordSource::kTerminal
                   ? "give the password with `bridgehead unlock`; mail waits in the queue meanwhile"
                   : e.remedy + "; or give the password with `bridgehead unlock`; mail waits in the queue meanwhile";
    r.source_error = std::move(e);
    return r;
  }
  auto opened = keeper.open(&*password);
  if (!opened && opened.error().code == ErrorCode::kWrongPassword) {
    Error e = opened.error();
    e.remedy = fmt::format("the password from {} does not open the ID: correct it there, or give the right one with "
                           "`bridgehead unlock`; if it is right, the file has been changed or damaged: restore it "
                           "from a backup",
                           source_name);
    r.source_error = std::move(e);
  }
  return r;
}

}  // namespace bridgehead::identity
