#include "smtp/protocol/reply.hpp"

#include <string_view>

namespace bridgehead::smtp {

std::string Reply::render() const {
  std::string out;
  std::string_view rest = text;
  const std::string code_text = std::to_string(code);
  for (;;) {
    const auto nl = rest.find('\n');
    const bool last = nl == std::string_view::npos;
    std::string_view line = last ? rest : rest.substr(0, nl);
    out += code_text;
    out += last ? ' ' : '-';
    if (!enhanced.empty()) {
      out += enhanced;
      if (!line.empty()) out += ' ';
    }
    // A reply must never carry a line break of its own: that would forge a second reply.
    for (char c : line) out += (c == '\r' || c == '\0') ? ' ' : c;
    out += "\r\n";
    if (last) break;
    rest.remove_prefix(nl + 1);
  }
  return out;
}

}  // namespace bridgehead::smtp
