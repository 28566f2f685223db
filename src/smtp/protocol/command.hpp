// The SMTP command parser (RFC 5321 4.1, with the parameters of SIZE, 8BITMIME, SMTPUTF8,
// DSN, CHUNKING). Pure: one command line in, a Command or the reply that rejects it out.
// It checks syntax only; whether a command is allowed now is the Session's business.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <tl/expected.hpp>

#include "core/envelope.hpp"
#include "smtp/protocol/reply.hpp"

namespace bridgehead::smtp {

enum class Verb {
  kEhlo, kHelo, kMail, kRcpt, kData, kBdat, kRset, kNoop, kQuit, kVrfy, kExpn, kHelp,
  kStarttls, kAuth, kUnknown,
};

struct MailParams {
  std::optional<std::uint64_t> size;  ///< SIZE=
  BodyType body = BodyType::kUnspecified;
  bool smtputf8 = false;
  DsnRet ret = DsnRet::kUnspecified;
  std::string envid;                  ///< ENVID=, xtext-decoded
};

struct RcptParams {
  std::uint8_t notify = kNotifyNone;  ///< NOTIFY=, NotifyFlags bitmask
  std::string orcpt;                  ///< ORCPT=, "addr-type;" + xtext-decoded address
};

struct Command {
  Verb verb = Verb::kUnknown;
  std::string argument;      ///< EHLO/HELO domain, VRFY/EXPN/HELP argument, the raw verb for kUnknown
  std::string path;          ///< MAIL/RCPT path without "<>"; empty for the null reverse-path
  MailParams mail;
  RcptParams rcpt;
  std::uint64_t bdat_size = 0;
  bool bdat_last = false;
};

/// Parses one command line, without its CRLF. Fails with the reply to send:
/// 500 5.5.2 (syntax, bare CR, NUL), 501 5.5.4 (bad arguments), 553 5.1.3 (bad address),
/// 555 5.5.4 (unknown or malformed MAIL/RCPT parameter).
tl::expected<Command, Reply> parse_command(std::string_view line);

/// RFC 3461 xtext decoding ("+2B" -> "+"); nullopt when malformed.
std::optional<std::string> xtext_decode(std::string_view in);

/// Whether `address` is an RFC 5321 Mailbox (local-part "@" domain or address literal);
/// with `utf8` RFC 6531 UTF-8 is allowed in both parts. No CR, LF, NUL or controls ever.
bool is_valid_mailbox(std::string_view address, bool utf8);

}  // namespace bridgehead::smtp
