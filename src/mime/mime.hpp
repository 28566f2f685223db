// mime: the project's one wrapper over GMime and GLib for the MIME pieces that it writes:
// base64 and quoted-printable, RFC 2047 encoded-words, RFC 2231 parameters, header folding,
// and GMime's one-time initialisation. It decides nothing about a message (what needs
// encoding, which charset label is true): its callers do. Pure: no I/O. UTF-8 validation
// is core/text's (is_valid_utf8), which every layer can reach.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace bridgehead::mime {

/// Initialises GMime once per process, whichever thread comes first; a component that uses
/// GMime's parser itself calls it first. Safe to call any number of times. Cannot fail.
void init_gmime();

/// `bytes` in base64 (RFC 4648 alphabet, padded). With line_length 0 one unbroken line, as an
/// encoded-word needs; else lines of line_length characters (RFC 2045 6.8: at most 76), each
/// ending in CRLF. Never fails.
std::string base64_encode(std::string_view bytes, std::size_t line_length = 0);

/// `text` (lines ending in CRLF or LF) in quoted-printable (RFC 2045 6.7) with CRLF lines of at
/// most 76 characters: soft breaks, "=" and 8-bit octets as =XX, whitespace before a line end
/// encoded. Never fails.
std::string qp_encode(std::string_view text);

/// `text` (octets in `charset`) as RFC 2047 encoded-words of at most 75 characters separated by
/// single spaces: Q unless B is 20% shorter, with only the characters a phrase allows left
/// plain, and a UTF-8 character never split between two words. Never fails.
std::string encode_header_words(std::string_view text, std::string_view charset);

/// Whether `word` has the form of an RFC 2047 encoded-word ("=?charset?X?text?=").
bool is_encoded_word(std::string_view word);

/// The parameter name*=charset''value of RFC 2231, the value percent-encoded; split into
/// name*0*=, name*1*=, … pieces joined by ";" CRLF SP when one line would pass 76 columns.
/// Never fails.
std::string encode_param(std::string_view name, std::string_view value, std::string_view charset);

/// Where fold_header folds unless told otherwise (RFC 5322 2.1.1 recommends 78).
inline constexpr std::size_t kFoldColumn = 78;

/// A header value (CRLF or LF lines) whose first line starts at `column` (after the name and
/// colon) with CRLF folds put before whitespace wherever a line would pass `width` columns;
/// every octet of it stays where it was, so unfolding gives the value back, and no line is only
/// whitespace. A run without whitespace longer than a line stays whole. Never fails.
std::string fold_header(std::size_t column, std::string_view value, std::size_t width = kFoldColumn);

}  // namespace bridgehead::mime
