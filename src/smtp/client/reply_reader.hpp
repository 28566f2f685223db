// smtp/client: reading what a next hop answers. Splits the bytes read from the server into
// complete replies (RFC 5321 4.2: "ddd-text" continuation lines, "ddd text" last line) and
// reads the keywords of an EHLO/LHLO reply. Pure: no sockets, no timers.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace bridgehead::smtp::client {

struct Capabilities;

/// One complete reply from the server.
struct ServerReply {
  int code = 0;
  std::vector<std::string> lines;  ///< the text of each line after "ddd-" / "ddd "; no CR/LF

  /// "550 5.1.1 <x@y>: user unknown": the code and every line's text joined with " "
  /// (an enhanced status code repeated on continuation lines is given once), with control
  /// characters and invalid UTF-8 escaped (escape_control): safe for logs and reports.
  std::string one_line() const;
  /// The RFC 3463 enhanced status code the first line starts with ("5.1.1"), empty when
  /// it has none.
  std::string enhanced() const;
};

/// Buffers the server's bytes and hands out complete replies in order.
class ReplyReader {
 public:
  enum class Status { kComplete, kNeedMore, kMalformed };

  /// Longest reply (all its lines) accepted before the input counts as malformed.
  static constexpr std::size_t kMaxReply = 64 * 1024;

  void append(std::string_view bytes) { in_.append(bytes); }
  /// Takes the next complete reply out of the buffer into `out`. kMalformed (a line that
  /// is not "ddd[ -]text", codes differing within a reply, a reply over kMaxReply) leaves
  /// the offending line in malformed_line() (escaped like one_line()); the reader is then of
  /// no further use.
  Status next(ServerReply& out);
  std::string_view malformed_line() const { return bad_line_; }
  /// Bytes received but not yet taken as part of a reply.
  std::size_t buffered() const { return in_.size() - pos_; }
  /// Forgets buffered input (after STARTTLS: nothing sent in plaintext may be used).
  void clear() {
    in_.clear();
    pos_ = 0;
  }

 private:
  std::string in_;
  std::size_t pos_ = 0;
  std::string bad_line_;
};

/// Reads the keywords of a 2xx EHLO/LHLO reply (line 1 is the server's name) into `caps`,
/// case-insensitively: PIPELINING, SIZE [n], 8BITMIME, SMTPUTF8, DSN, STARTTLS,
/// ENHANCEDSTATUSCODES, CHUNKING. Unknown keywords are ignored; every other field is reset.
void parse_capabilities(const ServerReply& ehlo, Capabilities& caps);

}  // namespace bridgehead::smtp::client
