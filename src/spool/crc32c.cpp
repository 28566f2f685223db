#include "spool/crc32c.hpp"

#include <array>
#include <cstring>

namespace bridgehead::spool::detail {

namespace {

constexpr std::uint32_t kPoly = 0x82F63B78u;

// Slicing-by-8 tables: the portable path, ~1 byte/cycle/table lookup chain instead of
// one; the SSE4.2 instruction below is used when the CPU has it.
struct Tables {
  std::array<std::array<std::uint32_t, 256>, 8> t{};
  constexpr Tables() {
    for (std::uint32_t i = 0; i < 256; ++i) {
      std::uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1u) ? (c >> 1) ^ kPoly : c >> 1;
      t[0][i] = c;
    }
    for (std::size_t s = 1; s < 8; ++s) {
      for (std::size_t i = 0; i < 256; ++i) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xFFu];
    }
  }
};

constexpr Tables kTables;

std::uint32_t crc32c_table(std::uint32_t crc, const unsigned char* p, std::size_t len) {
  const auto& t = kTables.t;
  while (len >= 8) {
    std::uint32_t lo = 0;
    std::uint32_t hi = 0;
    std::memcpy(&lo, p, 4);  // little-endian host assumed (x86-64, aarch64)
    std::memcpy(&hi, p + 4, 4);
    lo ^= crc;
    crc = t[7][lo & 0xFF] ^ t[6][(lo >> 8) & 0xFF] ^ t[5][(lo >> 16) & 0xFF] ^ t[4][lo >> 24] ^
          t[3][hi & 0xFF] ^ t[2][(hi >> 8) & 0xFF] ^ t[1][(hi >> 16) & 0xFF] ^ t[0][hi >> 24];
    p += 8;
    len -= 8;
  }
  while (len--) crc = (crc >> 8) ^ t[0][(crc ^ *p++) & 0xFFu];
  return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) std::uint32_t crc32c_hw(std::uint32_t crc, const unsigned char* p,
                                                          std::size_t len) {
  std::uint64_t c = crc;
  while (len >= 8) {
    std::uint64_t v = 0;
    std::memcpy(&v, p, 8);
    c = __builtin_ia32_crc32di(c, v);
    p += 8;
    len -= 8;
  }
  auto c32 = static_cast<std::uint32_t>(c);
  while (len--) c32 = __builtin_ia32_crc32qi(c32, *p++);
  return c32;
}

const bool kHaveHw = __builtin_cpu_supports("sse4.2");
#endif

}  // namespace

std::uint32_t crc32c(std::uint32_t crc, const void* data, std::size_t len) {
  const auto* p = static_cast<const unsigned char*>(data);
  crc = ~crc;
#if defined(__x86_64__)
  crc = kHaveHw ? crc32c_hw(crc, p, len) : crc32c_table(crc, p, len);
#else
  crc = crc32c_table(crc, p, len);
#endif
  return ~crc;
}

std::uint32_t crc32c_portable(std::uint32_t crc, const void* data, std::size_t len) {
  return ~crc32c_table(~crc, static_cast<const unsigned char*>(data), len);
}

}  // namespace bridgehead::spool::detail
