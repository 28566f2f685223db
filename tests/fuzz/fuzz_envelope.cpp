// deserialize_envelope on arbitrary bytes (a damaged spool commit record or quarantine
// file): it either fails with kCorrupt or returns an envelope that both forms write back
// and read again unchanged.
#include <cstdint>
#include <string>

#include "core/envelope.hpp"
#include "fuzz_check.hpp"

namespace bh = bridgehead;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  auto env = bh::deserialize_envelope(in);
  if (!env) {
    FUZZ_CHECK(env.error().code == bh::ErrorCode::kCorrupt);
    return 0;
  }
  const std::string bytes = bh::encode_envelope(*env);
  auto again = bh::deserialize_envelope(bytes);
  FUZZ_CHECK(again && *again == *env);
  FUZZ_CHECK(bh::is_binary_envelope(bytes) && bh::has_valid_values(*env));
  return 0;
}
