// smtp/client: how envelope parameters and content are written on the wire: xtext
// (RFC 3461 4), the DSN parameters, 8-bit detection, and dot-stuffing (RFC 5321 4.5.2).
// Pure: no sockets.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace bridgehead::smtp::client {

/// RFC 3461 4: every octet outside "!".."~", and "+" and "=", as "+HH" (upper-case hex).
std::string xtext_encode(std::string_view text);

/// The ORCPT value for the wire from the decoded form "rfc822;user@example": the address
/// type as is, the address xtext-encoded. Empty when `orcpt` has no ";" (nothing to send).
std::string orcpt_param(std::string_view orcpt);

/// NOTIFY's value from the envelope's NotifyFlags ("SUCCESS,FAILURE", "NEVER"); empty for 0.
std::string notify_param(std::uint8_t flags);


/// Octets the content takes on the wire before dot-stuffing: its size, plus the CRLF that
/// append_dot_stuffed adds when the content does not end with a line break.
std::size_t message_size(std::string_view content);

/// Appends `content` to `out` as a DATA body, in one pass: a line starting with "." gets
/// another, a bare LF becomes CRLF, a CRLF is added when the last line lacks one, and the
/// terminating ".\r\n" follows.
void append_dot_stuffed(std::string_view content, std::string& out);

/// append_dot_stuffed for content that arrives in pieces: the same octets, whatever the
/// pieces are (a "\r\n." or "\r\n" split between two pieces included).
class DotStuffer {
 public:
  /// Appends the next piece of the content, stuffed, to `out`.
  void append(std::string_view piece, std::string& out);
  /// Ends the content: the CRLF a last line without one needs, then ".\r\n". The stuffer
  /// is then ready for another message.
  void finish(std::string& out);

 private:
  bool at_line_start_ = true;  // the next octet starts a line
  bool last_cr_ = false;       // the last octet appended was a CR (an LF next keeps it as CRLF)
};

}  // namespace bridgehead::smtp::client
