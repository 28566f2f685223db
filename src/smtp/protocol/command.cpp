#include "smtp/protocol/command.hpp"

#include <arpa/inet.h>

#include <array>
#include <limits>

#include "core/text.hpp"

namespace bridgehead::smtp {

namespace {

constexpr std::size_t kMaxPath = 256;      // RFC 5321 4.5.3.1.3, brackets included
constexpr std::size_t kMaxLocalPart = 64;  // RFC 5321 4.5.3.1.1
constexpr std::size_t kMaxDomain = 255;    // RFC 5321 4.5.3.1.2
constexpr std::size_t kMaxLabel = 63;
constexpr std::size_t kMaxEnvid = 100;  // RFC 3461 4.4
constexpr std::size_t kMaxOrcpt = 500;  // RFC 3461 4.2

tl::unexpected<Reply> reject(int code, const char* enhanced, std::string text) {
  return tl::unexpected<Reply>(Reply{code, enhanced, std::move(text)});
}

template <typename T>
struct Keyword {
  std::string_view name;
  T value;
};

// What the keyword `word` names in `table` (ASCII case ignored), or nullopt.
template <typename Table>
auto keyword_value(std::string_view word, const Table& table) -> std::optional<decltype(table[0].value)> {
  for (const auto& k : table) {
    if (iequals(word, k.name)) return k.value;
  }
  return std::nullopt;
}

constexpr Keyword<BodyType> kBodyTypes[] = {{"7BIT", BodyType::k7Bit}, {"8BITMIME", BodyType::k8BitMime}};
constexpr Keyword<DsnRet> kRets[] = {{"FULL", DsnRet::kFull}, {"HDRS", DsnRet::kHeaders}};
constexpr Keyword<std::uint8_t> kNotifyFlags[] = {
    {"NEVER", kNotifyNever}, {"SUCCESS", kNotifySuccess}, {"FAILURE", kNotifyFailure}, {"DELAY", kNotifyDelay}};

bool is_alpha(unsigned char c) { return (c | 0x20) >= 'a' && (c | 0x20) <= 'z'; }
bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
bool is_alnum(unsigned char c) { return is_alpha(c) || is_digit(c); }
bool is_upper_hex(unsigned char c) { return is_digit(c) || (c >= 'A' && c <= 'F'); }
bool is_atext(unsigned char c, bool utf8) {
  if (is_alnum(c)) return true;
  if (utf8 && c >= 0x80) return true;
  constexpr std::string_view kSpecials = "!#$%&'*+-/=?^_`{|}~";
  return c < 0x80 && kSpecials.find(static_cast<char>(c)) != std::string_view::npos;
}

// `underscore` tolerates the '_' that Windows host names put into EHLO.
bool valid_domain(std::string_view d, bool utf8, bool underscore = false) {
  if (d.empty() || d.size() > kMaxDomain) return false;
  std::size_t start = 0;
  while (start <= d.size()) {
    auto dot = d.find('.', start);
    if (dot == std::string_view::npos) dot = d.size();
    const auto label = d.substr(start, dot - start);
    if (label.empty() || label.size() > kMaxLabel) return false;
    for (std::size_t i = 0; i < label.size(); ++i) {
      const auto c = static_cast<unsigned char>(label[i]);
      const bool edge = i == 0 || i + 1 == label.size();
      const bool ok =
          is_alnum(c) || (utf8 && c >= 0x80) || (!edge && c == '-') || (underscore && c == '_');
      if (!ok) return false;
    }
    start = dot + 1;
  }
  return true;
}

// RFC 5321 4.1.3 address-literal, brackets included.
bool valid_address_literal(std::string_view lit) {
  if (lit.size() < 3 || lit.front() != '[' || lit.back() != ']') return false;
  const std::string inner(lit.substr(1, lit.size() - 2));
  // Printable ASCII only, checked before inet_pton: it reads a C string, so a NUL would end
  // the literal early ("[192.0.2.2<NUL>junk]" passed as 192.0.2.2; found by fuzz_command).
  for (const char ch : inner) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 33 || c > 126) return false;
  }
  std::array<unsigned char, 16> buf{};
  if (inet_pton(AF_INET, inner.c_str(), buf.data()) == 1) return true;
  const auto colon = inner.find(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == inner.size()) return false;
  const std::string_view tag(inner.data(), colon);
  if (iequals(tag, "IPv6")) return inet_pton(AF_INET6, inner.c_str() + 5, buf.data()) == 1;
  // General-address-literal: Standardized-tag ":" 1*dcontent.
  for (std::size_t i = 0; i < tag.size(); ++i) {
    const auto c = static_cast<unsigned char>(tag[i]);
    if (!(is_alnum(c) || (c == '-' && i != 0 && i + 1 != tag.size()))) return false;
  }
  for (std::size_t i = colon + 1; i < inner.size(); ++i) {
    const auto c = static_cast<unsigned char>(inner[i]);
    if (c < 33 || c > 126 || c == '[' || c == '\\' || c == ']') return false;
  }
  return true;
}

bool valid_local_part(std::string_view lp, bool utf8) {
  if (lp.empty() || lp.size() > kMaxLocalPart) return false;
  if (lp.front() == '"') {
    if (lp.size() < 2 || lp.back() != '"') return false;
    for (std::size_t i = 1; i + 1 < lp.size(); ++i) {
      const auto c = static_cast<unsigned char>(lp[i]);
      if (c == '\\') {
        if (i + 2 >= lp.size()) return false;
        const auto n = static_cast<unsigned char>(lp[++i]);
        if (n < 32 || n > 126) return false;
      } else if (c == '"') {
        return false;
      } else if (!((c >= 32 && c <= 126) || (utf8 && c >= 0x80))) {
        return false;
      }
    }
    return true;
  }
  bool prev_dot = true;  // no leading dot
  for (unsigned char c : lp) {
    if (c == '.') {
      if (prev_dot) return false;
      prev_dot = true;
    } else if (is_atext(c, utf8)) {
      prev_dot = false;
    } else {
      return false;
    }
  }
  return !prev_dot;
}

// The position of the first `c` at or after `from` outside a quoted string, or npos.
std::size_t find_unquoted(std::string_view s, char c, std::size_t from = 0) {
  bool quoted = false;
  for (std::size_t i = from; i < s.size(); ++i) {
    if (quoted && s[i] == '\\') {
      ++i;
    } else if (s[i] == '"') {
      quoted = !quoted;
    } else if (!quoted && s[i] == c) {
      return i;
    }
  }
  return std::string_view::npos;
}

// Where the '@' between local part and domain is: the first '@' outside a quoted string.
std::size_t find_at(std::string_view a) { return find_unquoted(a, '@'); }

// Parses "<path>" at the start of `s`; sets `consumed` to the length including '>'.
std::optional<std::string_view> bracketed(std::string_view s, std::size_t& consumed) {
  if (s.empty() || s.front() != '<') return std::nullopt;
  const auto close = find_unquoted(s, '>', 1);
  if (close == std::string_view::npos) return std::nullopt;
  consumed = close + 1;
  return s.substr(1, close - 1);
}

// Strips an RFC 5321 A-d-l ("@a,@b:") source route, which we accept and ignore (4.1.1.3).
std::optional<std::string_view> strip_source_route(std::string_view path) {
  if (path.empty() || path.front() != '@') return path;
  const auto colon = path.find(':');
  if (colon == std::string_view::npos) return std::nullopt;
  std::string_view adl = path.substr(0, colon);
  for (;;) {
    const auto comma = adl.find(',');
    const auto hop = adl.substr(0, comma);
    if (hop.size() < 2 || hop.front() != '@' || !valid_domain(hop.substr(1), true)) {
      return std::nullopt;
    }
    if (comma == std::string_view::npos) break;
    adl.remove_prefix(comma + 1);
  }
  return path.substr(colon + 1);
}

std::optional<std::uint64_t> parse_number(std::string_view s, bool saturate) {
  if (s.empty()) return std::nullopt;
  std::uint64_t v = 0;
  for (char ch : s) {
    if (!is_digit(static_cast<unsigned char>(ch))) return std::nullopt;
    const auto d = static_cast<std::uint64_t>(ch - '0');
    if (v > (std::numeric_limits<std::uint64_t>::max() - d) / 10) {
      if (!saturate) return std::nullopt;
      v = std::numeric_limits<std::uint64_t>::max();
    } else {
      v = v * 10 + d;
    }
  }
  return v;
}

bool has_control(std::string_view s) {
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7F) return true;
  }
  return false;
}

tl::unexpected<Reply> bad_param(std::string_view what) {
  return reject(555, "5.5.4", "Unsupported or malformed parameter " + std::string(what));
}

// esmtp-param = esmtp-keyword ["=" esmtp-value] (RFC 5321 4.1.2).
tl::expected<void, Reply> parse_params(std::string_view s, Command& cmd) {
  unsigned seen = 0;
  auto once = [&seen](unsigned bit) {
    const bool first = (seen & bit) == 0;
    seen |= bit;
    return first;
  };
  // A parameter that names one of the values in `table`, given once.
  auto set_keyword = [&once](unsigned bit, std::string_view value, const auto& table, auto& field) {
    const auto named = keyword_value(value, table);
    if (!once(bit) || !named) return false;
    field = *named;
    return true;
  };
  const bool mail = cmd.verb == Verb::kMail;
  while (!s.empty()) {
    if (s.front() == ' ') {
      s.remove_prefix(1);
      continue;
    }
    auto end = s.find(' ');
    if (end == std::string_view::npos) end = s.size();
    const auto param = s.substr(0, end);
    s.remove_prefix(end);
    const auto eq = param.find('=');
    const auto key = param.substr(0, eq);
    const bool has_value = eq != std::string_view::npos;
    const auto value = has_value ? param.substr(eq + 1) : std::string_view{};
    if (has_8bit(param)) return bad_param(key);
    if (has_value && (value.empty() || value.find('=') != std::string_view::npos)) {
      return bad_param(key);
    }
    if (mail && iequals(key, "SIZE")) {
      if (!once(1)) return bad_param(key);
      // Saturate: an absurd SIZE is refused by the session as too big, not as a syntax error.
      auto n = parse_number(value, true);
      if (!n) return bad_param(key);
      cmd.mail.size = *n;
    } else if (mail && iequals(key, "BODY")) {
      if (!set_keyword(2, value, kBodyTypes, cmd.mail.body)) return bad_param(key);
    } else if (mail && iequals(key, "SMTPUTF8")) {
      if (!once(4) || has_value) return bad_param(key);
      cmd.mail.smtputf8 = true;
    } else if (mail && iequals(key, "RET")) {
      if (!set_keyword(8, value, kRets, cmd.mail.ret)) return bad_param(key);
    } else if (mail && iequals(key, "ENVID")) {
      if (!once(16) || value.size() > kMaxEnvid) return bad_param(key);
      // A decoded CR or LF would be an injection into DSNs and spool records.
      auto decoded = xtext_decode(value);
      if (!decoded || decoded->empty() || has_control(*decoded)) return bad_param(key);
      cmd.mail.envid = std::move(*decoded);
    } else if (!mail && iequals(key, "NOTIFY")) {
      if (!once(32) || value.empty()) return bad_param(key);
      std::uint8_t flags = 0;
      std::string_view list = value;
      for (;;) {
        const auto comma = list.find(',');
        const auto flag = keyword_value(list.substr(0, comma), kNotifyFlags);
        if (!flag) return bad_param(key);
        flags |= *flag;
        if (comma == std::string_view::npos) break;
        list.remove_prefix(comma + 1);
      }
      if ((flags & kNotifyNever) != 0 && flags != kNotifyNever) return bad_param(key);
      cmd.rcpt.notify = flags;
    } else if (!mail && iequals(key, "ORCPT")) {
      if (!once(64) || value.size() > kMaxOrcpt) return bad_param(key);
      const auto semi = value.find(';');
      if (semi == std::string_view::npos || semi == 0) return bad_param(key);
      const auto type = value.substr(0, semi);
      for (unsigned char c : type) {
        if (!is_atext(c, false)) return bad_param(key);
      }
      auto decoded = xtext_decode(value.substr(semi + 1));
      if (!decoded || decoded->empty() || has_control(*decoded)) return bad_param(key);
      std::string orcpt = to_lower(type);
      orcpt += ';';
      orcpt += *decoded;
      cmd.rcpt.orcpt = std::move(orcpt);
    } else {
      return reject(555, "5.5.4", "Unsupported parameter " + std::string(key.substr(0, 32)));
    }
  }
  return {};
}

tl::expected<Command, Reply> parse_path_command(Command cmd, std::string_view rest) {
  const bool mail = cmd.verb == Verb::kMail;
  const std::string_view keyword = mail ? "FROM:" : "TO:";
  const auto syntax = reject(
      501, "5.5.4",
      mail ? "Syntax: MAIL FROM:<address> [parameters]" : "Syntax: RCPT TO:<address> [parameters]");
  if (!istarts_with(rest, keyword)) return syntax;
  rest.remove_prefix(keyword.size());
  // Postfix-compatible: a single space after the colon ("MAIL FROM: <a@b>").
  if (rest.size() >= 2 && rest[0] == ' ' && rest[1] == '<') rest.remove_prefix(1);
  std::size_t consumed = 0;
  auto path = bracketed(rest, consumed);
  if (!path) return syntax;
  const auto params = rest.substr(consumed);
  if (!params.empty() && params.front() != ' ') return syntax;
  if (consumed > kMaxPath) return reject(553, "5.1.3", "Path too long");

  if (auto ok = parse_params(params, cmd); !ok) return tl::unexpected<Reply>(ok.error());

  auto mailbox = strip_source_route(*path);
  if (!mailbox) return reject(553, "5.1.3", "Bad source route in address");
  if (mailbox->empty()) {
    if (!mail || path->size() != 0) return reject(553, "5.1.3", "Empty address not allowed");
    cmd.path.clear();
    return cmd;
  }
  const bool non_ascii = has_8bit(*mailbox);
  if (mail && non_ascii && !cmd.mail.smtputf8) {
    return reject(553, "5.6.7", "Non-ASCII address requires the SMTPUTF8 parameter");
  }
  const auto at = find_at(*mailbox);
  const auto local = mailbox->substr(0, at);
  if (at != std::string_view::npos && local.size() > kMaxLocalPart) {
    return reject(553, "5.1.3", "Local part longer than 64 octets");
  }
  // RFC 5321 4.1.1.3: "RCPT TO:<Postmaster>" without a domain must be accepted.
  const bool postmaster = !mail && iequals(*mailbox, "postmaster");
  if (!postmaster && !is_valid_mailbox(*mailbox, true)) {
    return reject(553, "5.1.3",
                  mail ? "Bad sender address syntax" : "Bad recipient address syntax");
  }
  cmd.path = std::string(*mailbox);
  return cmd;
}

constexpr std::array<Keyword<Verb>, 14> kVerbs{{
    {"EHLO", Verb::kEhlo},
    {"HELO", Verb::kHelo},
    {"MAIL", Verb::kMail},
    {"RCPT", Verb::kRcpt},
    {"DATA", Verb::kData},
    {"BDAT", Verb::kBdat},
    {"RSET", Verb::kRset},
    {"NOOP", Verb::kNoop},
    {"QUIT", Verb::kQuit},
    {"VRFY", Verb::kVrfy},
    {"EXPN", Verb::kExpn},
    {"HELP", Verb::kHelp},
    {"STARTTLS", Verb::kStarttls},
    {"AUTH", Verb::kAuth},
}};

}  // namespace

std::optional<std::string> xtext_decode(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    const auto c = static_cast<unsigned char>(in[i]);
    if (c == '+') {
      if (i + 2 >= in.size()) return std::nullopt;
      const auto h = static_cast<unsigned char>(in[i + 1]);
      const auto l = static_cast<unsigned char>(in[i + 2]);
      if (!is_upper_hex(h) || !is_upper_hex(l)) return std::nullopt;
      auto nib = [](unsigned char x) { return is_digit(x) ? x - '0' : x - 'A' + 10; };
      out += static_cast<char>(nib(h) * 16 + nib(l));
      i += 2;
    } else if (c >= 33 && c <= 126 && c != '=') {
      out += static_cast<char>(c);
    } else {
      return std::nullopt;
    }
  }
  return out;
}

bool is_valid_mailbox(std::string_view address, bool utf8) {
  const auto at = find_at(address);
  if (at == std::string_view::npos || at == 0 || at + 1 >= address.size()) return false;
  if (!valid_local_part(address.substr(0, at), utf8)) return false;
  const auto domain = address.substr(at + 1);
  const bool domain_ok =
      domain.front() == '[' ? valid_address_literal(domain) : valid_domain(domain, utf8);
  if (!domain_ok) return false;
  return !has_8bit(address) || (utf8 && is_valid_utf8(address));
}

tl::expected<Command, Reply> parse_command(std::string_view line) {
  // Smuggling and injection defence: no CR, LF, NUL or other control may reach a parser.
  if (has_control(line)) {
    return reject(500, "5.5.2", "Syntax error: control characters are not allowed in commands");
  }
  while (!line.empty() && line.back() == ' ') line.remove_suffix(1);
  if (line.empty()) return reject(500, "5.5.2", "Syntax error: empty command");

  const auto space = line.find(' ');
  const auto verb_text = line.substr(0, space);
  const auto rest = space == std::string_view::npos ? std::string_view{} : line.substr(space + 1);

  Command cmd;
  cmd.verb = keyword_value(verb_text, kVerbs).value_or(Verb::kUnknown);
  if (cmd.verb == Verb::kMail || cmd.verb == Verb::kRcpt) return parse_path_command(cmd, rest);

  auto arg = rest;
  while (!arg.empty() && arg.front() == ' ') arg.remove_prefix(1);
  auto syntax = [](const char* usage) {
    return reject(501, "5.5.4", std::string("Syntax: ") + usage);
  };

  switch (cmd.verb) {
    case Verb::kEhlo:
    case Verb::kHelo: {
      const bool ok = !arg.empty() && (arg.front() == '[' ? valid_address_literal(arg)
                                                          : valid_domain(arg, false, true));
      if (!ok) return syntax(cmd.verb == Verb::kEhlo ? "EHLO domain" : "HELO domain");
      cmd.argument = std::string(arg);
      return cmd;
    }
    case Verb::kData:
    case Verb::kRset:
    case Verb::kQuit:
    case Verb::kStarttls:
      if (!arg.empty()) return syntax("the command takes no argument");
      return cmd;
    case Verb::kBdat: {
      const auto sp = arg.find(' ');
      auto size = parse_number(arg.substr(0, sp), false);
      if (!size) return syntax("BDAT chunk-size [LAST]");
      cmd.bdat_size = *size;
      if (sp != std::string_view::npos) {
        if (!iequals(arg.substr(sp + 1), "LAST")) return syntax("BDAT chunk-size [LAST]");
        cmd.bdat_last = true;
      }
      return cmd;
    }
    case Verb::kVrfy:
      if (arg.empty()) return syntax("VRFY address");
      cmd.argument = std::string(arg);
      return cmd;
    case Verb::kUnknown:
      cmd.argument = std::string(verb_text);
      return cmd;
    default:
      cmd.argument = std::string(arg);
      return cmd;
  }
}

}  // namespace bridgehead::smtp
