// Decoding of the message content stream: DATA (dot-stuffed, ended by CRLF.CRLF) and BDAT
// chunks (length-delimited). Pure and incremental, so content is streamed to the spool in
// pieces and never held whole. SMTP-smuggling safe: only CR LF "." CR LF ends DATA; a bare
// LF or bare CR is never a line end for that purpose, and is rejected or normalized to CRLF
// according to policy. While decoding it also checks the transfer limits (line length,
// size), so the verdict is known at end of data. What the content says (a mail loop in its
// Received: fields) is the cleanup stage's to judge.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "smtp/protocol/reply.hpp"

namespace bridgehead::smtp {

enum class BareLinefeedPolicy { kReject, kNormalize };

struct ContentLimits {
  std::size_t max_line_length = 1000;    ///< including CRLF (RFC 5321 4.5.3.1.6)
  std::uint64_t max_message_size = 50ull << 20;
  BareLinefeedPolicy bare_linefeed = BareLinefeedPolicy::kReject;
};

/// Where in the decoded content a problem arises: its octet and, for problems on the same
/// octet, the order one pass over the bytes would check them in (line length, then header
/// fields, then size). Lets a check made after decoding (cleanup's loop check) and the
/// decoder's own agree on which problem came first, however the stream was split.
struct ContentPosition {
  enum class Check : std::uint8_t { kLine, kHeader, kSize };
  std::uint64_t octet = 0;
  Check check = Check::kLine;
  auto operator<=>(const ContentPosition&) const = default;
};

class DataDecoder {
 public:
  enum class Mode { kData, kBdat };
  DataDecoder(Mode mode, ContentLimits limits);

  /// Consumes wire bytes and appends decoded content (CRLF line ends, dot-unstuffed in
  /// kData mode) to `out`. Returns how many bytes of `in` were consumed: in kData mode it
  /// stops right after the terminating CRLF.CRLF, so what follows is pipelined commands.
  /// In kBdat mode everything is consumed; the caller delimits chunks by their size.
  /// Once the size limit is passed, content is no longer appended (the message will be
  /// refused) but the stream is still consumed to its end.
  std::size_t feed(std::string_view in, std::string& out);

  /// kBdat: the last chunk has been fed; flushes a pending CR at the very end.
  void finish(std::string& out);

  /// kData: the terminating CRLF.CRLF has been seen.
  bool done() const { return done_; }

  /// The first problem found, as the reply to give at end of data, or nullopt if the
  /// content is acceptable: 550 5.6.0 bare LF/CR (kReject policy), 500 5.5.2 line too
  /// long, 552 5.3.4 too big.
  std::optional<Reply> verdict() const { return verdict_; }
  /// Where the verdict's problem is (meaningful only with a verdict).
  ContentPosition verdict_at() const { return verdict_at_; }

  /// Decoded content bytes so far (after normalization, before the size cut-off).
  std::uint64_t size() const { return size_; }

 private:
  enum class Scan : std::uint8_t { kText, kCr, kDot, kDotCr };

  std::size_t body_lines(std::string_view in) const;  ///< octets of ordinary whole lines at the start
  void step(char c, std::string& out);
  void text(std::string_view run, std::string& out);
  void line_end(bool proper, std::string& out);
  void bare_line_end(std::string& out);
  void emit(std::string_view bytes, std::string& out);
  Reply too_big() const;
  void set_verdict(Reply r, ContentPosition at);

  Mode mode_;
  ContentLimits limits_;
  bool done_ = false;
  std::optional<Reply> verdict_;
  ContentPosition verdict_at_;
  std::uint64_t size_ = 0;
  Scan scan_ = Scan::kText;
  bool line_start_ = true;       ///< after a real CRLF or at the stream start (never after bare CR/LF)
  bool after_bare_ = false;      ///< the last line end was bare and nothing has followed it
  std::size_t line_length_ = 0;  ///< wire octets of the current line, CRLF excluded
};

}  // namespace bridgehead::smtp
