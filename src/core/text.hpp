// core/text: small text helpers shared by components: making text that came from the other
// side of a connection (SMTP replies) safe to put into a log line, an error message or a
// report, and the two scans every octet of a message goes through on its way (line breaks
// on receipt, 8-bit octets before sending), UTF-8 validation, and the ASCII case and
// whitespace helpers every parser needs. It owns no I/O and knows nothing about SMTP.
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

/// The length of the UTF-8 sequence that starts at text[i] (1 for ASCII, 2..4), or 0 when it
/// is not valid RFC 3629 UTF-8 there: overlong, a surrogate, above U+10FFFF, truncated, or a
/// continuation octet. `i` must be below text.size().
std::size_t utf8_sequence_length(std::string_view text, std::size_t i);

/// Whether all of `text` is valid RFC 3629 UTF-8 (see utf8_sequence_length); NUL is valid.
bool is_valid_utf8(std::string_view text);

/// `c` in ASCII lower case. Protocol keywords, header names and domains compare in ASCII:
/// a locale's tolower could fold octets of UTF-8 and merge two different names.
char to_lower(char c);

/// `text` with its ASCII letters in lower case.
std::string to_lower(std::string_view text);

/// Whether `a` and `b` are equal but for ASCII case.
bool iequals(std::string_view a, std::string_view b);

/// Whether `text` starts with `prefix`, ASCII case ignored.
bool istarts_with(std::string_view text, std::string_view prefix);

/// `n` with a comma between groups of three digits: 12000 -> "12,000". For counts people read.
std::string grouped(std::size_t n);

/// Optimal-string-alignment distance, ASCII case ignored: insertions, deletions,
/// substitutions and a transposition of neighbours each cost 1 ("smpt" is 1 from "smtp",
/// "frist" 1 from "first"). For "did you mean" hints.
std::size_t edit_distance(std::string_view a, std::string_view b);

/// `text` without the leading and trailing octets that are in `blanks` (space and tab unless
/// told otherwise; " \t\r\n" for a folded header value). Always a view into `text`, also when
/// nothing is left (then empty, at text's end), so offsets may be taken from its data().
std::string_view trim(std::string_view text, std::string_view blanks = " \t");

}  // namespace bridgehead
