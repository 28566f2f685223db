// Reading a small file whole (a connector ID, a quarantine record), with the errors every
// caller wants: a missing file as the caller's own "not found" with its remedy, any other
// failure as the errno error naming the file. Owns no policy about what the file holds.
#pragma once

#include <cstddef>
#include <filesystem>
#include <limits>
#include <string>
#include <string_view>

#include "core/expected.hpp"

namespace bridgehead {

/// The contents of `path`, read to its end or until more than `limit` octets are in hand
/// (so the caller can refuse an oversized file with a message about what it holds). Fails
/// with `missing` when there is no such file, otherwise with the errno error ("cannot open
/// WHAT" or "cannot read WHAT", transient).
Expected<std::string> read_whole_file(const std::filesystem::path& path, std::string_view what, Error missing,
                                      std::size_t limit = std::numeric_limits<std::size_t>::max());

}  // namespace bridgehead
