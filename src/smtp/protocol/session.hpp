// The SMTP server session state machine (RFC 5321 with PIPELINING, SIZE, 8BITMIME,
// ENHANCEDSTATUSCODES, DSN, SMTPUTF8, CHUNKING, STARTTLS). Pure: it decides the reply to
// each parsed command and what the connection must do next; it does no I/O. The listener
// owns sockets, timers and the spool; recipient checks come through a callback so the
// address book can replace the static list without touching this file.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "core/envelope.hpp"
#include "smtp/protocol/command.hpp"
#include "smtp/protocol/reply.hpp"

namespace bridgehead::smtp {

enum class SessionState {
  kConnected,  ///< greeting sent, no EHLO/HELO yet (also right after STARTTLS)
  kReady,      ///< EHLO/HELO done, no transaction
  kMail,       ///< MAIL accepted, no recipient yet
  kRcpt,       ///< at least one recipient accepted
  kData,       ///< 354 sent, reading the DATA stream
  kBdat,       ///< inside a BDAT transaction (chunks being received)
  kClosed,     ///< QUIT or a fatal error; the connection must close after the reply
};

struct SessionOptions {
  std::string hostname = "localhost";   ///< our name in the greeting, EHLO reply, Received:
  std::uint64_t max_message_size = 50ull << 20;
  unsigned max_recipients = 1000;       ///< beyond: 452 4.5.3
  unsigned max_junk_commands = 100;     ///< NOOP/RSET/VRFY/HELP/unknown before MAIL; beyond: 421
  unsigned max_errors = 20;             ///< failed commands in a session; beyond: 421
  bool starttls_available = false;      ///< offer STARTTLS (a certificate is configured)
  bool tls_active = false;              ///< the connection is already encrypted
  /// MAIL only after STARTTLS (530 5.7.0 before): the listener requires client certificates.
  bool require_tls = false;
};

/// Decision about one recipient: nullopt accepts, a Reply refuses it (550 5.1.1 unknown
/// user, 554 5.7.1 relay denied, 451 4.3.0 lookup failed ...).
using RecipientCheck = std::function<std::optional<Reply>(const std::string& address)>;

/// What the connection must do after sending `reply`.
enum class NextStep {
  kContinue,       ///< read the next command
  kReadData,       ///< read the DATA stream (reply was 354)
  kReadBdatChunk,  ///< read exactly Command::bdat_size bytes of content, then call on_bdat_chunk
  kStartTls,       ///< send reply, discard any buffered input, start the TLS handshake
  kClose,          ///< send reply, then close
};

struct Action {
  std::optional<Reply> reply;  ///< nullopt for BDAT (the reply comes after the chunk)
  NextStep next = NextStep::kContinue;
};

class Session {
 public:
  Session(SessionOptions options, RecipientCheck check);

  /// 220 greeting.
  Reply greeting() const;
  /// Handles one command line (without CRLF): parses it and applies it to the state.
  Action on_line(std::string_view line);
  /// A command line longer than the limit: 500 5.5.2, counted as an error.
  Action on_line_too_long();

  /// kData/kBdat: the content stream ended. `verdict` is DataDecoder::verdict() (nullopt
  /// when the content is acceptable); `stored` is the spool's result: a queue id when the
  /// message is durably stored, or the reply for a storage failure (452 4.3.1). Returns
  /// the final reply (250 with the queue id, or the refusal) and resets the transaction.
  /// A BDAT refusal stored by on_line (see discarding_content()) takes precedence.
  Action on_message_end(const std::optional<Reply>& verdict,
                        const tl::expected<std::string, Reply>& stored);
  /// kBdat: a non-LAST chunk of `size` bytes was received; 250 2.0.0, stay in kBdat, or
  /// the verdict when the content already failed (the transaction is then reset).
  Action on_bdat_chunk(std::uint64_t size, const std::optional<Reply>& verdict);

  /// After the TLS handshake succeeded: forget EHLO and any transaction (RFC 3207 4.2).
  void on_tls_started();

  SessionState state() const { return state_; }
  /// Changes whenever a transaction ends or is reset (RSET, EHLO/HELO, STARTTLS, end of
  /// message, a refused chunk). Content received under one number belongs to that
  /// transaction only: the listener drops it as soon as the number moves on.
  std::uint64_t transaction() const { return transaction_; }
  /// The envelope of the current transaction (valid from MAIL until the message ends).
  const Envelope& envelope() const { return envelope_; }
  /// The last parsed BDAT command (size and LAST flag) while in kBdat.
  const Command& last_command() const { return last_; }
  bool tls_active() const { return options_.tls_active; }
  const std::string& helo() const { return helo_; }
  bool esmtp() const { return esmtp_; }
  /// True while a BDAT chunk is read only to be thrown away: the BDAT arrived where no
  /// transaction could take it (no MAIL, no accepted recipient, after HELO). The chunk bytes
  /// must still be consumed (they are not commands); do not spool them. on_bdat_chunk /
  /// on_message_end then give the stored refusal (503 5.5.1 or 554 5.5.1) whatever their
  /// arguments say.
  bool discarding_content() const { return bdat_refusal_.has_value(); }

 private:
  SessionOptions options_;
  RecipientCheck check_;
  SessionState state_ = SessionState::kConnected;
  Envelope envelope_;
  Command last_;
  std::string helo_;
  bool esmtp_ = false;
  unsigned junk_ = 0;
  unsigned errors_ = 0;
  unsigned transactions_ = 0;
  std::uint64_t transaction_ = 0;     ///< see transaction()
  bool rcpt_attempted_ = false;       ///< tells "DATA before RCPT" (503) from "all refused" (554)
  bool starttls_pending_ = false;     ///< 220 sent for STARTTLS, handshake not yet done
  std::optional<Reply> bdat_refusal_; ///< see discarding_content()

  Action respond(Reply reply, NextStep next = NextStep::kContinue);
  std::optional<Action> count_junk();
  Action close(Reply reply);
  void reset_transaction();
  Action on_helo(const Command& cmd);
  Action on_mail(const Command& cmd);
  Action on_rcpt(const Command& cmd);
  Action on_data();
  Action on_bdat(const Command& cmd);
  Action on_starttls();
};

}  // namespace bridgehead::smtp

