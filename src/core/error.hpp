// Error: what went wrong, to what, whether retrying can help, and what a person should do.
// Transient vs permanent lives in the type (never parsed out of a message): it decides a
// 4xx or a 5xx reply, a deferral or a bounce.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace bridgehead {

enum class Severity {
  kTransient,  ///< may succeed later without anyone changing anything (4xx, defer)
  kPermanent,  ///< will fail again until something is changed (5xx, bounce, fix config)
};

enum class ErrorCode {
  kInvalidArgument,
  kParse,
  kConfig,
  kIo,
  kDiskFull,
  kCorrupt,
  kNotFound,
  kUnavailable,
  kTimeout,
  kLimit,
  kPermission,
  kWrongPassword,  ///< a password was given and did not open what it was meant to open
  kCertificate,    ///< a certificate is expired, not yet valid, or not certified by its chain
  kInternal,
};

std::string_view to_string(ErrorCode code);
/// The inverse of to_string (for errors that crossed the control socket); nullopt when unknown.
std::optional<ErrorCode> error_code_from_string(std::string_view text);

struct Error {
  ErrorCode code = ErrorCode::kInternal;
  Severity severity = Severity::kPermanent;
  std::string message;  ///< what happened, to what ("cannot write spool segment /x: No space left")
  std::string remedy;   ///< what to do about it; empty when there is nothing to do

  bool transient() const { return severity == Severity::kTransient; }
  /// "message (remedy)" — the one-line form for logs and CLI output.
  std::string describe() const;

  static Error transient_error(ErrorCode c, std::string msg, std::string remedy = {});
  static Error permanent(ErrorCode c, std::string msg, std::string remedy = {});
  /// An error from errno: ENOSPC/EDQUOT become kDiskFull, all I/O errors are transient.
  static Error from_errno(int err, std::string_view what, std::string remedy = {});
};

}  // namespace bridgehead
