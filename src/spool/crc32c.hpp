// CRC32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of every spool record.
// Internal to the spool; not a public header of the component.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace bridgehead::spool::detail {

/// Extends `crc` (0 for a fresh start) over `len` bytes. crc32c("123456789") == 0xE3069283.
std::uint32_t crc32c(std::uint32_t crc, const void* data, std::size_t len);

/// The table-driven path alone, so tests can check it against the hardware path.
std::uint32_t crc32c_portable(std::uint32_t crc, const void* data, std::size_t len);

inline std::uint32_t crc32c(std::uint32_t crc, std::string_view s) {
  return crc32c(crc, s.data(), s.size());
}

}  // namespace bridgehead::spool::detail
