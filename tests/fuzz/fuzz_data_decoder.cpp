// DataDecoder in both modes and both bare-linefeed policies, then the cleanup stage's
// header-section scan and loop check over what it decoded. The first byte picks the
// configuration, the next three the piece sizes: feeding in pieces must give exactly what
// feeding the whole stream gives, and the verdict with its position too.
#include <cstdint>
#include <string>

#include "cleanup/cleanup.hpp"
#include "fuzz_check.hpp"
#include "smtp/protocol/data_decoder.hpp"

namespace {

using bridgehead::fuzz::crlf_clean;
namespace smtp = bridgehead::smtp;

struct Run {
  std::string out;
  std::size_t consumed = 0;
  bool done = false;
  std::optional<smtp::Reply> verdict;
  smtp::ContentPosition verdict_at;
  std::uint64_t size = 0;
  std::optional<std::size_t> header_end;  // found as the listener does, piece by piece
};

Run run(smtp::DataDecoder::Mode mode, const smtp::ContentLimits& limits, std::string_view in,
        const std::uint8_t* pieces) {
  smtp::DataDecoder d(mode, limits);
  Run r;
  std::size_t pos = 0;
  for (unsigned i = 0; pos < in.size() && !d.done(); ++i) {
    const std::size_t want = pieces ? 1 + pieces[i % 3] % 17 : in.size();
    const auto piece = in.substr(pos, want);
    const std::size_t before = r.out.size();
    const auto n = d.feed(piece, r.out);
    if (!r.header_end) r.header_end = bridgehead::cleanup::header_section_end(r.out, before);
    FUZZ_CHECK(n <= piece.size());
    if (mode == smtp::DataDecoder::Mode::kBdat || !d.done()) FUZZ_CHECK(n == piece.size());
    r.consumed += n;
    pos += piece.size();
  }
  if (d.done()) FUZZ_CHECK(d.feed(in.substr(r.consumed), r.out) == 0);
  if (mode == smtp::DataDecoder::Mode::kBdat) d.finish(r.out);
  r.done = d.done();
  r.verdict = d.verdict();
  r.verdict_at = d.verdict_at();
  r.size = d.size();
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 4) return 0;
  const std::uint8_t config = data[0];
  const std::uint8_t* pieces = data + 1;
  const std::string_view in(reinterpret_cast<const char*>(data + 4), size - 4);

  const auto mode = (config & 1) ? smtp::DataDecoder::Mode::kBdat : smtp::DataDecoder::Mode::kData;
  smtp::ContentLimits limits;
  limits.bare_linefeed =
      (config & 2) ? smtp::BareLinefeedPolicy::kNormalize : smtp::BareLinefeedPolicy::kReject;
  if (config & 4) {
    limits.max_line_length = 2 + (config >> 4);
    limits.max_message_size = config >> 3;
  }
  const unsigned max_received = (config & 4) ? config >> 6 : 50;

  const Run whole = run(mode, limits, in, nullptr);
  const Run split = run(mode, limits, in, pieces);
  FUZZ_CHECK(whole.out == split.out);
  FUZZ_CHECK(whole.consumed == split.consumed);
  FUZZ_CHECK(whole.done == split.done);
  FUZZ_CHECK(whole.verdict == split.verdict);
  FUZZ_CHECK(whole.size == split.size);
  if (whole.verdict) FUZZ_CHECK(whole.verdict_at == split.verdict_at);
  // The header section's end, found piece by piece, is where a search of the whole finds it
  // (a finish() in BDAT may only add a line end after the last piece).
  const auto end = bridgehead::cleanup::header_section_end(whole.out);
  if (split.header_end) FUZZ_CHECK(end == split.header_end);
  if (end) {
    FUZZ_CHECK(*end <= whole.out.size());
    FUZZ_CHECK(whole.out.substr(*end - 2, 2) == "\r\n");
  }
  const std::string_view headers = std::string_view(whole.out).substr(0, end.value_or(whole.out.size()));
  if (const auto loop = bridgehead::cleanup::received_over_limit(headers, max_received)) {
    FUZZ_CHECK(loop->octet < headers.size() && headers[loop->octet] == ':');
    const auto reply = bridgehead::cleanup::first_problem(
        whole.verdict, whole.verdict_at,
        bridgehead::cleanup::Refusal{smtp::Reply{554, "5.4.6", "loop"}, *loop});
    FUZZ_CHECK(reply && (reply->code == 554) == (!whole.verdict || *loop < whole.verdict_at));
  }

  const Run& r = whole;
  FUZZ_CHECK(r.consumed <= in.size());
  FUZZ_CHECK(r.out.size() <= limits.max_message_size);
  FUZZ_CHECK(r.out.size() <= r.size);
  if (r.size > limits.max_message_size) FUZZ_CHECK(r.verdict.has_value());
  if (r.verdict) {
    const int c = r.verdict->code;
    FUZZ_CHECK(c == 550 || c == 500 || c == 552);
    FUZZ_CHECK(r.verdict_at.octet <= r.size);
  } else {
    // Accepted content is CRLF-only and within the line limit, whatever the wire had.
    FUZZ_CHECK(crlf_clean(r.out));
    std::size_t line = 0;
    for (char ch : r.out) {
      line = ch == '\n' ? 0 : line + 1;
      FUZZ_CHECK(line + 1 <= limits.max_line_length);
    }
  }
  if (limits.bare_linefeed == smtp::BareLinefeedPolicy::kNormalize) {
    // The size cut-off may fall between the CR and the LF of a line end.
    std::string_view out = r.out;
    if (r.size > limits.max_message_size && !out.empty() && out.back() == '\r')
      out.remove_suffix(1);
    FUZZ_CHECK(crlf_clean(out));
  }
  if (mode == smtp::DataDecoder::Mode::kBdat) {
    FUZZ_CHECK(!r.done && r.consumed == in.size());
  } else if (r.done) {
    // Only a real CRLF.CRLF (or "." CRLF at the very start) ends DATA.
    const auto head = in.substr(0, r.consumed);
    FUZZ_CHECK(head == ".\r\n" ||
               (head.size() >= 5 && head.substr(head.size() - 5) == "\r\n.\r\n"));
  } else {
    FUZZ_CHECK(r.consumed == in.size());
  }
  return 0;
}
