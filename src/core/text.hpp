// core/text: small text helpers shared by components: making text that came from the other
// side of a connection (SMTP replies) safe to put into a log line, an error message or a
// report, and the two scans every octet of a message goes through on its way (line breaks
// on receipt, 8-bit octets before sending). It owns no I/O and knows nothing about SMTP.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace bridgehead {

/// `text` with every octet that could break or forge a log line written as an escape: CR
/// as "\r", LF as "\n", TAB as "\t", the other C0 controls, DEL and the C1 controls
/// (U+0080..U+009F) as "\xHH" per octet, every octet of invalid UTF-8 (overlong forms,
/// surrogates, truncated sequences) as "\xHH", and "\" itself as "\\" so an escape in the
/// input cannot pass for one made here. Printable ASCII and valid UTF-8 are kept. Never fails.
std::string escape_control(std::string_view text);

/// The position of the first CR or LF in `text`, or text.size() if there is none. Sixteen
/// octets at a time: the receiving side runs it over every octet of every message.
std::size_t find_line_break(std::string_view text);

/// Whether any octet of `text` is above 127 (8-bit content), 64 octets at a time.
bool has_8bit(std::string_view text);

}  // namespace bridgehead
