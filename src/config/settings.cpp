#include "config/settings.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <iterator>
#include <limits>
#include <type_traits>

#include "core/duration.hpp"
#include "core/text.hpp"
#include "directory/dn.hpp"
#include "directory/mapping/default_rules.hpp"
#include "directory/sync/scope.hpp"

#include <fmt/format.h>

namespace bridgehead::config::detail {
namespace {

constexpr std::uint64_t kKiB = 1024;
constexpr std::uint64_t kMiB = kKiB * 1024;
constexpr std::uint64_t kGiB = kMiB * 1024;

constexpr std::string_view kLogLevels[] = {"trace", "debug", "info", "warn", "error"};
constexpr std::string_view kBareLinefeed[] = {"reject", "normalize"};  // in the order of smtp::BareLinefeedPolicy
constexpr std::string_view kKinds[] = {"exchange", "domino", "smtp"};
constexpr std::string_view kMethods[] = {"smtp", "lmtp", "maildir"};
constexpr std::string_view kTlsModes[] = {"none", "opportunistic",
                                          "required"};  // in the order of smtp::client::TlsPolicy
// [system.directory]: each in the order of the enum it names.
constexpr std::string_view kProfiles[] = {"domino", "exchange"};                         // directory::Profile
constexpr std::string_view kLdapTls[] = {"none", "starttls"};                            // directory::ldap::TlsMode
constexpr std::string_view kBinds[] = {"anonymous", "simple", "sasl-external"};          // directory::sync::BindKind
constexpr std::string_view kFeeds[] = {"auto", "full", "syncrepl", "usn", "timestamp"};  // directory::sync::Feed
// The generators' names come from the mapping component, so a new one needs no change here.
// (Its table is constexpr, so it is initialized before this.)
const std::vector<std::string_view> kFullNameGenerators = [] {
  std::vector<std::string_view> names;
  for (const auto& g : directory::mapping::full_name_generators()) names.push_back(g.name);
  return names;
}();

using directory::sync::DirectorySettings;

// A TOML basic string of text that needs no escapes (defaults are names, paths and durations).
std::string toml_string(std::string_view text) { return fmt::format("\"{}\"", text); }
// Where an enum setting's checked text stands in its `allowed` list, which names the
// enumerators in their declared order.
template <std::size_t N>
std::size_t index_of(const std::string_view (&allowed)[N], std::string_view text) {
  return static_cast<std::size_t>(std::find(std::begin(allowed), std::end(allowed), text) - std::begin(allowed));
}

std::string check_duration_text(std::string_view text) {
  auto d = parse_duration(text);
  return d ? std::string() : d.error().message + " (" + d.error().remedy + ")";
}
std::string check_delay_list_text(std::string_view text) {
  auto d = parse_delay_list(text);
  return d ? std::string() : d.error().message + " (" + d.error().remedy + ")";
}
std::string check_notice_text(std::string_view text) {
  return text == "never" ? std::string() : check_duration_text(text);
}
std::chrono::seconds duration_of(const Value& v) { return parse_duration(v.text).value_or(std::chrono::seconds(0)); }

// A user or group name as useradd(8) accepts it; whether it exists is the daemon's and
// check's business (the file may be checked on another machine).
std::string check_account_name(std::string_view name) {
  if (name.empty() || name.size() > 32) return "must be 1 to 32 characters long";
  if (name.front() == '-' || (name.front() >= '0' && name.front() <= '9')) {
    return "must not start with a digit or '-'";
  }
  for (char ch : name) {
    const bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
                    ch == '-' || ch == '.';
    if (!ok) return "may contain only letters, digits, '_', '-' and '.'";
  }
  return "";
}

unsigned as_unsigned(const Value& v) { return static_cast<unsigned>(v.number); }
std::string bool_literal(bool b) { return b ? "true" : "false"; }

std::string check_ldap_uri(std::string_view uri) {
  if (!istarts_with(uri, "ldap://") && !istarts_with(uri, "ldaps://"))
    return "is neither ldap:// nor ldaps://; write ldap://host:389 (with tls = \"starttls\" for TLS) or "
           "ldaps://host:636";
  if (uri.find_first_of(" \t\r\n") != std::string_view::npos) return "contains white space; give exactly one URI";
  return "";
}

std::string check_ldap_filter(std::string_view filter) {
  auto parsed = directory::sync::Filter::parse(filter);
  return parsed ? std::string() : fmt::format("does not parse: {} ({})", parsed.error().message, parsed.error().remedy);
}

// directory::sync::Scope takes an entry with '=' as a group's DN, anything else as its cn.
std::string check_group(std::string_view group) {
  if (trim(group).empty()) return "is empty; name the group by its cn or its DN";
  return group.find('=') == std::string_view::npos ? std::string() : check_dn(group);
}

std::string check_attribute_name(std::string_view name) {
  return directory::mapping::is_attribute_description(name)
             ? std::string()
             : "is not an attribute name (a letter, then letters, digits and '-')";
}

// The stamp is "bridgehead:<name>:<key>": a ':' in the name would make another connector's
// stamps look like this one's.
std::string check_connector_name(std::string_view name) {
  if (name.empty() || name.size() > 64) return "must be 1 to 64 characters long";
  for (char c : name) {
    if (c == ':') return "contains ':', which separates the parts of the ownership stamp";
    if (c < 0x21 || c > 0x7e) return "may contain only printable ASCII characters without spaces";
  }
  return "";
}

std::string check_notes_domain(std::string_view domain) {
  if (domain.empty() || domain.size() > 31) return "must be 1 to 31 characters long, as Notes domains are";
  for (char c : domain) {
    if (c == '@') return "contains '@'; give the Notes domain alone, e.g. \"Acme\"";
    if (c < 0x20 || c > 0x7e) return "may contain only printable ASCII characters";
  }
  return "";
}

// Rows of [system.directory]: build() creates the system's DirectorySettings when the table
// is there, so `s->directory` is set; the defaults are DirectorySettings' member initializers.
template <auto Member>
void set_dir_text(Config&, SystemConfig* s, const Value& v) {
  (*s->directory).*Member = v.text;
}
template <auto Member, const auto& Allowed>
void set_dir_enum(Config&, SystemConfig* s, const Value& v) {
  auto& m = (*s->directory).*Member;
  m = static_cast<std::remove_cvref_t<decltype(m)>>(index_of(Allowed, v.text));
}
template <auto Member, const auto& Allowed>
std::string dir_enum(const Config&) {
  return toml_string(Allowed[static_cast<std::size_t>(DirectorySettings{}.*Member)]);
}
template <auto Member>
std::string dir_bool(const Config&) {
  return bool_literal(DirectorySettings{}.*Member);
}
std::string seconds_literal(std::chrono::milliseconds ms) {
  return toml_string(format_duration(std::chrono::duration_cast<std::chrono::seconds>(ms)));
}

// Rows of [smtp]: the value goes to smtp::ServerSettings, whose member initializers are
// the defaults (default_from reads them back for the defaults file and the reference).
template <auto Member>
void set_smtp(Config& c, SystemConfig*, const Value& v) {
  c.smtp.*Member = static_cast<std::remove_cvref_t<decltype(c.smtp.*Member)>>(v.number);
}
template <auto Member>
std::string smtp_integer(const Config& c) {
  return std::to_string(c.smtp.*Member);
}
template <auto Member>
std::string smtp_size(const Config& c) {
  return toml_string(format_size(c.smtp.*Member));
}
// An enum setting whose `allowed` list names the enumerators in their declared order.
template <auto Member, const auto& Allowed>
void set_smtp_enum(Config& c, SystemConfig*, const Value& v) {
  c.smtp.*Member = static_cast<std::remove_cvref_t<decltype(c.smtp.*Member)>>(index_of(Allowed, v.text));
}
template <auto Member, const auto& Allowed>
std::string smtp_enum(const Config& c) {
  return toml_string(Allowed[static_cast<std::size_t>(c.smtp.*Member)]);
}

// GCC before 14 warns about members a designated initializer leaves out even when they have
// default member initializers; leaving the irrelevant ones out is what keeps the table readable.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
// Kept in the order of the reference and of the defaults file. Bounds are what the
// connector can honour, not what is sensible: sensible is the default.
const Setting kSettings[] = {
    {.key = "connector.hostname",
     .type = Type::kString,
     .default_note = "the machine's hostname",
     .doc = "The name the connector gives in its SMTP greeting, EHLO and Received headers.",
     .example = R"("bridgehead.example.com")",
     .lowercase = true,
     .check = check_dns_name,
     .apply = [](Config& c, SystemConfig*, const Value& v) { c.hostname = v.text; }},
    {.key = "connector.state_dir",
     .type = Type::kPath,
     .default_from = [](const Config& c) { return toml_string(c.state_dir.string()); },
     .doc = "The directory of the connector's state; the spool and the control socket are "
            "inside it unless set otherwise.",
     .example = R"("/var/lib/bridgehead")",
     .apply = [](Config& c, SystemConfig*, const Value& v) { c.state_dir = v.text; }},
    {.key = "connector.user",
     .type = Type::kString,
     .default_note = "none: required when started as root",
     .doc = "The user the daemon runs as once started as root: it binds its listeners, reads the "
            "connector ID and its password file, hands the state directory to this user, then "
            "drops root before it reads a byte from any client. Ignored when not started as root.",
     .example = R"("bridgehead")",
     .check = check_account_name,
     .apply = [](Config& c, SystemConfig*, const Value& v) { c.user = v.text; }},
    {.key = "connector.group",
     .type = Type::kString,
     .default_note = "the primary group of `user`",
     .doc = "The group the daemon runs as with `user`; it has no other (supplementary) groups.",
     .example = R"("bridgehead")",
     .check = check_account_name,
     .apply = [](Config& c, SystemConfig*, const Value& v) { c.group = v.text; }},
    {.key = "connector.log_level",
     .type = Type::kEnum,
     .default_from = [](const Config& c) { return toml_string(c.log_level); },
     .allowed = kLogLevels,
     .doc = "The least severe log messages that are written.",
     .example = R"("info")",
     .apply = [](Config& c, SystemConfig*, const Value& v) { c.log_level = v.text; }},

    {.key = "admin.control_socket",
     .type = Type::kPath,
     .default_note = "`<state_dir>/control.sock`",
     .doc = "The Unix socket the `bridgehead` subcommands use to talk to the running daemon.",
     .example = R"("/run/bridgehead/control.sock")",
     .apply = [](Config& c, SystemConfig*, const Value& v) { c.control_socket = v.text; }},
    {.key = "admin.control_socket_mode",
     .type = Type::kMode,
     .default_from = [](const Config& c) { return fmt::format("\"{:04o}\"", c.control_socket_mode); },
     .doc = "The permissions of the control socket, an octal string; whoever may write to it "
            "controls the connector.",
     .example = R"("0660")",
     .apply = [](Config& c, SystemConfig*, const Value& v) { c.control_socket_mode = as_unsigned(v); }},

    {.key = "identity.id_file",
     .type = Type::kPath,
     .default_note = "none (no connector ID)",
     .doc = "The connector ID, a PKCS#12 file (`bridgehead id create`): the STARTTLS certificate "
            "of listeners without tls_cert_file, and the client certificate of SMTP and LMTP "
            "deliveries that use TLS.",
     .example = R"("/etc/bridgehead/connector.id")",
     .apply = [](Config& c, SystemConfig*, const Value& v) { c.identity.id_file = v.text; }},
    {.key = "identity.id_password_file",
     .type = Type::kPath,
     .default_note = "none",
     .doc = "A file holding the connector ID's password on one line, readable by the daemon's "
            "user only (mode 0600); the first of the password sources (see docs/identity.md).",
     .example = R"("/etc/bridgehead/connector.id.password")",
     .apply = [](Config& c, SystemConfig*, const Value& v) { c.identity.id_password_file = v.text; }},

    {.key = "spool.dir",
     .type = Type::kPath,
     .default_note = "`<state_dir>/spool`",
     .doc = "The directory of the spool's segment files and journal.",
     .example = R"("/var/spool/bridgehead")",
     .apply = [](Config& c, SystemConfig*, const Value& v) { c.spool_dir = v.text; }},
    {.key = "spool.segment_size",
     .type = Type::kSize,
     .default_from = [](const Config& c) { return toml_string(format_size(c.spool_segment_size)); },
     .min = kMiB,
     .max = 4 * kGiB,
     .doc = "The size past which the spool starts a new segment file.",
     .example = R"("64MiB")",
     .apply = [](Config& c, SystemConfig*, const Value& v) { c.spool_segment_size = v.number; }},

    {.key = "smtp.max_message_size",
     .type = Type::kSize,
     .default_from = smtp_size<&smtp::ServerSettings::max_message_size>,
     // RFC 5321 4.5.3.1.7: a server must accept messages of at least 64K octets.
     .min = 64 * kKiB,
     .max = 4 * kGiB,
     .doc = "The size of the largest message accepted (advertised with the EHLO SIZE keyword).",
     .example = R"("50MiB")",
     .apply = set_smtp<&smtp::ServerSettings::max_message_size>},
    {.key = "smtp.max_recipients",
     .type = Type::kInteger,
     .default_from = smtp_integer<&smtp::ServerSettings::max_recipients>,
     .min = 1,
     .max = 100000,
     .doc = "The largest number of recipients one message may have.",
     .example = "1000",
     .apply = set_smtp<&smtp::ServerSettings::max_recipients>},
    {.key = "smtp.max_line_length",
     .type = Type::kInteger,
     .default_from = smtp_integer<&smtp::ServerSettings::max_line_length>,
     // RFC 5321 4.5.3.1.6: text lines of 1000 octets including CRLF must be accepted.
     .min = 1000,
     .max = 65536,
     .doc = "The longest command or message line accepted, in bytes including CRLF.",
     .example = "1000",
     .apply = set_smtp<&smtp::ServerSettings::max_line_length>},
    {.key = "smtp.max_received_headers",
     .type = Type::kInteger,
     .default_from = smtp_integer<&smtp::ServerSettings::max_received_headers>,
     .min = 10,
     .max = 1000,
     .doc = "The number of Received headers past which a message is rejected as a mail loop.",
     .example = "50",
     .apply = set_smtp<&smtp::ServerSettings::max_received_headers>},
    {.key = "smtp.max_sessions",
     .type = Type::kInteger,
     .default_from = smtp_integer<&smtp::ServerSettings::max_sessions>,
     .min = 1,
     .max = 100000,
     .doc = "The largest number of concurrent SMTP sessions over all listeners.",
     .example = "500",
     .apply = set_smtp<&smtp::ServerSettings::max_sessions>},
    {.key = "smtp.max_sessions_per_client",
     .type = Type::kInteger,
     .default_from = smtp_integer<&smtp::ServerSettings::max_sessions_per_client>,
     .min = 1,
     .max = 100000,
     .doc = "The largest number of concurrent SMTP sessions from one client IP address "
            "(at most max_sessions).",
     .example = "50",
     .apply = set_smtp<&smtp::ServerSettings::max_sessions_per_client>},
    {.key = "smtp.max_junk_commands",
     .type = Type::kInteger,
     .default_from = smtp_integer<&smtp::ServerSettings::max_junk_commands>,
     .min = 1,
     .max = 100000,
     .doc = "The number of commands that do not move a message forward (NOOP, RSET, VRFY, ...) "
            "after which a session is closed.",
     .example = "100",
     .apply = set_smtp<&smtp::ServerSettings::max_junk_commands>},
    {.key = "smtp.max_errors",
     .type = Type::kInteger,
     .default_from = smtp_integer<&smtp::ServerSettings::max_errors>,
     .min = 1,
     .max = 10000,
     .doc = "The number of error replies in one session after which it is closed.",
     .example = "20",
     .apply = set_smtp<&smtp::ServerSettings::max_errors>},
    {.key = "smtp.command_timeout_seconds",
     .type = Type::kInteger,
     .default_from = smtp_integer<&smtp::ServerSettings::command_timeout_seconds>,
     // RFC 5321 4.5.3.2.7 asks servers to wait at least 5 minutes; below 10 s even a
     // healthy client on a slow link would be cut off.
     .min = 10,
     .max = 3600,
     .doc = "The number of seconds to wait for the next command before closing the session.",
     .example = "300",
     .apply = set_smtp<&smtp::ServerSettings::command_timeout_seconds>},
    {.key = "smtp.data_timeout_seconds",
     .type = Type::kInteger,
     .default_from = smtp_integer<&smtp::ServerSettings::data_timeout_seconds>,
     .min = 10,
     .max = 3600,
     .doc = "The number of seconds to wait for the next block of message data before closing "
            "the session.",
     .example = "300",
     .apply = set_smtp<&smtp::ServerSettings::data_timeout_seconds>},
    {.key = "smtp.bare_linefeed",
     .type = Type::kEnum,
     .default_from = smtp_enum<&smtp::ServerSettings::bare_linefeed, kBareLinefeed>,
     .allowed = kBareLinefeed,
     .doc = "What to do with a line of message data that ends in LF without CR: `reject` the "
            "message or `normalize` the line ending to CRLF.",
     .example = R"("reject")",
     .apply = set_smtp_enum<&smtp::ServerSettings::bare_linefeed, kBareLinefeed>},

    {.key = "queue.retry_delays",
     .type = Type::kString,
     .default_from = [](const Config& c) { return toml_string(format_delay_list(c.queue.retry.delays)); },
     .doc = "The waits between delivery attempts of a deferred recipient, in order; the last "
            "one repeats until the lifetime ends. Units s, m, h, d.",
     .example = R"("1m,5m,15m,30m,1h,2h,4h")",
     .check = check_delay_list_text,
     .apply =
         [](Config& c, SystemConfig*, const Value& v) {
           c.queue.retry.delays = parse_delay_list(v.text).value_or(std::vector<std::chrono::seconds>{});
         }},
    {.key = "queue.lifetime",
     .type = Type::kString,
     .default_from = [](const Config& c) { return toml_string(format_duration(c.queue.retry.lifetime)); },
     .doc = "How long a message may stay queued; a recipient still not delivered after this "
            "fails and its sender gets a failure notice.",
     .example = R"("5d")",
     .check = check_duration_text,
     .apply = [](Config& c, SystemConfig*, const Value& v) { c.queue.retry.lifetime = duration_of(v); }},
    {.key = "queue.delay_notice_after",
     .type = Type::kString,
     .default_from =
         [](const Config& c) {
           const auto d = c.queue.retry.delay_notice_after;
           return toml_string(d.count() == 0 ? std::string("never") : format_duration(d));
         },
     .doc = "When a sender gets one \"still trying\" notice for a deferred recipient (if they "
            "did not refuse it with NOTIFY); `never` turns the notice off.",
     .example = R"("4h")",
     .check = check_notice_text,
     .apply =
         [](Config& c, SystemConfig*, const Value& v) {
           c.queue.retry.delay_notice_after = v.text == "never" ? std::chrono::seconds(0) : duration_of(v);
         }},
    {.key = "tracking.file",
     .type = Type::kPath,
     .default_note = "`<state_dir>/tracking.jsonl`",
     .doc = "The message tracking log: one JSON line per event in a message's life (received, "
            "refused, queued, each recipient deferred, delivered or failed, notice sent, "
            "quarantined). At 64 MiB it moves to the same name with `.1` added, replacing the one "
            "before. Mail flows even when it cannot be written; `bridgehead status` then says why.",
     .example = R"("/var/log/bridgehead/tracking.jsonl")",
     .apply = [](Config& c, SystemConfig*, const Value& v) { c.tracking_file = v.text; }},
    {.key = "queue.quarantine_dir",
     .type = Type::kPath,
     .default_note = "`<state_dir>/quarantine`",
     .doc = "Where a message that the connector itself cannot process is set aside, with a file "
            "saying why, so that the rest of the queue keeps moving.",
     .example = R"("/var/lib/bridgehead/quarantine")",
     .apply = [](Config& c, SystemConfig*, const Value& v) { c.queue.quarantine_dir = v.text; }},

    {.key = "system[].name",
     .type = Type::kString,
     .default_note = "required",
     .doc = "The system's name; it also names the connector's processes (`exchange->notes`), "
            "so only a-z, 0-9 and - are allowed.",
     .example = R"("exchange")",
     .required = true,
     .check = check_system_name,
     .apply = [](Config&, SystemConfig* s, const Value& v) { s->name = v.text; }},
    {.key = "system[].kind",
     .type = Type::kEnum,
     .default_note = "required",
     .allowed = kKinds,
     .doc = "The kind of mail system; it selects the content conversion for mail to and from it.",
     .example = R"("exchange")",
     .required = true,
     .apply =
         [](Config&, SystemConfig* s, const Value& v) {
           s->kind = v.text == "exchange" ? SystemKind::kExchange
                     : v.text == "domino" ? SystemKind::kDomino
                                          : SystemKind::kSmtp;
         }},
    {.key = "system[].domains",
     .type = Type::kStringArray,
     .default_note = "required",
     .doc = "The mail domains of this system; a domain belongs to exactly one system.",
     .example = R"(["exchange.example"])",
     .required = true,
     .lowercase = true,
     .check = check_dns_name,
     .apply = [](Config&, SystemConfig* s, const Value& v) { s->domains = v.list; }},
    {.key = "system[].listen",
     .type = Type::kEndpoint,
     .default_note = "required",
     .doc = "The address:port where this system sends its mail to the connector; IPv6 in "
            "brackets, `[::1]:2525`.",
     .example = R"("127.0.0.1:2525")",
     .required = true,
     .apply = [](Config&, SystemConfig* s, const Value& v) { s->listen = v.endpoint; }},
    {.key = "system[].tls_cert_file",
     .type = Type::kPath,
     .default_note = "none (no STARTTLS)",
     .doc = "The PEM certificate chain the listener offers with STARTTLS; needs tls_key_file.",
     .example = R"("tls/exchange.crt")",
     .apply = [](Config&, SystemConfig* s, const Value& v) { s->tls_cert_file = v.text; }},
    {.key = "system[].tls_key_file",
     .type = Type::kPath,
     .default_note = "none",
     .doc = "The PEM private key of tls_cert_file.",
     .example = R"("tls/exchange.key")",
     .apply = [](Config&, SystemConfig* s, const Value& v) { s->tls_key_file = v.text; }},
    {.key = "system[].tls_client_ca_file",
     .type = Type::kPath,
     .default_note = "none (no client certificate asked)",
     .doc = "PEM certificates of the certifiers whose client certificates this listener requires: "
            "the system must STARTTLS before MAIL and present a certificate they signed.",
     .example = R"("tls/acme-certifier.pem")",
     .apply = [](Config&, SystemConfig* s, const Value& v) { s->tls_client_ca_file = v.text; }},
    {.key = "system[].recipients",
     .type = Type::kStringArray,
     .default_value = "[]",
     .doc = "The addresses in this system that the connector accepts mail for, until "
            "directory synchronization provides them.",
     .example = R"(["alice@exchange.example"])",
     .lowercase = true,
     .check = check_address,
     .apply = [](Config&, SystemConfig* s, const Value& v) { s->recipients = v.list; }},

    {.key = "system[].delivery.method",
     .type = Type::kEnum,
     .default_note = "required",
     .allowed = kMethods,
     .doc = "How mail to this system is delivered: `smtp` or `lmtp` to address, or `maildir` "
            "below path.",
     .example = R"("smtp")",
     .required = true,
     .apply =
         [](Config&, SystemConfig* s, const Value& v) {
           s->delivery.method = v.text == "smtp"   ? DeliveryMethod::kSmtp
                                : v.text == "lmtp" ? DeliveryMethod::kLmtp
                                                   : DeliveryMethod::kMaildir;
         }},
    {.key = "system[].delivery.address",
     .type = Type::kEndpoint,
     .default_note = "required for smtp and lmtp",
     .doc = "The address:port of the system's SMTP or LMTP server.",
     .example = R"("127.0.0.1:2526")",
     .apply = [](Config&, SystemConfig* s, const Value& v) { s->delivery.endpoint = v.endpoint; }},
    {.key = "system[].delivery.path",
     .type = Type::kPath,
     .default_note = "required for maildir",
     .doc = "The directory below which each recipient gets a Maildir.",
     .example = R"("maildir/notes")",
     .apply = [](Config&, SystemConfig* s, const Value& v) { s->delivery.path = v.text; }},
    {.key = "system[].delivery.concurrency",
     .type = Type::kInteger,
     .default_from = [](const Config&) { return std::to_string(DeliveryTarget{}.concurrency); },
     .min = 1,
     .max = 1000,
     .doc = "the number of connections (or Maildir writers) used in parallel for this system",
     .example = "10",
     .apply = [](Config&, SystemConfig* s, const Value& v) { s->delivery.concurrency = as_unsigned(v); }},
    {.key = "system[].delivery.tls",
     .type = Type::kEnum,
     .default_from =
         [](const Config&) { return toml_string(kTlsModes[static_cast<std::size_t>(DeliveryTarget{}.tls)]); },
     .allowed = kTlsModes,
     .doc = "STARTTLS toward the system: `none`, `opportunistic` (when offered, unverified) or "
            "`required` (must be offered, and the certificate must verify against tls_ca_file and name "
            "the host of address or tls_verify_name).",
     .example = R"("required")",
     .apply =
         [](Config&, SystemConfig* s, const Value& v) {
           s->delivery.tls = static_cast<smtp::client::TlsPolicy>(index_of(kTlsModes, v.text));
         }},
    {.key = "system[].delivery.tls_ca_file",
     .type = Type::kPath,
     .default_note = "the system's CA store",
     .doc = "The PEM CA certificates that verify the system's server certificate when tls is "
            "`required`.",
     .example = R"("tls/notes-ca.pem")",
     .apply = [](Config&, SystemConfig* s, const Value& v) { s->delivery.tls_ca_file = v.text; }},
    {.key = "system[].delivery.tls_verify_name",
     .type = Type::kString,
     .default_note = "the host of address",
     .doc = "The name the system's server certificate must carry when tls is `required` (no partial "
            "wildcards); needed when address is an IP address.",
     .example = R"("mx.notes.example")",
     .lowercase = true,
     .check = check_dns_name,
     .apply = [](Config&, SystemConfig* s, const Value& v) { s->delivery.tls_verify_name = v.text; }},
    {.key = "system[].delivery.timeout",
     .type = Type::kString,
     .default_from = [](const Config&) { return toml_string(format_duration(DeliveryTarget{}.timeout)); },
     .doc = "How long to wait to connect and for each reply before the attempt is deferred "
            "(the reply to the end of the data gets twice this).",
     .example = R"("5m")",
     .check = check_duration_text,
     .apply = [](Config&, SystemConfig* s, const Value& v) { s->delivery.timeout = duration_of(v); }},

    {.key = "system[].directory.profile",
     .type = Type::kEnum,
     .default_note = "from kind: `exchange` or `domino`; required for kind `smtp`",
     .allowed = kProfiles,
     .doc = "What the directory holds, which decides the attributes read and the contacts written: "
            "`domino` (dominoPerson, dominoGroup) or `exchange` (Active Directory users, groups, contacts).",
     .example = R"("exchange")",
     .apply = set_dir_enum<&DirectorySettings::profile, kProfiles>},
    {.key = "system[].directory.uri",
     .type = Type::kString,
     .default_note = "none (exactly one of uri and ldif_file)",
     .doc = "The LDAP server of the directory, `ldap://host:389` or `ldaps://host:636`.",
     .example = R"("ldaps://dc1.exchange.example")",
     .check = check_ldap_uri,
     .apply = set_dir_text<&DirectorySettings::uri>},
    {.key = "system[].directory.ldif_file",
     .type = Type::kPath,
     .default_note = "none (exactly one of uri and ldif_file)",
     .doc = "An LDIF file (RFC 2849) read as the directory instead of an LDAP server.",
     .example = R"("directory/notes.ldif")",
     .apply = set_dir_text<&DirectorySettings::ldif_file>},
    {.key = "system[].directory.tls",
     .type = Type::kEnum,
     .default_from = dir_enum<&DirectorySettings::tls, kLdapTls>,
     .allowed = kLdapTls,
     .doc = "TLS on an `ldap://` uri: `starttls` upgrades the connection before the bind. An "
            "`ldaps://` uri is TLS anyway and takes `none`.",
     .example = R"("starttls")",
     .apply = set_dir_enum<&DirectorySettings::tls, kLdapTls>},
    {.key = "system[].directory.ca_file",
     .type = Type::kPath,
     .default_note = "the system's CA store",
     .doc = "The PEM CA certificates that may certify the LDAP server.",
     .example = R"("tls/exchange-ca.pem")",
     .apply = set_dir_text<&DirectorySettings::ca_file>},
    {.key = "system[].directory.bind",
     .type = Type::kEnum,
     .default_from = dir_enum<&DirectorySettings::bind, kBinds>,
     .allowed = kBinds,
     .doc = "How the connector authenticates: `anonymous`, `simple` (bind_dn and password_file) or "
            "`sasl-external` (the connector ID's certificate, over TLS).",
     .example = R"("simple")",
     .apply = set_dir_enum<&DirectorySettings::bind, kBinds>},
    {.key = "system[].directory.bind_dn",
     .type = Type::kString,
     .default_note = "required for simple",
     .doc = "The DN a simple bind authenticates as.",
     .example = R"("CN=Bridgehead,OU=Service Accounts,DC=exchange,DC=example")",
     .check = check_dn,
     .apply = set_dir_text<&DirectorySettings::bind_dn>},
    {.key = "system[].directory.password_file",
     .type = Type::kPath,
     .default_note = "required for simple",
     .doc = "A file holding the simple bind's password on one line, readable by the daemon's user "
            "only (mode 0600), like identity.id_password_file.",
     .example = R"("exchange-directory.password")",
     .apply = set_dir_text<&DirectorySettings::password_file>},
    {.key = "system[].directory.connect_timeout",
     .type = Type::kString,
     .default_from = [](const Config&) { return seconds_literal(DirectorySettings{}.timeouts.connect); },
     .doc = "How long to wait for the TCP connection (and the TLS handshake of ldaps://).",
     .example = R"("10s")",
     .check = check_duration_text,
     .apply = [](Config&, SystemConfig* s, const Value& v) { s->directory->timeouts.connect = duration_of(v); }},
    {.key = "system[].directory.operation_timeout",
     .type = Type::kString,
     .default_from = [](const Config&) { return seconds_literal(DirectorySettings{}.timeouts.operation); },
     .doc = "How long to wait for each LDAP request: the bind, one page of a search, one write.",
     .example = R"("1m")",
     .check = check_duration_text,
     .apply = [](Config&, SystemConfig* s, const Value& v) { s->directory->timeouts.operation = duration_of(v); }},
    {.key = "system[].directory.page_size",
     .type = Type::kInteger,
     .default_from = [](const Config&) { return std::to_string(DirectorySettings{}.page_size); },
     .min = 1,
     .max = directory::ldap::kMaxPageSize,
     .doc = "the number of entries asked for in each page of a search (RFC 2696; at most Active "
            "Directory's MaxPageSize)",
     .example = "500",
     .apply = [](Config&, SystemConfig* s, const Value& v) { s->directory->page_size = static_cast<int>(v.number); }},
    {.key = "system[].directory.base",
     .type = Type::kString,
     .default_note = "required with uri",
     .doc = "The DN below which the directory's objects are read.",
     .example = R"("DC=exchange,DC=example")",
     .check = check_dn,
     .apply = set_dir_text<&DirectorySettings::base>},
    {.key = "system[].directory.include",
     .type = Type::kStringArray,
     .default_value = "[]",
     .doc = "The containers (DNs) whose objects are synchronized; empty: everything below base.",
     .example = R"(["OU=Staff,DC=exchange,DC=example"])",
     .check = check_dn,
     .apply = [](Config&, SystemConfig* s, const Value& v) { s->directory->scope.include = v.list; }},
    {.key = "system[].directory.exclude",
     .type = Type::kStringArray,
     .default_value = "[]",
     .doc = "Containers (DNs) whose objects are not synchronized; they win over include.",
     .example = R"(["OU=Test,DC=exchange,DC=example"])",
     .check = check_dn,
     .apply = [](Config&, SystemConfig* s, const Value& v) { s->directory->scope.exclude = v.list; }},
    {.key = "system[].directory.filter",
     .type = Type::kString,
     .default_note = "none (every entry)",
     .doc = "An LDAP filter (RFC 4515) an object must match to be synchronized.",
     .example = R"x("(&(objectClass=user)(mail=*))")x",
     .check = check_ldap_filter,
     .apply = [](Config&, SystemConfig* s, const Value& v) { s->directory->scope.filter = v.text; }},
    {.key = "system[].directory.ignore_groups",
     .type = Type::kStringArray,
     .default_value = "[]",
     .doc = "Groups that are not synchronized, by DN (a name with '=') or by cn.",
     .example = R"(["All Staff"])",
     .check = check_group,
     .apply = [](Config&, SystemConfig* s, const Value& v) { s->directory->scope.ignore_groups = v.list; }},
    {.key = "system[].directory.feed",
     .type = Type::kEnum,
     .default_from = dir_enum<&DirectorySettings::feed, kFeeds>,
     .allowed = kFeeds,
     .doc = "How changes are found after the first full read: `syncrepl` (RFC 4533, OpenLDAP), "
            "`usn` (Active Directory's uSNChanged with the DC's invocationID), `timestamp` "
            "(modifyTimestamp with a 10-minute overlap, Domino), `full` (a full read every run) or "
            "`auto` (RFC 4533 when the server offers it, else `usn` for the exchange profile on a "
            "server with AD's root DSE, `timestamp` for the domino profile).",
     .example = R"("auto")",
     .apply = set_dir_enum<&DirectorySettings::feed, kFeeds>},
    {.key = "system[].directory.persist",
     .type = Type::kBool,
     .default_from = dir_bool<&DirectorySettings::persist>,
     .doc = "Whether an RFC 4533 search stays open between runs (refresh and persist), so that a "
            "new user is known within seconds.",
     .example = "true",
     .apply = [](Config&, SystemConfig* s, const Value& v) { s->directory->persist = v.flag; }},
    {.key = "system[].directory.contacts_container",
     .type = Type::kString,
     .default_note = "none (nothing is written into this directory)",
     .doc = "The container (DN) where the other system's objects are written as contacts; needs a "
            "directory in the other system.",
     .example = R"("OU=Notes Contacts,DC=exchange,DC=example")",
     .check = check_dn,
     .apply = set_dir_text<&DirectorySettings::contacts_container>},
    {.key = "system[].directory.ldif_output",
     .type = Type::kPath,
     .default_note = "none (written over LDAP)",
     .doc = "Instead of writing into the directory: an LDIF change file (RFC 2849) for the "
            "administrator to import, rewritten by each run that changes something.",
     .example = R"("/var/lib/bridgehead/exchange-contacts.ldif")",
     .apply = set_dir_text<&DirectorySettings::ldif_output>},
    {.key = "system[].directory.stamp_attribute",
     .type = Type::kString,
     .default_note = "`importedFrom` (exchange), `description` (domino)",
     .doc = "The attribute that carries the ownership stamp on the contacts the connector writes "
            "here; it changes and deletes only objects with its stamp.",
     .example = R"("importedFrom")",
     .check = check_attribute_name,
     .apply = set_dir_text<&DirectorySettings::stamp_attribute>},
    {.key = "system[].directory.full_name_generator",
     .type = Type::kEnum,
     .default_from = [](const Config&) { return toml_string(DirectorySettings{}.full_name_generator); },
     .allowed = kFullNameGenerators,
     .doc = "How the Notes full name of this directory's users is made when they are written into a "
            "Domino directory by the default rules.",
     .example = R"("given-surname")",
     .apply = set_dir_text<&DirectorySettings::full_name_generator>},

    {.key = "dirsync.connector_name",
     .type = Type::kString,
     .default_from = [](const Config& c) { return toml_string(c.dirsync.connector_name); },
     .doc = "The connector's name in the ownership stamp (`bridgehead:<name>:<key>`); two "
            "connectors writing into one directory need different names.",
     .example = R"("bridgehead")",
     .check = check_connector_name,
     .apply = [](Config& c, SystemConfig*, const Value& v) { c.dirsync.connector_name = v.text; }},
    {.key = "dirsync.notes_domain",
     .type = Type::kString,
     .default_note = "none; required to write Domino persons into Active Directory by the default rules",
     .doc = "The Notes domain, `$notes_domain` in the mapping rules (the `NOTES:` proxy address of "
            "a contact).",
     .example = R"("Acme")",
     .check = check_notes_domain,
     .apply = [](Config& c, SystemConfig*, const Value& v) { c.dirsync.notes_domain = v.text; }},
    {.key = "dirsync.max_deletes",
     .type = Type::kInteger,
     .default_from = [](const Config& c) { return std::to_string(c.dirsync.limits.max_deletes); },
     .min = 0,
     .max = 10'000'000,
     .doc = "the number of deletions in one run above which the run's deletions are held until "
            "`bridgehead dirsync approve`",
     .example = "500",
     .apply = [](Config& c, SystemConfig*, const Value& v) { c.dirsync.limits.max_deletes = v.number; }},
    {.key = "dirsync.max_delete_percent",
     .type = Type::kInteger,
     .default_from = [](const Config& c) { return std::to_string(c.dirsync.limits.max_percent); },
     .min = 0,
     .max = 100,
     .doc = "the share of a direction's objects, in percent, whose deletion in one run is held",
     .example = "10",
     .apply = [](Config& c, SystemConfig*, const Value& v) { c.dirsync.limits.max_percent = as_unsigned(v); }},
    {.key = "dirsync.delete_floor",
     .type = Type::kInteger,
     .default_from = [](const Config& c) { return std::to_string(c.dirsync.limits.percent_floor); },
     .min = 0,
     .max = 10'000'000,
     .doc = "the number of deletions up to which max_delete_percent does not apply (a small "
            "directory may lose a few objects)",
     .example = "10",
     .apply = [](Config& c, SystemConfig*, const Value& v) { c.dirsync.limits.percent_floor = v.number; }},
    {.key = "dirsync.adopt",
     .type = Type::kBool,
     .default_from = [](const Config& c) { return bool_literal(c.dirsync.adopt); },
     .doc = "Whether an object the connector does not own but that has a contact's address is "
            "stamped and taken over (after a migration) instead of being reported as a conflict.",
     .example = "false",
     .apply = [](Config& c, SystemConfig*, const Value& v) { c.dirsync.adopt = v.flag; }},
    {.key = "dirsync.soft_delete_days",
     .type = Type::kInteger,
     .default_from = [](const Config& c) { return std::to_string(c.dirsync.soft_delete_days); },
     .min = 0,
     .max = 3650,
     .doc = "the number of days a contact whose source is gone stays hidden from address lists "
            "before it is deleted (0: deleted at once)",
     .example = "30",
     .apply = [](Config& c, SystemConfig*, const Value& v) { c.dirsync.soft_delete_days = as_unsigned(v); }},
    {.key = "dirsync.create",
     .type = Type::kBool,
     .default_from = [](const Config& c) { return bool_literal(c.dirsync.switches.create); },
     .doc = "Whether runs create contacts.",
     .example = "true",
     .apply = [](Config& c, SystemConfig*, const Value& v) { c.dirsync.switches.create = v.flag; }},
    {.key = "dirsync.update",
     .type = Type::kBool,
     .default_from = [](const Config& c) { return bool_literal(c.dirsync.switches.update); },
     .doc = "Whether runs change contacts whose source changed.",
     .example = "true",
     .apply = [](Config& c, SystemConfig*, const Value& v) { c.dirsync.switches.update = v.flag; }},
    {.key = "dirsync.delete",
     .type = Type::kBool,
     .default_from = [](const Config& c) { return bool_literal(c.dirsync.switches.remove); },
     .doc = "Whether runs delete (or hide, with soft_delete_days) contacts whose source is gone.",
     .example = "true",
     .apply = [](Config& c, SystemConfig*, const Value& v) { c.dirsync.switches.remove = v.flag; }},
    {.key = "dirsync.rename",
     .type = Type::kBool,
     .default_from = [](const Config& c) { return bool_literal(c.dirsync.switches.rename); },
     .doc = "Whether runs rename contacts whose source was renamed.",
     .example = "true",
     .apply = [](Config& c, SystemConfig*, const Value& v) { c.dirsync.switches.rename = v.flag; }},
    {.key = "dirsync.interval",
     .type = Type::kString,
     .default_from = [](const Config& c) { return toml_string(format_duration(c.dirsync.interval)); },
     .doc = "The time between scheduled runs.",
     .example = R"("15m")",
     .check = check_duration_text,
     .apply = [](Config& c, SystemConfig*, const Value& v) { c.dirsync.interval = duration_of(v); }},
    {.key = "dirsync.full_interval",
     .type = Type::kString,
     .default_from = [](const Config& c) { return toml_string(format_duration(c.dirsync.full_interval)); },
     .doc = "The longest time between two full runs (the others read only the changes).",
     .example = R"("1d")",
     .check = check_duration_text,
     .apply = [](Config& c, SystemConfig*, const Value& v) { c.dirsync.full_interval = duration_of(v); }},
    {.key = "dirsync.batch_size",
     .type = Type::kInteger,
     .default_from = [](const Config& c) { return std::to_string(c.dirsync.batch_size); },
     .min = 1,
     .max = 10'000,
     .doc = "the number of operations one commit of the synchronization state covers",
     .example = "500",
     .apply = [](Config& c, SystemConfig*, const Value& v) { c.dirsync.batch_size = v.number; }},
    {.key = "dirsync.in_flight",
     .type = Type::kInteger,
     .default_from = [](const Config& c) { return std::to_string(c.dirsync.in_flight); },
     .min = 1,
     .max = 512,
     .doc = "the number of LDAP write requests the connector keeps in flight on its connection to a "
            "target directory (slapd is comfortable with 32 to 256)",
     .example = "64",
     .apply = [](Config& c, SystemConfig*, const Value& v) { c.dirsync.in_flight = static_cast<int>(v.number); }},
    {.key = "dirsync.transactions",
     .type = Type::kBool,
     .default_from = [](const Config& c) { return bool_literal(c.dirsync.transactions); },
     .doc = "Whether new contacts are written in LDAP transactions (RFC 5805), one commit per batch, "
            "where the target directory offers them: far fewer disk syncs on a directory that syncs "
            "every write. Off by default: Debian 12's slapd has been seen to crash at a commit.",
     .example = "false",
     .apply = [](Config& c, SystemConfig*, const Value& v) { c.dirsync.transactions = v.flag; }},
    {.key = "dirsync.group_members",
     .type = Type::kBool,
     .default_from = [](const Config& c) { return bool_literal(c.dirsync.group_members); },
     .doc = "Whether groups are written into the other directory as groups with their members (an AD "
            "distribution group, a Domino group; mail to one is expanded there), instead of contacts "
            "that route mail to the group in its home system. Members that are not synchronized "
            "themselves (out of scope, hidden, not mail-enabled) are left out of the copy; a Domino "
            "group must have a member, so a group with none synchronized is reported as bad data and "
            "not written there.",
     .example = "false",
     .apply = [](Config& c, SystemConfig*, const Value& v) { c.dirsync.group_members = v.flag; }},
    {.key = "dirsync.member_chunk",
     .type = Type::kInteger,
     .default_from = [](const Config& c) { return std::to_string(c.dirsync.member_chunk); },
     .min = 1,
     .max = 5'000,
     .doc = "the most member values one write of a group carries: a larger group is created with the "
            "first ones and completed by further writes (Active Directory takes about 5,000 at once)",
     .example = "1000",
     .apply = [](Config& c, SystemConfig*, const Value& v) { c.dirsync.member_chunk = v.number; }},
};

const Section kSections[] = {
    {"connector", "[connector]", "Who the connector is and where it keeps its state."},
    {"admin", "[admin]",
     "The local control socket of the running daemon (`bridgehead status` and the other "
     "subcommands)."},
    {"identity", "[identity]",
     "The connector ID and where its password comes from. Without id_file the connector has "
     "no identity of its own (STARTTLS only from tls_cert_file)."},
    {"spool", "[spool]",
     "The durable message store: every accepted message is written and fsynced here before "
     "the 250 reply."},
    {"smtp", "[smtp]",
     "Limits of the SMTP listeners, shared by all systems; they protect the connector from "
     "oversized messages and abusive sessions."},
    {"queue", "[queue]", "Retries, lifetime and delay notices of queued mail, and where poison messages go."},
    {"tracking", "[tracking]", "What happened to each message, for the administrator who is asked."},
    {"dirsync", "[dirsync]",
     "Directory synchronization as a whole: the ownership stamp, the deletion threshold, which "
     "operations runs make, and the schedule. Each system's directory is its [system.directory]."},
    {"system[]", "[[system]]",
     "One table per connected mail system, at least two. The listener receives mail *from* "
     "the system; the delivery target takes mail *to* it. These tables have no defaults."},
    {"system[].delivery", "[system.delivery]", "Where mail to the recipients of the system above it is delivered."},
    {"system[].directory", "[system.directory]",
     "The system's directory for directory synchronization: where its users and groups are read "
     "(an LDAP server or an LDIF file), and where the other system's are written as contacts. "
     "Without this table the system takes part in no directory synchronization."},
    {.path = "system[].directory.rules",
     .header = "[system.directory.rules]",
     .doc = "The mapping rules for the objects of the *other* system written into this directory: one "
            "key per target attribute, its value an expression over the other system's attributes "
            "(functions concat, lower, upper, proper, left, substr, strip, replace, if_empty, isequal, "
            "first, notes_abbrev, notes_canonical, x500, name_first, name_last; variables "
            "$routing_domain, $notes_domain, $system). Without the table the default rules apply; a "
            "table replaces them as a whole. `bridgehead check` reports a rule that does not parse, "
            "names an unknown function or attribute or has the wrong arity, at its line and column.",
     .free_keys_example = R"x(mailNickname = "lower(first(if_empty(uid, shortName)))")x"},
    {.path = "system[].directory.group_rules",
     .header = "[system.directory.group_rules]",
     .doc = "The mapping rules for the other system's *groups* written into this directory, in the "
            "same language as [system.directory.rules]. A group goes across as a contact with its "
            "name and address and is expanded in its home system; a Domino group without an "
            "Internet address (mail) is not exported. Without the table the default group rules "
            "apply (toward AD: targetAddress SMTP:<mail>, proxyAddresses NOTES:<name>@$notes_domain "
            "and smtp:<mail>; toward Domino: mailAddress <mailNickname>@$routing_domain, fullName "
            "the display name); a table replaces them as a whole. With [dirsync] group_members = true "
            "a group goes across as a group (an AD distribution group, a Domino mail-only group) "
            "whose members are the synchronized copies of its members; the default rules then write "
            "toward AD proxyAddresses, mailNickname, displayName and mail, toward Domino cn, "
            "listName, fullName, displayName and mail. The member attribute is Bridgehead's, not a "
            "rule's.",
     .free_keys_example = R"x(displayName = "concat(first(cn), ' (group)')")x"},
};
#pragma GCC diagnostic pop

constexpr std::string_view kExampleHead =
    R"(# Bridgehead between an Exchange organization and a Domino domain, all on this host.

[connector]
hostname = "bridgehead.example"
state_dir = "/var/lib/bridgehead"
user = "bridgehead"
log_level = "info"

[admin]
control_socket_mode = "0660"

[smtp]
max_message_size = "50MiB"
max_recipients = 1000

# Directory synchronization runs between the systems that have a [system.directory]: remove
# the "# " before the lines of both directories below to turn it on.
[dirsync]
notes_domain = "Acme"
max_deletes = 500
interval = "15m"
)";

constexpr std::string_view kExampleSystems = R"toml(
[[system]]
name = "exchange"
kind = "exchange"
domains = ["exchange.example"]
listen = "127.0.0.1:2525"
recipients = ["alice@exchange.example", "bob@exchange.example"]

[system.delivery]
method = "smtp"
address = "127.0.0.1:2526"

# Active Directory: its users are read, and the Notes users are written into it as contacts
# (by the default rules: targetAddress, proxyAddresses with NOTES: and smtp:, mailNickname).
# [system.directory]
# uri = "ldaps://dc1.exchange.example"
# bind = "simple"
# bind_dn = "CN=Bridgehead,OU=Service Accounts,DC=exchange,DC=example"
# password_file = "exchange-directory.password"
# base = "DC=exchange,DC=example"
# exclude = ["OU=Test,DC=exchange,DC=example"]
# filter = "(&(objectClass=user)(mail=*))"
# contacts_container = "OU=Notes Contacts,DC=exchange,DC=example"
# full_name_generator = "given-surname"

[[system]]
name = "notes"
kind = "domino"
domains = ["notes.example"]
listen = "127.0.0.1:2527"
recipients = ["carol@notes.example", "dave@notes.example"]

[system.delivery]
method = "maildir"
path = "maildir/notes"

# The Domino Directory over LDAP: its persons are read, and the Exchange users are written
# into it as persons whose mail Domino forwards to Exchange through the connector.
# [system.directory]
# uri = "ldap://domino.notes.example"
# tls = "starttls"
# bind = "simple"
# bind_dn = "CN=Bridgehead,O=Acme"
# password_file = "notes-directory.password"
# base = "O=Acme"
# contacts_container = "OU=Exchange,O=Acme"
# # Rules here replace the default ones for the Exchange users: these are the defaults with
# # the department added.
# [system.directory.rules]
# mailAddress = "concat(first(mailNickname), '@', $routing_domain)"
# fullName = "if_empty(concat(givenName, ' ', sn), first(displayName))"
# cn = "if_empty(concat(givenName, ' ', sn), first(displayName))"
# sn = "if_empty(sn, name_last(first(displayName)))"
# givenName = "if_empty(givenName, name_first(first(displayName)))"
# mail = "first(mail)"
# department = "first(department)"
)toml";

bool is_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

std::string Setting::default_literal() const {
  return default_from != nullptr ? default_from(Config{}) : std::string(default_value);
}

std::string_view Setting::section() const { return key.substr(0, key.rfind('.')); }
std::string_view Setting::name() const { return key.substr(key.rfind('.') + 1); }

std::span<const Setting> settings() { return kSettings; }
std::span<const Section> sections() { return kSections; }

const Setting* find_setting(std::string_view key) {
  for (const Setting& s : kSettings)
    if (s.key == key) return &s;
  return nullptr;
}

const Section* find_section(std::string_view path) {
  for (const Section& s : kSections)
    if (s.path == path) return &s;
  return nullptr;
}

std::string type_description(const Setting& s) {
  switch (s.type) {
    case Type::kString:
      return "string";
    case Type::kPath:
      return "path";
    case Type::kEndpoint:
      return "string `address:port`";
    case Type::kMode:
      return "octal string";
    case Type::kStringArray:
      return "array of strings";
    case Type::kBool:
      return "boolean";
    case Type::kInteger:
      return fmt::format("integer ({}–{})", s.min, s.max);
    case Type::kSize:
      return fmt::format("size ({}–{})", format_size(s.min), format_size(s.max));
    case Type::kEnum: {
      std::string out = "one of ";
      for (std::size_t i = 0; i < s.allowed.size(); ++i) out += fmt::format("{}`{}`", i ? ", " : "", s.allowed[i]);
      return out;
    }
  }
  return "?";
}

std::string example_systems_toml() { return std::string(kExampleSystems); }

std::string check_dns_name(std::string_view name) {
  if (name.empty()) return "is empty";
  if (name.size() > 253) return "is longer than the 253 characters a DNS name may have";
  if (name.back() == '.') return "ends with a dot; leave the final dot out";
  std::size_t start = 0;
  while (start <= name.size()) {
    std::size_t end = name.find('.', start);
    if (end == std::string_view::npos) end = name.size();
    std::string_view label = name.substr(start, end - start);
    if (label.empty()) return "has an empty label (two dots in a row, or a dot at the start)";
    if (label.size() > 63) return fmt::format("has the label \"{}\", longer than 63 characters", label);
    for (char c : label) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-')
        return fmt::format("contains '{}', which a DNS name may not (only letters, digits, - and .)", c);
    }
    if (label.front() == '-' || label.back() == '-')
      return fmt::format("has the label \"{}\", which starts or ends with -", label);
    start = end + 1;
  }
  return {};
}

std::string check_system_name(std::string_view name) {
  if (name.empty()) return "is empty";
  if (name.size() > 32) return "is longer than 32 characters";
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
      return fmt::format("contains '{}'; a system name is a process name and may only use a-z, 0-9 and -", c);
  }
  return {};
}

std::string check_dn(std::string_view dn) {
  if (trim(dn).empty()) return "is empty; give a DN such as \"ou=Contacts,o=Acme\"";
  auto parsed = directory::Dn::parse(dn);
  if (parsed) return {};
  // The parser's message repeats the DN, and the loader adds an example: what follows the DN
  // ("at offset 3: ...") is the news.
  const std::string& m = parsed.error().message;
  const std::size_t at = m.find(" at offset ");
  return fmt::format("is not an RFC 4514 DN:{}", at == std::string::npos ? " " + m : m.substr(at));
}

std::string check_address(std::string_view address) {
  std::size_t at = address.rfind('@');
  if (at == std::string_view::npos) return "has no @; write it as local-part@domain";
  std::string_view local = address.substr(0, at);
  std::string_view domain = address.substr(at + 1);
  if (local.empty()) return "has an empty local part before the @";
  if (local.size() > 64) return "has a local part longer than 64 characters";
  // Only dot-atoms: a quoted local part in a static list is almost always a mistake.
  constexpr std::string_view kAtext = "!#$%&'*+-/=?^_`{|}~";
  bool prev_dot = true;
  for (char c : local) {
    if (c == '.') {
      if (prev_dot) return "has a local part with a leading or doubled dot";
      prev_dot = true;
      continue;
    }
    prev_dot = false;
    if (!std::isalnum(static_cast<unsigned char>(c)) && kAtext.find(c) == std::string_view::npos)
      return fmt::format("has '{}' in its local part, which needs quoting; list only plain addresses", c);
  }
  if (prev_dot) return "has a local part that ends with a dot";
  if (std::string why = check_dns_name(domain); !why.empty()) return "has a domain that " + why;
  return {};
}

std::optional<Endpoint> parse_endpoint(std::string_view text, std::string& why) {
  constexpr std::string_view kHow = R"(; write it as "127.0.0.1:2525", or "[::1]:2525" for IPv6)";
  Endpoint ep;
  std::string_view port;
  if (text.starts_with('[')) {
    std::size_t close = text.find(']');
    if (close == std::string_view::npos) {
      why = "has a [ without a matching ]" + std::string(kHow);
      return std::nullopt;
    }
    ep.host = std::string(text.substr(1, close - 1));
    in6_addr a6{};
    if (inet_pton(AF_INET6, ep.host.c_str(), &a6) != 1) {
      why = fmt::format("has \"{}\" in brackets, which is not an IPv6 address{}", ep.host, kHow);
      return std::nullopt;
    }
    std::string_view rest = text.substr(close + 1);
    if (!rest.starts_with(':')) {
      why = "has no :port after the ]" + std::string(kHow);
      return std::nullopt;
    }
    port = rest.substr(1);
  } else {
    std::size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      why = "has no port" + std::string(kHow);
      return std::nullopt;
    }
    if (text.find(':') != colon) {
      why = "looks like an IPv6 address without brackets" + std::string(kHow);
      return std::nullopt;
    }
    ep.host = std::string(text.substr(0, colon));
    port = text.substr(colon + 1);
    if (ep.host.empty()) {
      why = "has no address before the port" + std::string(kHow) + R"( ("0.0.0.0:2525" for all)";
      return std::nullopt;
    }
    bool numeric =
        std::all_of(ep.host.begin(), ep.host.end(), [](char c) { return (c >= '0' && c <= '9') || c == '.'; });
    in_addr a4{};
    if (numeric && inet_pton(AF_INET, ep.host.c_str(), &a4) != 1) {
      why = fmt::format("has \"{}\", which is not an IPv4 address{}", ep.host, kHow);
      return std::nullopt;
    }
    if (!numeric) {
      if (std::string bad = check_dns_name(ep.host); !bad.empty()) {
        why = fmt::format("has the host name \"{}\", which {}", ep.host, bad);
        return std::nullopt;
      }
      ep.host = to_lower(ep.host);
    }
  }
  if (!is_digits(port) || port.size() > 5) {
    why = fmt::format("has the port \"{}\", which is not a number from 1 to 65535", port);
    return std::nullopt;
  }
  unsigned long n = std::stoul(std::string(port));
  if (n < 1 || n > 65535) {
    why = fmt::format("has the port {}, outside 1 to 65535", n);
    return std::nullopt;
  }
  ep.port = static_cast<std::uint16_t>(n);
  return ep;
}

std::optional<std::uint64_t> parse_size(std::string_view text, std::string& why) {
  struct Unit {
    std::string_view name;
    std::uint64_t factor;
  };
  static constexpr Unit kUnits[] = {{"", 1},       {"B", 1},     {"KiB", kKiB},   {"MiB", kMiB},
                                    {"GiB", kGiB}, {"KB", 1000}, {"MB", 1000000}, {"GB", 1000000000}};
  constexpr std::string_view kHow =
      R"(write a number of bytes or a number with a unit B, KiB, MiB, GiB (powers of 1024) or KB, MB, GB (powers of 1000), e.g. "50MiB")";
  std::string_view s = trim(text);
  std::size_t digits = 0;
  while (digits < s.size() && s[digits] >= '0' && s[digits] <= '9') ++digits;
  std::string_view unit = trim(s.substr(digits));
  if (digits == 0 || digits > 19) {
    why = fmt::format("\"{}\" is not a size; {}", text, kHow);
    return std::nullopt;
  }
  const Unit* found = nullptr;
  for (const Unit& u : kUnits)
    if (u.name == unit) found = &u;
  if (!found) {
    why = fmt::format("\"{}\" has the unknown unit \"{}\" (units are case-sensitive); {}", text, unit, kHow);
    return std::nullopt;
  }
  std::uint64_t n = std::stoull(std::string(s.substr(0, digits)));
  if (n > std::numeric_limits<std::uint64_t>::max() / found->factor) {
    why = fmt::format("\"{}\" is too large; {}", text, kHow);
    return std::nullopt;
  }
  return n * found->factor;
}

std::string format_size(std::uint64_t bytes) {
  if (bytes != 0 && bytes % kGiB == 0) return fmt::format("{}GiB", bytes / kGiB);
  if (bytes != 0 && bytes % kMiB == 0) return fmt::format("{}MiB", bytes / kMiB);
  if (bytes != 0 && bytes % kKiB == 0) return fmt::format("{}KiB", bytes / kKiB);
  return fmt::format("{} bytes", bytes);
}

std::optional<unsigned> parse_mode(std::string_view text, std::string& why) {
  if (text.empty() || text.size() > 4 ||
      !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '7'; })) {
    why = fmt::format("\"{}\" is not an octal mode; write three or four octal digits, e.g. \"0600\"", text);
    return std::nullopt;
  }
  unsigned mode = static_cast<unsigned>(std::stoul(std::string(text), nullptr, 8));
  if (mode & ~0777u) {
    why = fmt::format(
        "\"{}\" sets bits outside 0777 (setuid, setgid or sticky), which a socket "
        "does not use; give only the permission bits, e.g. \"0600\"",
        text);
    return std::nullopt;
  }
  return mode;
}

}  // namespace bridgehead::config::detail

namespace bridgehead::config {

using detail::Setting;

std::string defaults_toml() {
  std::string out =
      "# Bridgehead configuration with every setting at its default.\n"
      "# Reference: docs/configuration.md. Check a file with: bridgehead check --config FILE\n"
      "# Relative paths are relative to the directory of this file.\n";
  for (const detail::Section& sec : detail::sections()) {
    bool system = sec.path.starts_with("system[]");
    out += "\n";
    if (sec.path == "system[]") {
      out +=
          "# A connector connects at least two systems, and [[system]] tables have no\n"
          "# defaults. Each system looks like this (see docs/configuration.md):\n";
    }
    out += fmt::format("{}{}\n", system ? "# " : "", sec.header);
    if (!sec.free_keys_example.empty()) {
      out += fmt::format("{}# Free keys, target attribute = \"expression\"; none: the default rules.\n{}{}\n",
                         system ? "# " : "", system ? "# " : "", sec.free_keys_example);
    }
    for (const Setting& s : detail::settings()) {
      if (s.section() != sec.path) continue;
      out += fmt::format("{}# {}", system ? "# " : "", s.doc);
      if (s.default_note.starts_with("required for"))
        out += fmt::format(" R{}.", s.default_note.substr(1));
      else if (!s.default_note.empty() && s.default_note != "required")
        out += fmt::format(" Default: {}.", s.default_note);
      out += "\n";
      if (system) {
        out += fmt::format("# {} = {}\n", s.name(), s.example);
      } else if (const std::string def = s.default_literal(); def.empty()) {
        out += fmt::format("# {} = {}\n", s.name(), s.example);
      } else {
        out += fmt::format("{} = {}\n", s.name(), def);
      }
    }
  }
  return out;
}

std::string example_toml() { return std::string(detail::kExampleHead) + std::string(detail::kExampleSystems); }

std::string reference_markdown() {
  std::string out = R"(# Configuration reference

<!-- Generated from the settings table in src/config/settings.cpp by
     `bridgehead config --markdown > docs/configuration.md`. Do not edit by hand. -->

Bridgehead reads one TOML file. Every setting it knows is listed below with its type,
default and meaning. A key that is not listed here is an error, not a warning, so a
misspelt key never goes unnoticed. To check a file without starting the connector, run

    bridgehead check --config FILE

which prints every problem, each with its line and column and how to fix it.
`bridgehead config --defaults` prints a file with every setting at its default.

- Relative paths are relative to the directory of the configuration file.
- Sizes are an integer number of bytes or a string with a unit: `B`, `KiB`, `MiB`, `GiB`
  (powers of 1024) or `KB`, `MB`, `GB` (powers of 1000), with or without a space:
  `"50MiB"`, `"64 MiB"`, `"10MB"`. Units are case-sensitive.
- Addresses are `"address:port"`, IPv6 addresses in brackets: `"127.0.0.1:2525"`,
  `"[::1]:2525"`.
)";
  for (const detail::Section& sec : detail::sections()) {
    out += fmt::format("\n## {}\n\n{}\n\n", sec.header, sec.doc);
    if (!sec.free_keys_example.empty()) {
      out += fmt::format("For example:\n\n```toml\n{}\n{}\n```\n", sec.header, sec.free_keys_example);
      continue;
    }
    out += "| Key | Type | Default | Description |\n|---|---|---|---|\n";
    for (const Setting& s : detail::settings()) {
      if (s.section() != sec.path) continue;
      const std::string literal = s.default_literal();
      std::string def = literal.empty() ? std::string(s.default_note) : fmt::format("`{}`", literal);
      out += fmt::format("| `{}` | {} | {} | {} |\n", s.name(), detail::type_description(s), def, s.doc);
    }
  }
  out += R"(
## Checks across settings

Besides each value's own type and bounds, `bridgehead check` verifies that:

- there are at least two `[[system]]` tables, since a connector connects two systems;
- system names are unique;
- no domain belongs to two systems, and each domain is a valid DNS name (stored lower case);
- listen addresses are unique across systems, and no delivery address is one of the
  connector's own listeners (mail would loop);
- `tls_cert_file` and `tls_key_file` are given together, and both files exist and are readable;
- `tls_client_ca_file` is readable, and its system has a certificate to offer STARTTLS with
  (`tls_cert_file`, or the connector ID `identity.id_file`);
- `identity.id_file` and `identity.id_password_file` exist and are readable, and a password
  file comes with an ID file. `bridgehead check` also opens the ID with the password source
  the daemon would use (without prompting), checks the password file's mode and the
  certificate's validity, and says which source is in use;
- every recipient's domain is one of its system's domains;
- a delivery with method `smtp` or `lmtp` has `address` and no `path`; one with `maildir`
  has `path` and no `address`;
- `max_sessions_per_client` is at most `max_sessions`;
- the control socket's path fits in a Unix socket address (107 bytes);
- a `[system.directory]` has exactly one of `uri` and `ldif_file`, and `base` with `uri`;
  an `ldif_file`, `ca_file` and `password_file` are readable (the password file's mode is
  checked when the daemon reads it); `tls = "starttls"` goes with `ldap://` only;
- `bind = "simple"` has `bind_dn` and `password_file`, and only a simple bind has a
  `password_file`; `bind = "sasl-external"` has TLS (`ldaps://` or `starttls`) and a
  connector ID (`identity.id_file`);
- a system of kind `smtp` with a directory says its `profile`;
- `contacts_container` needs a directory in another system, and an `ldif_output` when the
  directory is an `ldif_file`; two directories of the same profile need rules, since the
  default rules map Domino to Active Directory and back;
- every DN (`base`, `bind_dn`, `include`, `exclude`, `contacts_container`, an
  `ignore_groups` entry with '=') is valid RFC 4514, and `filter` is a valid RFC 4515 filter;
- every rule of `[system.directory.rules]` parses against the attributes of the other
  system's profile, each problem at its line and column;
- `dirsync.notes_domain` is set when Domino persons are written into Active Directory by the
  default rules (their `NOTES:` proxy address needs it).

## Example

```toml
)";
  out += example_toml();
  out += "```\n";
  return out;
}

}  // namespace bridgehead::config
