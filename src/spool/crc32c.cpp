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
// The CRC instruction has a latency of three cycles but issues every cycle: one dependent
// chain runs at a third of the speed the CPU can do. So long inputs go as three lanes of
// kLane octets, each its own chain, combined afterwards. Combining needs Z(x), the raw CRC
// register x carried over kLane zero octets: the update is linear over GF(2), so
// crc(x, A||B) = Z(crc(x, A)) ^ crc(0, B), and Z is four table lookups.
constexpr std::size_t kLane = 4096;

struct LaneShift {
  std::array<std::array<std::uint32_t, 256>, 4> t{};
  LaneShift() {
    static constexpr unsigned char kZeros[kLane] = {};
    std::uint32_t basis[32];
    for (int j = 0; j < 32; ++j) basis[j] = crc32c_table(1u << j, kZeros, kLane);
    for (int pos = 0; pos < 4; ++pos) {
      for (std::uint32_t b = 0; b < 256; ++b) {
        std::uint32_t v = 0;
        for (int bit = 0; bit < 8; ++bit) {
          if ((b >> bit) & 1u) v ^= basis[pos * 8 + bit];
        }
        t[static_cast<std::size_t>(pos)][b] = v;
      }
    }
  }
  std::uint32_t operator()(std::uint32_t x) const {
    return t[0][x & 0xFFu] ^ t[1][(x >> 8) & 0xFFu] ^ t[2][(x >> 16) & 0xFFu] ^ t[3][x >> 24];
  }
};

__attribute__((target("sse4.2"))) std::uint32_t crc32c_hw(std::uint32_t crc, const unsigned char* p,
                                                          std::size_t len) {
  const auto load = [](const unsigned char* at) {
    std::uint64_t v = 0;
    std::memcpy(&v, at, 8);
    return v;
  };
  std::uint64_t c = crc;
  if (len >= 3 * kLane) {
    static const LaneShift shift;
    do {
      std::uint64_t a = c;
      std::uint64_t b = 0;
      std::uint64_t d = 0;
      for (std::size_t k = 0; k < kLane; k += 8) {
        a = __builtin_ia32_crc32di(a, load(p + k));
        b = __builtin_ia32_crc32di(b, load(p + kLane + k));
        d = __builtin_ia32_crc32di(d, load(p + 2 * kLane + k));
      }
      c = shift(shift(static_cast<std::uint32_t>(a)) ^ static_cast<std::uint32_t>(b)) ^ static_cast<std::uint32_t>(d);
      p += 3 * kLane;
      len -= 3 * kLane;
    } while (len >= 3 * kLane);
  }
  while (len >= 8) {
    c = __builtin_ia32_crc32di(c, load(p));
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
