// convert: content conversion on the way out. For now, the RFC 6152 downgrade of 8-bit
// content to 7-bit for a next hop without 8BITMIME. It rewrites only what is 8-bit (and
// lines too long for 7bit); it does not decide when to downgrade — the delivery attempt
// does, from the EHLO reply — and it never changes what a message means.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "core/expected.hpp"

namespace bridgehead::convert {

/// The largest message downgrade_to_7bit converts (it works in memory, several copies).
inline constexpr std::size_t kMaxDowngradeSize = 128u << 20;

/// Whether `message` has any octet above 127 (or NUL) and so needs 8BITMIME or a downgrade.
bool has_8bit(std::string_view message);

/// Re-encodes every 8-bit MIME part of `message` (CRLF lines; bare LF is tolerated) as
/// quoted-printable (text that is mostly ASCII) or base64, recursing into message/rfc822,
/// and 8-bit header text as RFC 2047 encoded-words (RFC 2231 for MIME parameters), so the
/// result is 7-bit with CRLF lines of at most 998 octets. Text without a usable charset
/// label gets charset utf-8 when it is valid UTF-8, else unknown-8bit (RFC 1428); a
/// non-MIME message gains MIME-Version and Content-Type. Everything 7-bit is kept as it
/// was; a message without 8-bit octets is returned unchanged.
/// Fails (permanent, status 5.6.3) when it cannot: 8-bit in an address (needs SMTPUTF8),
/// in a structured header, inside multipart/signed or in a message/* part that must stay
/// 7bit (delivery-status, partial, …), a header line GMime would drop, or a message over
/// kMaxDowngradeSize or nested too deeply (ErrorCode::kLimit).
Expected<std::string> downgrade_to_7bit(std::string_view message);

}  // namespace bridgehead::convert
