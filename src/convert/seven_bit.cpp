#include "convert/seven_bit.hpp"

namespace bridgehead::convert {
bool has_8bit(std::string_view message) {
  for (unsigned char c : message) if (c >= 128 || c == 0) return true;
  return false;
}
Expected<std::string> downgrade_to_7bit(std::string_view message) { return std::string(message); }
}  // namespace bridgehead::convert
