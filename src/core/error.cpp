#include "core/error.hpp"

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace bridgehead {

std::string_view to_string(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument: return "invalid-argument";
    case ErrorCode::kParse: return "parse";
    case ErrorCode::kConfig: return "config";
    case ErrorCode::kIo: return "io";
    case ErrorCode::kDiskFull: return "disk-full";
    case ErrorCode::kCorrupt: return "corrupt";
    case ErrorCode::kNotFound: return "not-found";
    case ErrorCode::kUnavailable: return "unavailable";
    case ErrorCode::kTimeout: return "timeout";
    case ErrorCode::kLimit: return "limit";
    case ErrorCode::kPermission: return "permission";
    case ErrorCode::kWrongPassword: return "wrong-password";
    case ErrorCode::kCertificate: return "certificate";
    case ErrorCode::kInternal: return "internal";
  }
  return "unknown";
}

std::optional<ErrorCode> error_code_from_string(std::string_view text) {
  for (int c = 0; c <= static_cast<int>(ErrorCode::kInternal); ++c) {
    if (to_string(static_cast<ErrorCode>(c)) == text) return static_cast<ErrorCode>(c);
  }
  return std::nullopt;
}

std::string Error::describe() const {
  if (remedy.empty()) return message;
  return fmt::format("{} ({})", message, remedy);
}

Error Error::transient_error(ErrorCode c, std::string msg, std::string remedy) {
  return Error{c, Severity::kTransient, std::move(msg), std::move(remedy)};
}

Error Error::permanent(ErrorCode c, std::string msg, std::string remedy) {
  return Error{c, Severity::kPermanent, std::move(msg), std::move(remedy)};
}

Error Error::from_errno(int err, std::string_view what, std::string remedy) {
  const bool full = err == ENOSPC || err == EDQUOT || err == EFBIG;
  if (full && remedy.empty()) remedy = "free disk space or raise the quota; mail is deferred meanwhile";
  if (err == EACCES && remedy.empty()) remedy = "check the owner and mode of the path";
  return Error{full ? ErrorCode::kDiskFull : (err == EACCES ? ErrorCode::kPermission : ErrorCode::kIo),
               Severity::kTransient, fmt::format("{}: {}", what, std::strerror(err)),
               std::move(remedy)};
}

}  // namespace bridgehead
