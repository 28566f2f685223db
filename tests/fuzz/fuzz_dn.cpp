// Dn::parse on arbitrary bytes: it either fails with kInvalidArgument naming an offset, or
// gives a DN whose RFC 4514 form parses back to exactly the same RDNs, is written the same
// way again, and names the same entry (==, normalized(), is_within).
#include <cstdint>
#include <string>

#include "core/text.hpp"
#include "directory/dn.hpp"
#include "fuzz_check.hpp"

namespace bh = bridgehead;
namespace dir = bridgehead::directory;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  auto dn = dir::Dn::parse(in);
  if (!dn) {
    FUZZ_CHECK(dn.error().code == bh::ErrorCode::kInvalidArgument);
    FUZZ_CHECK(dn.error().message.find(" at offset ") != std::string::npos);
    return 0;
  }
  const std::string text = dn->to_string();
  auto again = dir::Dn::parse(text);
  FUZZ_CHECK(again);
  FUZZ_CHECK(again->rdns() == dn->rdns());
  FUZZ_CHECK(again->to_string() == text);
  FUZZ_CHECK(*again == *dn && again->normalized() == dn->normalized());
  FUZZ_CHECK(bh::is_valid_utf8(text));
  if (!dn->empty()) {
    FUZZ_CHECK(dn->is_within(dn->parent()) && !dn->parent().is_within(*dn));
    FUZZ_CHECK(dn->parent().child(dn->first_rdn()).rdns() == dn->rdns());
  }
  // A value escaped for a DN is that value again, whatever its octets.
  for (const dir::Rdn& rdn : dn->rdns()) {
    for (const dir::Ava& ava : rdn.avas) {
      auto one = dir::Dn::parse("cn=" + dir::escape_dn_value(ava.value));
      FUZZ_CHECK(one && one->size() == 1 && one->first_rdn().avas.size() == 1);
      FUZZ_CHECK(one->first_rdn().avas[0].value == ava.value && !one->first_rdn().avas[0].hex);
    }
  }
  return 0;
}
