#include "dsn/dsn.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <ctime>
#include <random>
#include <vector>

#include "core/text.hpp"
#include "mime/mime.hpp"

namespace bridgehead::dsn {
namespace {

constexpr std::string_view kCrlf = "\r\n";
// RFC 5322 2.1.1: 998 octets is the hard limit; we fold at 76 to stay readable and far below it.
constexpr std::size_t kFoldAt = 76;
constexpr std::size_t kMaxLine = 998;

struct ActionWords {
  std::string_view keyword;     // RFC 3464 2.3.3
  std::string_view for_people;  // the explanation in the text part
};

// Indexed by Action, in its order.
constexpr std::array<ActionWords, 5> kActionWords = {{
    {"failed", "could not be delivered; the mail system gave up"},
    {"delayed", "not delivered yet; still trying"},
    {"delivered", "delivered"},
    {"relayed", "handed on to a system that does not send delivery reports; no further report will come"},
    {"expanded", "delivered to a list or alias, which passed it on to its members"},
}};
static_assert(static_cast<std::size_t>(Action::kExpanded) + 1 == kActionWords.size());

const ActionWords& words_for(Action action) {
  const auto i = static_cast<std::size_t>(action);
  return kActionWords[i < kActionWords.size() ? i : 0];
}

// Anything a caller hands us for a header may hold CR/LF (header injection) or 8-bit octets:
// headers must stay 7-bit, single-line values.
std::string header_safe(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (c == '\r' || c == '\n' || c == '\t') {
      if (!out.empty() && out.back() != ' ') out += ' ';
    } else if (c < 0x20 || c >= 0x7f) {
      out += '?';
    } else if (c != ' ' || (!out.empty() && out.back() != ' ')) {
      out += static_cast<char>(c);
    }
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

// Decodes one UTF-8 sequence at s[i]; an octet that does not start a valid one is returned
// as its own value so the encoding below stays total.
std::uint32_t next_code_point(std::string_view s, std::size_t& i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  const std::size_t len = utf8_sequence_length(s, i);
  if (len <= 1) {
    ++i;
    return b0;
  }
  std::uint32_t cp = b0 & (0x7Fu >> len);
  for (std::size_t k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3Fu);
  i += len;
  return cp;
}

// RFC 6533 3: utf-8-addr-xtext, so a UTF-8 address can sit in a 7-bit message/delivery-status.
std::string utf8_addr_xtext(std::string_view addr) {
  std::string out;
  for (std::size_t i = 0; i < addr.size();) {
    const std::uint32_t cp = next_code_point(addr, i);
    if (cp >= 0x21 && cp <= 0x7e && cp != '+' && cp != '=' && cp != '\\') {
      out += static_cast<char>(cp);
    } else {
      out += fmt::format("\\x{{{:02X}}}", cp);
    }
  }
  return out;
}

bool plain_address(std::string_view addr) {
  for (unsigned char c : addr) {
    if (c <= 0x20 || c >= 0x7f) return false;
  }
  return !addr.empty();
}

std::string typed_address(std::string_view type, std::string_view addr) {
  if (plain_address(addr)) return fmt::format("{}; {}", type, addr);
  return "utf-8; " + utf8_addr_xtext(addr);
}

std::string original_recipient_value(std::string_view orcpt) {
  const auto semi = orcpt.find(';');
  std::string type = semi == std::string_view::npos ? "rfc822" : header_safe(orcpt.substr(0, semi));
  std::string_view addr = semi == std::string_view::npos ? orcpt : orcpt.substr(semi + 1);
  while (!addr.empty() && addr.front() == ' ') addr.remove_prefix(1);
  if (type.empty() || type.find(' ') != std::string::npos) type = "rfc822";
  return typed_address(type, addr);
}

// "type; value" fields (Remote-MTA, Diagnostic-Code): add the usual type when the caller
// passed a bare value.
std::string typed_value(std::string_view value, std::string_view default_type) {
  std::string v = header_safe(value);
  const auto semi = v.find(';');
  const auto space = v.find(' ');
  if (semi == std::string::npos || (space != std::string::npos && space < semi)) {
    return fmt::format("{}; {}", default_type, v);
  }
  return v;
}

std::string after_type(const std::string& typed) {
  const auto semi = typed.find(';');
  std::string_view v = semi == std::string::npos ? typed : std::string_view(typed).substr(semi + 1);
  while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
  return std::string(v);
}

bool valid_status(std::string_view s) {
  // class "." subject "." detail; class 2/4/5, subject and detail 1-3 digits.
  if (s.size() < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.') return false;
  int part = 1;
  std::size_t digits = 0;
  for (std::size_t i = 2; i < s.size(); ++i) {
    if (s[i] == '.') {
      if (digits == 0 || part == 2) return false;
      ++part;
      digits = 0;
    } else if (s[i] >= '0' && s[i] <= '9') {
      if (++digits > 3) return false;
    } else {
      return false;
    }
  }
  return part == 2 && digits > 0;
}

std::string status_value(const RecipientReport& r) {
  if (valid_status(r.status)) return r.status;
  switch (r.action) {
    case Action::kFailed:
      return "5.0.0";
    case Action::kDelayed:
      return "4.0.0";
    default:
      return "2.0.0";
  }
}

std::string rfc5322_date(std::int64_t unix_seconds) {
  static constexpr std::array<const char*, 7> kDays = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr std::array<const char*, 12> kMonths = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  const auto t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  return fmt::format("{}, {:02d} {} {:04d} {:02d}:{:02d}:{:02d} +0000", kDays.at(static_cast<std::size_t>(tm.tm_wday)),
                     tm.tm_mday, kMonths.at(static_cast<std::size_t>(tm.tm_mon)), tm.tm_year + 1900, tm.tm_hour,
                     tm.tm_min, tm.tm_sec);
}

// The words of `text` between single spaces (none for a run of them).
std::vector<std::string_view> words_of(std::string_view text) {
  std::vector<std::string_view> words;
  std::size_t pos = 0;
  while (pos < text.size()) {
    auto end = text.find(' ', pos);
    if (end == std::string_view::npos) end = text.size();
    if (end > pos) words.push_back(text.substr(pos, end - pos));
    pos = end + 1;
  }
  return words;
}

// Appends "Name: value" folded at spaces, the first word always on the name's line. A run
// without spaces longer than a line is cut into pieces, each on a line of its own, because the
// 998-octet limit wins over keeping a token whole.
void add_field(std::string& out, std::string_view name, std::string_view value) {
  std::string line = fmt::format("{}:", name);  // and the first word
  std::string rest;
  for (std::string_view word : words_of(value)) {
    const bool first = line.size() == name.size() + 1 && rest.empty() && word.size() <= kMaxLine - 2;
    std::string& to = first ? line : rest;
    while (!word.empty()) {
      const std::size_t piece = std::min(word.size(), kMaxLine - 2);
      to += ' ';
      to += word.substr(0, piece);
      word.remove_prefix(piece);
    }
  }
  out += line;
  out += mime::fold_header(line.size(), rest, kFoldAt);
  out += kCrlf;
}

// Bare LF or CR in the stored original would make the returned part invalid; normalise to CRLF.
std::string normalise_crlf(std::string_view in) {
  std::string out;
  out.reserve(in.size() + in.size() / 32 + 2);
  for (std::size_t i = 0; i < in.size(); ++i) {
    const char c = in[i];
    if (c == '\r') {
      out += kCrlf;
      if (i + 1 < in.size() && in[i + 1] == '\n') ++i;
    } else if (c == '\n') {
      out += kCrlf;
    } else {
      out += c;
    }
  }
  if (!out.empty() && !out.ends_with(kCrlf)) out += kCrlf;
  return out;
}

bool lines_fit(std::string_view s) {
  std::size_t start = 0;
  while (start < s.size()) {
    auto end = s.find(kCrlf, start);
    if (end == std::string_view::npos) end = s.size();
    if (end - start > kMaxLine) return false;
    start = end + 2;
  }
  return true;
}

// The header section of the original, with any line over the limit cut (only a broken
// original has one, and text/rfc822-headers must still be valid).
std::string header_section(std::string_view msg) {
  std::string_view head = msg;
  if (msg.starts_with(kCrlf)) {
    head = {};
  } else if (auto blank = msg.find("\r\n\r\n"); blank != std::string_view::npos) {
    head = msg.substr(0, blank + 2);
  }
  std::string out;
  std::size_t start = 0;
  while (start < head.size()) {
    auto end = head.find(kCrlf, start);
    if (end == std::string_view::npos) end = head.size();
    out.append(head.substr(start, std::min(end - start, kMaxLine)));
    out += kCrlf;
    start = end + 2;
  }
  return out;
}

std::string wrap_text(std::string_view text, std::string_view indent) {
  std::string out;
  std::string line(indent);
  bool empty = true;
  for (std::string_view word : words_of(text)) {
    if (!empty && line.size() + 1 + word.size() > kFoldAt) {
      out += line;
      out += kCrlf;
      line.assign(indent);
      empty = true;
    }
    while (word.size() > kFoldAt) {  // an unbreakable token: cut, never exceed the line limit
      if (!empty) {
        out += line + std::string(kCrlf);
        line.assign(indent);
      }
      out += line;
      out.append(word.substr(0, kFoldAt));
      out += kCrlf;
      word.remove_prefix(kFoldAt);
      line.assign(indent);
      empty = true;
    }
    if (word.empty()) continue;
    if (!empty) line += ' ';
    line += word;
    empty = false;
  }
  if (!empty) {
    out += line;
    out += kCrlf;
  }
  return out;
}

std::string random_token() {
  std::random_device rd;
  return fmt::format("{:08x}{:08x}", rd(), rd());
}

struct Counts {
  bool failed = false, delayed = false, success = false;
};

Counts count(const Report& report) {
  Counts c;
  for (const auto& r : report.recipients) {
    if (r.action == Action::kFailed)
      c.failed = true;
    else if (r.action == Action::kDelayed)
      c.delayed = true;
    else
      c.success = true;
  }
  return c;
}

std::string human_address(std::string_view addr) {
  // UTF-8 addresses stay readable here (the part is quoted-printable then); controls do not.
  std::string out;
  for (unsigned char c : addr) out += (c < 0x20 || c == 0x7f) ? '?' : static_cast<char>(c);
  return "<" + out + ">";
}

std::string recipient_paragraph(const RecipientReport& r, const std::string& status) {
  const std::string_view what = words_for(r.action).for_people;
  std::string text = wrap_text(fmt::format("{}: {} (status {}).", human_address(r.final_recipient), what, status), "");
  if (!r.diagnostic.empty()) {
    const std::string host =
        r.remote_mta.empty() ? "The remote server" : "The server " + after_type(typed_value(r.remote_mta, "dns"));
    text += wrap_text(fmt::format("{} answered: {}", host, after_type(typed_value(r.diagnostic, "smtp"))), "    ");
  } else if (!r.remote_mta.empty()) {
    text += wrap_text(fmt::format("Server: {}", after_type(typed_value(r.remote_mta, "dns"))), "    ");
  }
  if (r.action == Action::kDelayed && r.will_retry_until != 0) {
    text += wrap_text(fmt::format("Retries continue until {}.", rfc5322_date(r.will_retry_until)), "    ");
  }
  return text + std::string(kCrlf);
}

std::string human_part(const Report& report, const std::string& host, const Counts& c, bool full_returned) {
  std::string text = wrap_text(fmt::format("This is the mail system at {}.", host), "");
  text += kCrlf;
  if (c.failed) {
    text += wrap_text(
        "Your message could not be delivered to the recipients listed below. The delivery "
        "failed permanently, so the mail system will not try again.",
        "");
  } else if (c.delayed) {
    text += wrap_text(
        "Your message has not yet been delivered to the recipients listed below. The mail "
        "system is still trying; you do not need to send it again. You will get another "
        "report if it finally fails.",
        "");
  } else {
    text +=
        wrap_text("This is the delivery report you asked for: your message reached the recipients listed below.", "");
  }
  text += kCrlf;
  for (const auto& r : report.recipients) text += recipient_paragraph(r, status_value(r));
  if (c.failed) {
    text += wrap_text(
        "What you can do: check each address above for typing mistakes and send the message "
        "again. If the address is right, the remote answer says why it was refused; forward "
        "this report to your mail administrator or to the recipient by another way.",
        "");
    text += kCrlf;
  }
  if (c.delayed) {
    text += wrap_text(
        "What you can do: nothing yet. If the message is urgent, reach the recipient another "
        "way.",
        "");
    text += kCrlf;
  }
  text += wrap_text(full_returned ? "Your original message is attached below."
                                  : "The headers of your original message are attached below.",
                    "");
  return text;
}

}  // namespace

std::string_view to_string(Action action) { return words_for(action).keyword; }

bool needs_dsn(const Envelope& original, const Recipient& rcpt, Action action) {
  if (original.mail_from.empty()) return false;
  if (rcpt.notify & kNotifyNever) return false;
  const std::uint8_t notify =
      rcpt.notify == kNotifyNone ? static_cast<std::uint8_t>(kNotifyFailure | kNotifyDelay) : rcpt.notify;
  switch (action) {
    case Action::kFailed:
      return (notify & kNotifyFailure) != 0;
    case Action::kDelayed:
      return (notify & kNotifyDelay) != 0;
    case Action::kDelivered:
    case Action::kRelayed:
    case Action::kExpanded:
      return (notify & kNotifySuccess) != 0;
  }
  return false;
}

RecipientReport report_for(const Recipient& rcpt, Action action, std::string status) {
  RecipientReport r;
  r.final_recipient = rcpt.address;
  r.original_recipient = rcpt.orcpt;
  r.action = action;
  r.status = std::move(status);
  return r;
}

std::string compose(const Report& report, std::string_view original, std::int64_t now) {
  const Counts c = count(report);
  std::string host = header_safe(report.reporting_mta);
  if (!plain_address(host)) host = "localhost";
  const std::string message = normalise_crlf(original);

  // RFC 3461 4.3: RET governs failure reports only; others SHOULD carry the headers alone.
  // Without RET we return everything up to kFullReturnLimit. A full return also needs every
  // line within the limit, or the part itself would be invalid.
  const bool want_full = c.failed && (report.ret == DsnRet::kFull ||
                                      (report.ret == DsnRet::kUnspecified && message.size() <= kFullReturnLimit));
  const bool full = want_full && lines_fit(message);
  const std::string returned = full ? message : header_section(message);

  std::string boundary;
  do {
    boundary = fmt::format("=_bh_dsn_{:x}_{}", now, random_token());
  } while (returned.find(boundary) != std::string::npos);

  std::string out;
  out.reserve(returned.size() + 4096);
  add_field(out, "From", fmt::format("Mail Delivery System <MAILER-DAEMON@{}>", host));
  const std::string sender = header_safe(report.original_sender);
  // A UTF-8 sender cannot appear in a 7-bit header; the envelope still reaches it.
  add_field(out, "To",
            plain_address(sender) && !has_8bit(report.original_sender) ? fmt::format("<{}>", sender)
                                                                       : std::string("undisclosed-recipients:;"));
  add_field(out, "Subject",
            c.failed    ? "Undelivered Mail Returned to Sender"
            : c.delayed ? "Delayed Mail (still being retried)"
                        : "Successful Mail Delivery Report");
  add_field(out, "Date", rfc5322_date(now));
  add_field(out, "Message-ID", fmt::format("<{:x}.{}.dsn@{}>", now, random_token(), host));
  add_field(out, "Auto-Submitted", "auto-replied");
  add_field(out, "MIME-Version", "1.0");
  add_field(out, "Content-Type",
            fmt::format("multipart/report; report-type=delivery-status; boundary=\"{}\"", boundary));
  out += kCrlf;
  out += "This is a MIME-encapsulated message.\r\n\r\n";

  // Part 1: for the person.
  const std::string text = human_part(report, host, c, full);
  out += fmt::format("--{}\r\n", boundary);
  out += "Content-Description: Notification\r\n";
  if (!has_8bit(text)) {
    out += "Content-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n\r\n";
    out += text;
  } else {
    out += "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n";
    out += mime::qp_encode(text);
  }
  out += kCrlf;

  // Part 2: for programs (RFC 3464 2.2 per-message, 2.3 per-recipient groups).
  out += fmt::format("--{}\r\n", boundary);
  out += "Content-Description: Delivery report\r\nContent-Type: message/delivery-status\r\n\r\n";
  add_field(out, "Reporting-MTA", "dns; " + host);
  if (!report.envid.empty()) add_field(out, "Original-Envelope-Id", header_safe(report.envid));
  if (report.arrival_date != 0) add_field(out, "Arrival-Date", rfc5322_date(report.arrival_date));
  for (const auto& r : report.recipients) {
    out += kCrlf;
    if (!r.original_recipient.empty()) {
      add_field(out, "Original-Recipient", original_recipient_value(r.original_recipient));
    }
    add_field(out, "Final-Recipient", typed_address("rfc822", r.final_recipient));
    add_field(out, "Action", to_string(r.action));
    add_field(out, "Status", status_value(r));
    if (!r.remote_mta.empty()) add_field(out, "Remote-MTA", typed_value(r.remote_mta, "dns"));
    if (!r.diagnostic.empty()) add_field(out, "Diagnostic-Code", typed_value(r.diagnostic, "smtp"));
    if (r.last_attempt != 0) add_field(out, "Last-Attempt-Date", rfc5322_date(r.last_attempt));
    if (r.action == Action::kDelayed && r.will_retry_until != 0) {
      add_field(out, "Will-Retry-Until", rfc5322_date(r.will_retry_until));
    }
  }
  out += kCrlf;

  // Part 3: the original. message/rfc822 admits only 7bit/8bit/binary (RFC 2046 5.2.1), so an
  // 8-bit original is labelled 8bit rather than re-encoded.
  out += fmt::format("--{}\r\n", boundary);
  out += fmt::format("Content-Description: {}\r\n", full ? "Undelivered Message" : "Message Headers");
  out += fmt::format("Content-Type: {}\r\n", full ? "message/rfc822" : "text/rfc822-headers");
  out += fmt::format("Content-Transfer-Encoding: {}\r\n\r\n", has_8bit(returned) ? "8bit" : "7bit");
  out += returned;
  out += fmt::format("\r\n--{}--\r\n", boundary);
  return out;
}

}  // namespace bridgehead::dsn
