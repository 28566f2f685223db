// parse_command, xtext_decode and is_valid_mailbox on arbitrary bytes.
#include <cstdint>
#include <string>

#include "fuzz_check.hpp"
#include "smtp/protocol/command.hpp"

namespace {

using bridgehead::fuzz::has_control;
namespace smtp = bridgehead::smtp;

std::string xtext_encode(std::string_view in) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : in) {
    if (c >= 33 && c <= 126 && c != '+' && c != '=') {
      out += static_cast<char>(c);
    } else {
      out += '+';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

void check_reply(const smtp::Reply& r) {
  FUZZ_CHECK(r.code == 500 || r.code == 501 || r.code == 553 || r.code == 555);
  FUZZ_CHECK(!r.enhanced.empty() && r.enhanced[0] == '5');
  const std::string wire = r.render();
  FUZZ_CHECK(wire.find("\r\n") == wire.size() - 2);  // exactly one line
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);

  auto cmd = smtp::parse_command(in);
  if (!cmd) {
    check_reply(cmd.error());
  } else {
    // Nothing the client sent may carry a control character past the parser.
    FUZZ_CHECK(!has_control(in));
    FUZZ_CHECK(!has_control(cmd->path) && !has_control(cmd->argument));
    FUZZ_CHECK(!has_control(cmd->mail.envid) && !has_control(cmd->rcpt.orcpt));
    if (cmd->verb == smtp::Verb::kMail && !cmd->path.empty()) {
      FUZZ_CHECK(smtp::is_valid_mailbox(cmd->path, cmd->mail.smtputf8));
    }
    if (cmd->verb == smtp::Verb::kRcpt) {
      FUZZ_CHECK(!cmd->path.empty());
      FUZZ_CHECK(cmd->path.size() <= 256);
    }
    if ((cmd->rcpt.notify & bridgehead::kNotifyNever) != 0) {
      FUZZ_CHECK(cmd->rcpt.notify == bridgehead::kNotifyNever);
    }
    if (cmd->verb == smtp::Verb::kEhlo || cmd->verb == smtp::Verb::kHelo) {
      FUZZ_CHECK(!cmd->argument.empty() && cmd->argument.find(' ') == std::string::npos);
    }
  }

  if (auto decoded = smtp::xtext_decode(in)) FUZZ_CHECK(decoded->size() <= in.size());
  auto round = smtp::xtext_decode(xtext_encode(in));
  FUZZ_CHECK(round && *round == in);

  const bool ascii_ok = smtp::is_valid_mailbox(in, false);
  const bool utf8_ok = smtp::is_valid_mailbox(in, true);
  if (ascii_ok) FUZZ_CHECK(utf8_ok);
  if (utf8_ok) FUZZ_CHECK(!has_control(in) && in.find('@') != std::string_view::npos);
  if (ascii_ok) {
    for (unsigned char c : in) FUZZ_CHECK(c < 0x80);
  }
  return 0;
}
