#include "smtp/client/reply_reader.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <iterator>
#include <utility>

#include "core/text.hpp"
#include "smtp/client/connection.hpp"

namespace bridgehead::smtp::client {

namespace {

bool is_enhanced_code(std::string_view s) {
  // "d.ddd.ddd" (RFC 3463), class 2, 4 or 5.
  if (s.size() < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.') return false;
  std::size_t dots = 0;
  for (std::size_t i = 2; i < s.size(); ++i) {
    if (s[i] == '.') {
      if (s[i - 1] == '.') return false;
      ++dots;
    } else if (!std::isdigit(static_cast<unsigned char>(s[i]))) {
      return false;
    }
  }
  return dots == 1 && s.back() != '.';
}

std::string_view first_word(std::string_view s) { return s.substr(0, s.find(' ')); }

}  // namespace

std::string ServerReply::enhanced() const {
  if (lines.empty() || !is_enhanced_code(first_word(lines.front()))) return {};
  return std::string(first_word(lines.front()));
}

std::string ServerReply::one_line() const {
  std::string out = std::to_string(code);
  std::string_view enhanced;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    std::string_view text = lines[i];
    if (i == 0) {
      if (is_enhanced_code(first_word(text))) enhanced = first_word(text);
    } else if (!enhanced.empty() && first_word(text) == enhanced) {
      text.remove_prefix(std::min(text.size(), enhanced.size() + 1));
    }
    if (text.empty()) continue;
    out += ' ';
    out += text;
  }
  // Reply text goes into logs, error messages, the queue listing and DSNs: what the server
  // put there must not break a line or reach a terminal as control sequences.
  return escape_control(out);
}

ReplyReader::Status ReplyReader::next(ServerReply& out) {
  // Parse from the start of the reply each time: a reply is complete only with its last
  // line, and replies are short, so re-reading the first lines costs nothing.
  std::size_t p = pos_;
  int code = 0;
  std::vector<std::string> lines;
  for (;;) {
    const std::size_t nl = in_.find('\n', p);
    if (nl == std::string::npos) {
      if (in_.size() - pos_ > kMaxReply) {
        bad_line_ = escape_control(std::string_view(in_).substr(p, 200));
        return Status::kMalformed;
      }
      return Status::kNeedMore;
    }
    std::string_view line(in_.data() + p, nl - p);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const bool shape =
        line.size() >= 3 && line[0] >= '2' && line[0] <= '5' && std::isdigit(static_cast<unsigned char>(line[1])) &&
        std::isdigit(static_cast<unsigned char>(line[2])) && (line.size() == 3 || line[3] == ' ' || line[3] == '-');
    const int line_code = shape ? (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0') : 0;
    if (!shape || (code != 0 && line_code != code) || nl + 1 - pos_ > kMaxReply) {
      bad_line_ = escape_control(line.substr(0, 200));
      return Status::kMalformed;
    }
    code = line_code;
    lines.emplace_back(line.size() > 4 ? line.substr(4) : std::string_view());
    p = nl + 1;
    if (line.size() == 3 || line[3] == ' ') break;
  }
  pos_ = p;
  if (pos_ == in_.size()) {
    in_.clear();
    pos_ = 0;
  } else if (pos_ > kMaxReply) {
    in_.erase(0, pos_);
    pos_ = 0;
  }
  out.code = code;
  out.lines = std::move(lines);
  return Status::kComplete;
}

void parse_capabilities(const ServerReply& ehlo, Capabilities& caps) {
  caps = Capabilities{};
  for (std::size_t i = 1; i < ehlo.lines.size(); ++i) {
    std::string_view line = ehlo.lines[i];
    const std::string_view keyword = first_word(line);
    // The extensions that are only announced, with no argument we use.
    static constexpr std::pair<std::string_view, bool Capabilities::*> kFlags[] = {
        {"PIPELINING", &Capabilities::pipelining}, {"8BITMIME", &Capabilities::eight_bit_mime},
        {"SMTPUTF8", &Capabilities::smtputf8},     {"DSN", &Capabilities::dsn},
        {"STARTTLS", &Capabilities::starttls},     {"ENHANCEDSTATUSCODES", &Capabilities::enhanced_status_codes},
        {"CHUNKING", &Capabilities::chunking},
    };
    const auto flag =
        std::find_if(std::begin(kFlags), std::end(kFlags), [&](const auto& f) { return iequals(keyword, f.first); });
    if (flag != std::end(kFlags)) {
      caps.*(flag->second) = true;
    } else if (iequals(keyword, "SIZE")) {
      // "SIZE" alone or "SIZE 0" means no announced limit (RFC 1870 4).
      std::string_view arg = line.substr(keyword.size());
      while (!arg.empty() && arg.front() == ' ') arg.remove_prefix(1);
      std::uint64_t limit = 0;
      auto [ptr, ec] = std::from_chars(arg.data(), arg.data() + arg.size(), limit);
      caps.size = ec == std::errc() ? limit : 0;
    }
  }
}

}  // namespace bridgehead::smtp::client
