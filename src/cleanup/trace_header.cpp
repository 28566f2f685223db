#include <fmt/format.h>

#include <ctime>

#include "cleanup/cleanup.hpp"

namespace bridgehead::cleanup {

namespace {
// Header text comes partly from the client: anything but plain printable ASCII (and
// UTF-8 when the message is SMTPUTF8) is replaced so no field can ever be injected.
std::string sanitize(std::string_view s, bool utf8, std::size_t max = 300) {
  std::string out;
  for (unsigned char c : s.substr(0, max)) {
    const bool ok = (c > 0x20 && c < 0x7F && c != '(' && c != ')' && c != ';' && c != '\\') ||
                    (utf8 && c >= 0x80);
    out += ok ? static_cast<char>(c) : '?';
  }
  return out.empty() ? "unknown" : out;
}

// RFC 5321 4.4 TCP-info: the client's address as an address literal, without the port that
// Envelope::client_address carries: "192.0.2.1:40000" -> "[192.0.2.1]",
// "[2001:db8::1]:40000" -> "[IPv6:2001:db8::1]".
std::string tcp_info(std::string_view client) {
  std::string_view ip = client;
  bool v6 = false;
  if (ip.starts_with('[')) {
    ip.remove_prefix(1);
    ip = ip.substr(0, ip.find(']'));
    v6 = true;
  } else if (const auto colon = ip.find(':'); colon != std::string_view::npos) {
    v6 = ip.find(':', colon + 1) != std::string_view::npos;  // a bare IPv6 address has no port
    if (!v6) ip = ip.substr(0, colon);
  }
  if (ip.empty()) return "unknown";
  return (v6 ? "[IPv6:" : "[") + sanitize(ip, false) + "]";
}
}  // namespace

std::string make_received_header(const Envelope& envelope, std::string_view our_hostname,
                                 std::string_view queue_id, std::int64_t unix_time, bool esmtp) {
  const char* with = !esmtp              ? "SMTP"
                     : envelope.smtputf8 ? (envelope.tls ? "UTF8SMTPS" : "UTF8SMTP")
                     : envelope.tls      ? "ESMTPS"
                                         : "ESMTP";
  const auto t = static_cast<std::time_t>(unix_time);
  std::tm tm{};
  gmtime_r(&t, &tm);
  // RFC 5322 names are English whatever the process locale says, so no strftime.
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  const std::string date =
      fmt::format("{}, {:02} {} {} {:02}:{:02}:{:02} +0000", kDays[tm.tm_wday % 7], tm.tm_mday,
                  kMonths[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);

  // Three folded lines, each well under 998 octets since every part is capped.
  std::string h =
      fmt::format("Received: from {} ({})\r\n\tby {} (Bridgehead) with {} id {}",
                  sanitize(envelope.helo, false), tcp_info(envelope.client_address),
                  sanitize(our_hostname, false), with, sanitize(queue_id, false));
  if (envelope.recipients.size() == 1) {
    h += fmt::format("\r\n\tfor <{}>; {}\r\n",
                     sanitize(envelope.recipients.front().address, envelope.smtputf8), date);
  } else {
    h += fmt::format(";\r\n\t{}\r\n", date);
  }
  return h;
}

}  // namespace bridgehead::cleanup
