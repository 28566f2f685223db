// SMTP replies (RFC 5321 4.2) with RFC 3463 enhanced status codes. Pure value type.
#pragma once

#include <string>

namespace bridgehead::smtp {

struct Reply {
  int code = 250;
  std::string enhanced;  ///< "2.1.5"; empty where none applies (220, 221 greeting lines, 354)
  std::string text;      ///< one or more lines separated by '\n'; no CR or LF at the ends

  /// Wire form: every line "CODE-ENH text\r\n", the last with a space: "CODE ENH text\r\n".
  std::string render() const;
  bool positive() const { return code >= 200 && code < 400; }
  bool transient_failure() const { return code >= 400 && code < 500; }
  bool permanent_failure() const { return code >= 500; }
  bool operator==(const Reply&) const = default;
};

}  // namespace bridgehead::smtp
