// convert: content conversion on the way out. For now, the RFC 6152 downgrade of 8-bit
// content to 7-bit for a next hop without 8BITMIME.
#pragma once

#include <string>
#include <string_view>

#include "core/expected.hpp"

namespace bridgehead::convert {

/// Whether `message` has any octet above 127 (or NUL) and so needs 8BITMIME or a downgrade.
bool has_8bit(std::string_view message);

/// Re-encodes every 8-bit MIME part of `message` (CRLF lines) as quoted-printable or
/// base64 so the result is 7-bit. Fails (permanent, status 5.6.3) when it cannot.
Expected<std::string> downgrade_to_7bit(std::string_view message);

}  // namespace bridgehead::convert
