#include "cleanup/cleanup.hpp"

#include <utility>

#include "core/text.hpp"

namespace bridgehead::cleanup {

namespace {
bool is_received(std::string_view name) {
  return iequals(name.substr(0, name.find_last_not_of(" \t") + 1), "received");
}
constexpr std::size_t kMaxHeaderName = 16;  // enough to recognise "Received" with stray blanks
}  // namespace

Cleanup::Cleanup(Options options) : options_(std::move(options)) {}

tl::expected<void, Refusal> Cleanup::run(Message& message, std::int64_t unix_time) const {
  if (auto at = received_over_limit(message.headers, options_.max_received_headers)) {
    return tl::unexpected(Refusal{smtp::Reply{554, "5.4.6", "Too many Received headers: mail loop detected"}, *at});
  }
  // The trace header records the message as it arrived, before a step rewrote it (as
  // Postfix's smtpd writes it before its cleanup rewrites addresses).
  std::string trace = make_received_header(message.envelope, options_.hostname, message.queue_id, unix_time,
                                           message.esmtp);
  // A step's refusal is about the message as a whole; it is placed at the end of the header
  // section, so a transfer problem in the header section (a bare LF) is still named first.
  const smtp::ContentPosition end_of_headers{message.headers.size(), smtp::ContentPosition::Check::kHeader};
  for (const auto& step : options_.steps) {
    if (auto applied = step->apply(message); !applied) return tl::unexpected(Refusal{applied.error(), end_of_headers});
  }
  message.headers.insert(0, trace);
  return {};
}

std::optional<std::size_t> header_section_end(std::string_view content, std::size_t from) {
  if (content.starts_with("\r\n")) return 2;  // no header fields at all
  const std::size_t start = from > 3 ? from - 3 : 0;
  const std::size_t blank = content.find("\r\n\r\n", start);
  if (blank == std::string_view::npos) return std::nullopt;
  return blank + 4;
}

std::optional<smtp::ContentPosition> received_over_limit(std::string_view headers, unsigned max) {
  unsigned received = 0;
  std::size_t line = 0;
  while (line < headers.size()) {
    const std::size_t eol = headers.find("\r\n", line);
    const std::size_t end = eol == std::string_view::npos ? headers.size() : eol;
    if (end == line) break;  // the empty line: the body follows, and its lines never count
    const char first = headers[line];
    // A continuation line (leading blank) is not a new field.
    if (first != ' ' && first != '\t') {
      const std::string_view text = headers.substr(line, end - line);
      const std::size_t colon = text.find(':');
      if (colon != std::string_view::npos && colon <= kMaxHeaderName && is_received(text.substr(0, colon)) &&
          ++received > max) {
        return smtp::ContentPosition{line + colon, smtp::ContentPosition::Check::kHeader};
      }
    }
    if (eol == std::string_view::npos) break;
    line = eol + 2;
  }
  return std::nullopt;
}

std::optional<smtp::Reply> first_problem(const std::optional<smtp::Reply>& decoder_verdict,
                                         smtp::ContentPosition decoder_at, const std::optional<Refusal>& refusal) {
  if (refusal && (!decoder_verdict || refusal->at < decoder_at)) return refusal->reply;
  return decoder_verdict;
}

}  // namespace bridgehead::cleanup
