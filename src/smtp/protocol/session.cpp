#include "smtp/protocol/session.hpp"

#include "core/text.hpp"

namespace bridgehead::smtp {

namespace {
bool has_mail_params(const MailParams& p) {
  return p.size || p.body != BodyType::kUnspecified || p.smtputf8 ||
         p.ret != DsnRet::kUnspecified || !p.envid.empty();
}

Reply bad_sequence(std::string text) { return Reply{503, "5.5.1", std::move(text)}; }
Reply no_recipients() { return Reply{554, "5.5.1", "No valid recipients"}; }
}  // namespace

Session::Session(SessionOptions options, RecipientCheck check)
    : options_(std::move(options)), check_(std::move(check)) {}

Reply Session::greeting() const { return Reply{220, "", options_.hostname + " ESMTP Bridgehead"}; }

Action Session::close(Reply reply) {
  state_ = SessionState::kClosed;
  return Action{std::move(reply), NextStep::kClose};
}

Action Session::respond(Reply reply, NextStep next) {
  if (reply.code >= 400 && ++errors_ > options_.max_errors) {
    return close(Reply{421, "4.7.0", options_.hostname + " Too many errors, closing connection"});
  }
  return Action{std::move(reply), next};
}

std::optional<Action> Session::count_junk() {
  if (transactions_ == 0 && ++junk_ > options_.max_junk_commands) {
    return close(Reply{421, "4.7.0",
                       options_.hostname + " Too many commands without mail, closing connection"});
  }
  return std::nullopt;
}

void Session::reset_transaction() {
  ++transaction_;
  envelope_ = Envelope{};
  last_ = Command{};
  rcpt_attempted_ = false;
  bdat_refusal_.reset();
  state_ = helo_.empty() ? SessionState::kConnected : SessionState::kReady;
}

Action Session::on_line_too_long() {
  if (state_ == SessionState::kClosed) return close(Reply{421, "4.7.0", "Connection closing"});
  return respond(Reply{500, "5.5.2", "Line too long"});
}

Action Session::on_line(std::string_view line) {
  if (state_ == SessionState::kClosed) return close(Reply{421, "4.7.0", "Connection closing"});
  // Anything between our 220 to STARTTLS and the handshake was pipelined in plaintext
  // (CVE-2011-0411): the listener must have discarded it, so this is a broken peer.
  if (starttls_pending_) return close(Reply{421, "4.7.0", "TLS handshake expected"});
  if (state_ == SessionState::kData) return respond(bad_sequence("Message content expected"));

  auto parsed = parse_command(line);
  if (!parsed) {
    // A RCPT refused for its syntax is a refused recipient all the same: a pipelined DATA
    // after it must get 554 (RFC 2920), not "need RCPT first".
    if ((state_ == SessionState::kMail || state_ == SessionState::kRcpt) && istarts_with(line, "rcpt")) {
      rcpt_attempted_ = true;
    }
    return respond(std::move(parsed.error()));
  }
  const Command& cmd = *parsed;

  switch (cmd.verb) {
    case Verb::kEhlo:
    case Verb::kHelo:
      return on_helo(cmd);
    case Verb::kMail:
      return on_mail(cmd);
    case Verb::kRcpt:
      return on_rcpt(cmd);
    case Verb::kData:
      return on_data();
    case Verb::kBdat:
      return on_bdat(cmd);
    case Verb::kRset:
      if (auto junk = count_junk()) return *junk;
      reset_transaction();
      return respond(Reply{250, "2.0.0", "Ok"});
    case Verb::kNoop:
      if (auto junk = count_junk()) return *junk;
      return respond(Reply{250, "2.0.0", "Ok"});
    case Verb::kQuit:
      return close(Reply{221, "2.0.0", "Bye"});
    case Verb::kVrfy:
      if (auto junk = count_junk()) return *junk;
      // Never confirm users: VRFY is an address-harvesting tool.
      return respond(
          Reply{252, "2.5.0", "Cannot VRFY user; send mail and delivery will be attempted"});
    case Verb::kExpn:
      return respond(Reply{502, "5.5.1", "EXPN is not supported"});
    case Verb::kHelp:
      if (auto junk = count_junk()) return *junk;
      return respond(
          Reply{214, "2.0.0",
                "See RFC 5321; commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT STARTTLS"});
    case Verb::kAuth:
      return respond(Reply{502, "5.5.1", "AUTH is not offered"});
    case Verb::kStarttls:
      return on_starttls();
    case Verb::kUnknown:
      break;
  }
  if (auto junk = count_junk()) return *junk;
  return respond(Reply{500, "5.5.1", "Command not recognized"});
}

Action Session::on_helo(const Command& cmd) {
  helo_ = cmd.argument;
  esmtp_ = cmd.verb == Verb::kEhlo;
  reset_transaction();
  if (!esmtp_) return respond(Reply{250, "", options_.hostname});
  std::string text = options_.hostname;
  text += "\nPIPELINING";
  text += "\nSIZE " + std::to_string(options_.max_message_size);
  text += "\n8BITMIME\nENHANCEDSTATUSCODES\nDSN\nSMTPUTF8\nCHUNKING";
  if (options_.starttls_available && !options_.tls_active) text += "\nSTARTTLS";
  return respond(Reply{250, "", std::move(text)});
}

Action Session::on_mail(const Command& cmd) {
  if (state_ == SessionState::kConnected) return respond(bad_sequence("Send EHLO or HELO first"));
  if (state_ != SessionState::kReady) return respond(bad_sequence("Nested MAIL command"));
  // RFC 3207 4: a server that requires TLS answers 530 until STARTTLS.
  // Without a certificate to offer yet (the connector ID is locked), the refusal is
  // temporary: the sending system keeps the mail and tries again.
  if (options_.require_tls && !options_.tls_active) {
    if (!options_.starttls_available) return respond(Reply{454, "4.7.0", "TLS not available now, try again later"});
    return respond(Reply{530, "5.7.0", "Must issue a STARTTLS command first"});
  }
  if (!esmtp_ && has_mail_params(cmd.mail)) {
    return respond(Reply{555, "5.5.4", "MAIL parameters are not allowed after HELO"});
  }
  if (cmd.mail.size && *cmd.mail.size > options_.max_message_size) {
    return respond(Reply{552, "5.3.4",
                         "Message size exceeds the limit of " +
                             std::to_string(options_.max_message_size) + " octets"});
  }
  envelope_ = Envelope{};
  envelope_.mail_from = cmd.path;
  envelope_.body = cmd.mail.body;
  envelope_.smtputf8 = cmd.mail.smtputf8;
  envelope_.ret = cmd.mail.ret;
  envelope_.envid = cmd.mail.envid;
  envelope_.declared_size = cmd.mail.size.value_or(0);
  envelope_.helo = helo_;
  envelope_.tls = options_.tls_active;
  rcpt_attempted_ = false;
  ++transactions_;
  state_ = SessionState::kMail;
  return respond(Reply{250, "2.1.0", "Ok"});
}

Action Session::on_rcpt(const Command& cmd) {
  if (state_ != SessionState::kMail && state_ != SessionState::kRcpt) {
    return respond(bad_sequence(state_ == SessionState::kBdat ? "RCPT not allowed during BDAT"
                                                              : "Need MAIL before RCPT"));
  }
  rcpt_attempted_ = true;
  if (!esmtp_ && (cmd.rcpt.notify != kNotifyNone || !cmd.rcpt.orcpt.empty())) {
    return respond(Reply{555, "5.5.4", "RCPT parameters are not allowed after HELO"});
  }
  if (has_8bit(cmd.path) && !envelope_.smtputf8) {
    return respond(Reply{553, "5.6.7", "Non-ASCII recipient requires MAIL FROM with SMTPUTF8"});
  }
  if (envelope_.recipients.size() >= options_.max_recipients) {
    return respond(Reply{452, "4.5.3", "Too many recipients"});
  }
  if (check_) {
    if (auto refusal = check_(cmd.path)) return respond(std::move(*refusal));
  }
  envelope_.recipients.push_back(Recipient{cmd.path, cmd.rcpt.notify, cmd.rcpt.orcpt});
  state_ = SessionState::kRcpt;
  return respond(Reply{250, "2.1.5", "Ok"});
}

Action Session::on_data() {
  switch (state_) {
    case SessionState::kRcpt:
      state_ = SessionState::kData;
      return respond(Reply{354, "", "End data with <CR><LF>.<CR><LF>"}, NextStep::kReadData);
    case SessionState::kMail:
      // RFC 2920 3.1: after pipelined RCPTs that all failed, DATA gets 554, not 354.
      return respond(rcpt_attempted_ ? no_recipients() : bad_sequence("Need RCPT before DATA"));
    case SessionState::kBdat:
      return respond(bad_sequence("DATA not allowed in a BDAT transaction"));
    default:
      return respond(bad_sequence(state_ == SessionState::kConnected ? "Send EHLO or HELO first"
                                                                     : "Need MAIL before DATA"));
  }
}

Action Session::on_bdat(const Command& cmd) {
  // The chunk follows the command without waiting for a reply (RFC 3030 4.2), so even a
  // refused BDAT must have its bytes consumed: otherwise they would be read as commands.
  if (!bdat_refusal_) {
    if (state_ == SessionState::kConnected || !esmtp_) {
      bdat_refusal_ = bad_sequence("Send EHLO first");
    } else if (state_ == SessionState::kReady) {
      bdat_refusal_ = bad_sequence("Need MAIL before BDAT");
    } else if (state_ == SessionState::kMail) {
      bdat_refusal_ = rcpt_attempted_ ? no_recipients() : bad_sequence("Need RCPT before BDAT");
    }
  }
  last_ = cmd;
  state_ = SessionState::kBdat;
  return Action{std::nullopt, NextStep::kReadBdatChunk};
}

Action Session::on_bdat_chunk(std::uint64_t size, const std::optional<Reply>& verdict) {
  if (state_ != SessionState::kBdat) return respond(bad_sequence("No BDAT chunk expected"));
  if (bdat_refusal_ || verdict) {
    Reply refusal = bdat_refusal_ ? *bdat_refusal_ : *verdict;
    reset_transaction();
    return respond(std::move(refusal));
  }
  return respond(Reply{250, "2.0.0", std::to_string(size) + " octets received"});
}

Action Session::on_message_end(const std::optional<Reply>& verdict,
                               const tl::expected<std::string, Reply>& stored) {
  if (state_ != SessionState::kData && state_ != SessionState::kBdat) {
    return respond(bad_sequence("No message in progress"));
  }
  Reply reply;
  if (bdat_refusal_)
    reply = *bdat_refusal_;
  else if (verdict)
    reply = *verdict;
  else if (!stored)
    reply = stored.error();
  else
    reply = Reply{250, "2.0.0", "Ok: queued as " + *stored};
  reset_transaction();
  return respond(std::move(reply));
}

Action Session::on_starttls() {
  if (!options_.starttls_available) return respond(Reply{454, "4.7.0", "TLS not available"});
  if (options_.tls_active) return respond(bad_sequence("TLS already active"));
  if (state_ != SessionState::kConnected && state_ != SessionState::kReady) {
    return respond(bad_sequence("STARTTLS not allowed during a mail transaction"));
  }
  starttls_pending_ = true;
  return Action{Reply{220, "2.0.0", "Ready to start TLS"}, NextStep::kStartTls};
}

void Session::on_tls_started() {
  starttls_pending_ = false;
  options_.tls_active = true;
  helo_.clear();
  esmtp_ = false;
  reset_transaction();
}

}  // namespace bridgehead::smtp
