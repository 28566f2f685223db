#include "smtp/protocol/data_decoder.hpp"

#include <algorithm>

#include "core/text.hpp"

namespace bridgehead::smtp {


DataDecoder::DataDecoder(Mode mode, ContentLimits limits) : mode_(mode), limits_(limits) {}

std::size_t DataDecoder::body_lines(std::string_view in) const {
  // Ordinary body lines: CRLF-terminated, within the line limit, and the next one not
  // starting with a dot (in DATA). Such a run needs no state change but the size, so it is
  // emitted with one append instead of a few calls per line. A line that is not ordinary,
  // or runs past the end of `in`, is left to the byte-wise path.
  const std::size_t max_line = limits_.max_line_length;
  std::size_t end = 0;
  std::size_t length = line_length_;
  std::size_t i = 0;
  while (i < in.size()) {
    const std::size_t brk = i + find_line_break(in.substr(i));
    length += brk - i;
    if (length + 2 > max_line || brk + 2 >= in.size()) break;
    if (in[brk] != '\r' || in[brk + 1] != '\n') break;
    if (mode_ == Mode::kData && in[brk + 2] == '.') break;
    i = brk + 2;
    end = i;
    length = 0;
  }
  return end;
}

std::size_t DataDecoder::feed(std::string_view in, std::string& out) {
  std::size_t i = 0;
  while (i < in.size() && !done_) {
    // A dot at a line start is the byte-wise path's (the end of DATA, or stuffing).
    if (scan_ == Scan::kText && !(line_start_ && mode_ == Mode::kData && in[i] == '.')) {
      if (const std::size_t run = body_lines(in.substr(i)); run > 0) {
        emit(in.substr(i, run), out);
        i += run;
        line_length_ = 0;
        after_bare_ = false;
        line_start_ = true;  // after a real CRLF; body_lines saw that no dot follows
        continue;
      }
    }
    // Fast path: ordinary bytes in the middle of a line need no per-byte state changes.
    if (scan_ == Scan::kText && !(line_start_ && mode_ == Mode::kData)) {
      const std::size_t end = i + find_line_break(in.substr(i));
      if (end > i) {
        text(in.substr(i, end - i), out);
        i = end;
        continue;
      }
    }
    step(in[i++], out);
  }
  return i;
}

void DataDecoder::step(char c, std::string& out) {
  switch (scan_) {
    case Scan::kCr:
      scan_ = Scan::kText;
      if (c == '\n') return line_end(true, out);
      bare_line_end(out);
      break;
    case Scan::kDot:
      if (c == '\r') {
        scan_ = Scan::kDotCr;
        return;
      }
      scan_ = Scan::kText;
      if (c == '\n') {
        // "." then a bare LF is not a dot-stuffed line; keep the dot as content.
        text(".", out);
        return bare_line_end(out);
      }
      ++line_length_;  // the stuffing dot was on the wire
      break;
    case Scan::kDotCr:
      if (c == '\n') {
        done_ = true;
        return;
      }
      scan_ = Scan::kText;
      text(".", out);
      bare_line_end(out);
      break;
    case Scan::kText:
      break;
  }
  if (c == '\r') {
    scan_ = Scan::kCr;
  } else if (c == '\n') {
    bare_line_end(out);
  } else if (c == '.' && line_start_ && mode_ == Mode::kData) {
    // Only a real CRLF (or the stream start) makes a line start: this is what keeps
    // "\n.\r\n", "\r.\r\n" and friends from ending DATA (SMTP smuggling).
    line_start_ = false;
    scan_ = Scan::kDot;
  } else {
    text(std::string_view(&c, 1), out);
  }
}

void DataDecoder::text(std::string_view run, std::string& out) {
  line_start_ = false;
  after_bare_ = false;
  // The first limit crossed, byte by byte, wins however the stream was split into runs;
  // on the same byte the line check comes first, then the size.
  if (!verdict_) {
    const auto max_line = limits_.max_line_length;
    const std::uint64_t line_room = max_line > line_length_ + 2 ? max_line - 2 - line_length_ : 0;
    const std::uint64_t size_room = limits_.max_message_size > size_ ? limits_.max_message_size - size_ : 0;
    if (size_room < run.size() && size_room < line_room) {
      set_verdict(too_big(), {limits_.max_message_size, ContentPosition::Check::kSize});
    } else if (line_room < run.size()) {
      set_verdict(Reply{500, "5.5.2",
                        "Line too long: the limit is " + std::to_string(max_line) + " octets including CRLF"},
                  {size_ + line_room, ContentPosition::Check::kLine});
    }
  }
  line_length_ += run.size();
  emit(run, out);
}

void DataDecoder::line_end(bool proper, std::string& out) {
  emit("\r\n", out);
  line_length_ = 0;
  // A CRLF straight after a bare CR/LF ("\r\r\n.\r\n", "\n\r\n.\r\n") is not a line start
  // either: a peer that splits lines on bare CR or LF would not see the dot where we do.
  line_start_ = proper && !after_bare_;
  after_bare_ = false;
}

void DataDecoder::bare_line_end(std::string& out) {
  if (limits_.bare_linefeed == BareLinefeedPolicy::kReject) {
    set_verdict(Reply{550, "5.6.0",
                      "Message content rejected: bare <LF> or <CR> received; lines must end "
                      "in <CR><LF> (see https://www.postfix.org/smtp-smuggling.html)"},
                {size_, ContentPosition::Check::kLine});
  }
  // Normalized to CRLF in the output either way, but never a line start (see step()).
  line_end(false, out);
  after_bare_ = true;
}

void DataDecoder::emit(std::string_view bytes, std::string& out) {
  const std::uint64_t before = size_;
  size_ += bytes.size();
  if (size_ <= limits_.max_message_size) {
    out.append(bytes);
    return;
  }
  set_verdict(too_big(), {limits_.max_message_size, ContentPosition::Check::kSize});
  if (before < limits_.max_message_size) {
    out.append(bytes.substr(0, static_cast<std::size_t>(limits_.max_message_size - before)));
  }
}

void DataDecoder::finish(std::string& out) {
  if (scan_ == Scan::kCr) {
    scan_ = Scan::kText;
    bare_line_end(out);
  }
}

Reply DataDecoder::too_big() const {
  return Reply{
      552, "5.3.4",
      "Message size exceeds the limit of " + std::to_string(limits_.max_message_size) + " octets"};
}

void DataDecoder::set_verdict(Reply r, ContentPosition at) {
  if (verdict_) return;
  verdict_ = std::move(r);
  verdict_at_ = at;
}

}  // namespace bridgehead::smtp
