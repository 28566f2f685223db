// downgrade_to_7bit on arbitrary bytes: it either fails with a 5.6.3-style error or returns
// a message that is 7-bit, with CRLF lines of at most 998 octets.
#include <cstdint>
#include <string>

#include "convert/seven_bit.hpp"
#include "fuzz_check.hpp"

namespace convert = bridgehead::convert;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  auto out = convert::downgrade_to_7bit(in);
  if (!out) {
    FUZZ_CHECK(!out.error().transient());
    FUZZ_CHECK(out.error().message.starts_with("conversion to 7-bit not possible: "));
    return 0;
  }
  FUZZ_CHECK(!convert::has_8bit(*out));
  if (!convert::has_8bit(in)) {
    FUZZ_CHECK(*out == in);  // nothing to do, nothing done
    return 0;
  }
  // Every LF has its CR (a lone CR in a part left as it was may stay).
  std::size_t line = 0;
  for (std::size_t i = 0; i < out->size(); ++i) {
    if ((*out)[i] == '\n') {
      FUZZ_CHECK(i > 0 && (*out)[i - 1] == '\r');
      line = 0;
    } else {
      FUZZ_CHECK(++line <= 999);  // 998 octets and the CR
    }
  }
  return 0;
}
