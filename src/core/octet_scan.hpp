// core/octet_scan: finding the first octet of interest sixteen at a time. A byte loop runs
// at about one octet per cycle and compilers do not vectorize a search loop; on the scans
// every octet of a message goes through (line breaks on receipt, dot-stuffing on sending)
// it was the largest user-space share of the CPU. The callers say what they look for as a
// combination of per-octet matches; this header owns the SSE2 and the loop.
#pragma once

#include <cstddef>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace bridgehead {

/// Bit j set where p[j] == c, for j in 0..15 (reads exactly p[0..15]).
inline unsigned match16(const char* p, char c) {
#if defined(__SSE2__)
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(c))));
#else
  unsigned mask = 0;
  for (unsigned j = 0; j < 16; ++j) mask |= static_cast<unsigned>(p[j] == c) << j;
  return mask;
#endif
}

/// The first i in [from, n) for which `at(i)` holds, or n. `block(i)` answers for i..i+15 at
/// once, as a mask with bit j for i + j, and may read up to `reach` positions past i + 15 (and
/// before i, when the caller starts `from` far enough in); it is asked only where all of that
/// lies below n, and `at` answers for the rest.
template <class Block, class At>
inline std::size_t find_first(std::size_t from, std::size_t n, std::size_t reach, const Block& block, const At& at) {
  std::size_t i = from;
  for (; i + 16 + reach <= n; i += 16) {
    if (const unsigned hits = block(i); hits != 0) return i + static_cast<std::size_t>(__builtin_ctz(hits));
  }
  for (; i < n; ++i) {
    if (at(i)) return i;
  }
  return n;
}

}  // namespace bridgehead
