// A Session driven the way the listener drives it: command lines up to LF, DATA streams
// through a DataDecoder, BDAT chunks by their size, STARTTLS handshakes. The first byte
// picks the options. It must never crash, and the state must always match the envelope.
#include <cstdint>
#include <string>

#include "fuzz_check.hpp"
#include "smtp/protocol/data_decoder.hpp"
#include "smtp/protocol/session.hpp"

namespace {

using bridgehead::fuzz::has_control;
namespace smtp = bridgehead::smtp;
using smtp::SessionState;

void check_reply(const smtp::Reply& r) {
  FUZZ_CHECK(r.code >= 200 && r.code <= 599);
  if (!r.enhanced.empty()) FUZZ_CHECK(r.enhanced[0] == static_cast<char>('0' + r.code / 100));
  const std::string wire = r.render();
  FUZZ_CHECK(wire.size() >= 6 && wire.compare(wire.size() - 2, 2, "\r\n") == 0);
  FUZZ_CHECK(bridgehead::fuzz::crlf_clean(wire));
}

void check_state(const smtp::Session& s, const smtp::SessionOptions& o) {
  const auto& e = s.envelope();
  switch (s.state()) {
    case SessionState::kConnected:
    case SessionState::kReady:
      FUZZ_CHECK(e.recipients.empty() && e.mail_from.empty());
      FUZZ_CHECK((s.state() == SessionState::kConnected) == s.helo().empty());
      break;
    case SessionState::kMail:
      FUZZ_CHECK(e.recipients.empty());
      break;
    case SessionState::kRcpt:
    case SessionState::kData:
      FUZZ_CHECK(!e.recipients.empty());
      break;
    case SessionState::kBdat:
      FUZZ_CHECK(!e.recipients.empty() || s.discarding_content());
      break;
    case SessionState::kClosed:
      break;
  }
  FUZZ_CHECK(e.recipients.size() <= o.max_recipients);
  FUZZ_CHECK(!has_control(e.mail_from) && !has_control(e.helo) && !has_control(e.envid));
  for (const auto& r : e.recipients) {
    FUZZ_CHECK(!has_control(r.address) && !has_control(r.orcpt));
    if (!e.smtputf8) {
      for (unsigned char c : r.address) FUZZ_CHECK(c < 0x80);
    }
  }
  if (e.declared_size > 0) FUZZ_CHECK(e.declared_size <= o.max_message_size);
}

bool in_transaction(SessionState st) {
  return st == SessionState::kMail || st == SessionState::kRcpt || st == SessionState::kData ||
         st == SessionState::kBdat;
}

// The listener keeps content in progress only while transaction() stays the same: leaving a
// transaction must change the number, and staying in one must not.
void check_transaction(SessionState before, std::uint64_t number_before, const smtp::Session& s) {
  if (!in_transaction(before) || s.state() == SessionState::kClosed) return;
  if (in_transaction(s.state()))
    FUZZ_CHECK(s.transaction() == number_before);
  else
    FUZZ_CHECK(s.transaction() != number_before);
}

std::optional<smtp::Reply> check(const std::string& address) {
  if (!address.empty() && address[0] == 'x') return smtp::Reply{550, "5.1.1", "User unknown"};
  if (!address.empty() && address[0] == 't') return smtp::Reply{451, "4.3.0", "Try later"};
  return std::nullopt;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  smtp::SessionOptions o;
  o.hostname = "bridge.example";
  o.starttls_available = data[0] & 1;
  o.tls_active = data[0] & 2;
  o.max_recipients = 1 + (data[0] >> 5);
  o.max_message_size = 4096;
  o.max_junk_commands = 8;
  o.max_errors = 12;
  smtp::ContentLimits limits;
  limits.max_message_size = o.max_message_size;
  limits.max_line_length = 200;
  limits.bare_linefeed =
      (data[0] & 4) ? smtp::BareLinefeedPolicy::kNormalize : smtp::BareLinefeedPolicy::kReject;
  const bool storage_fails = data[0] & 8;

  smtp::Session s(o, check);
  check_reply(s.greeting());
  std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
  unsigned queued = 0;
  auto stored = [&]() -> tl::expected<std::string, smtp::Reply> {
    if (storage_fails) return tl::unexpected<smtp::Reply>(smtp::Reply{452, "4.3.1", "Spool full"});
    return "Q" + std::to_string(++queued);
  };

  while (!in.empty() && s.state() != SessionState::kClosed) {
    const auto lf = in.find('\n');
    std::string_view line = in.substr(0, lf);
    in.remove_prefix(lf == std::string_view::npos ? in.size() : lf + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);

    const auto before = s.state();
    const auto number = s.transaction();
    const auto a = line.size() > 512 ? s.on_line_too_long() : s.on_line(line);
    if (a.reply) check_reply(*a.reply);
    check_state(s, o);
    check_transaction(before, number, s);
    switch (a.next) {
      case smtp::NextStep::kContinue:
        FUZZ_CHECK(a.reply.has_value() && before != SessionState::kClosed);
        break;
      case smtp::NextStep::kClose:
        FUZZ_CHECK(s.state() == SessionState::kClosed);
        break;
      case smtp::NextStep::kStartTls:
        FUZZ_CHECK(a.reply && a.reply->code == 220 && o.starttls_available && !s.tls_active());
        in = {};  // plaintext pipelined behind STARTTLS is discarded
        s.on_tls_started();
        FUZZ_CHECK(s.state() == SessionState::kConnected && s.tls_active());
        break;
      case smtp::NextStep::kReadData: {
        FUZZ_CHECK(a.reply && a.reply->code == 354 && s.state() == SessionState::kData);
        smtp::DataDecoder d(smtp::DataDecoder::Mode::kData, limits);
        std::string out;
        in.remove_prefix(d.feed(in, out));
        if (!d.done()) return 0;  // the connection would time out
        const auto data_number = s.transaction();
        const auto end = s.on_message_end(d.verdict(), stored());
        check_transaction(SessionState::kData, data_number, s);
        FUZZ_CHECK(end.reply.has_value());
        check_reply(*end.reply);
        if (end.reply->code == 250) FUZZ_CHECK(!d.verdict() && !storage_fails);
        break;
      }
      case smtp::NextStep::kReadBdatChunk: {
        FUZZ_CHECK(!a.reply && s.state() == SessionState::kBdat);
        const auto& cmd = s.last_command();
        FUZZ_CHECK(cmd.verb == smtp::Verb::kBdat);
        if (cmd.bdat_size > in.size()) return 0;
        const bool last = cmd.bdat_last;
        const auto chunk_size = cmd.bdat_size;
        const bool discarding = s.discarding_content();
        smtp::DataDecoder d(smtp::DataDecoder::Mode::kBdat, limits);
        std::string out;
        d.feed(in.substr(0, static_cast<std::size_t>(chunk_size)), out);
        in.remove_prefix(static_cast<std::size_t>(chunk_size));
        if (last) d.finish(out);
        const auto chunk_number = s.transaction();
        const auto r = last ? s.on_message_end(d.verdict(), stored())
                            : s.on_bdat_chunk(chunk_size, d.verdict());
        check_transaction(SessionState::kBdat, chunk_number, s);
        FUZZ_CHECK(r.reply.has_value());
        check_reply(*r.reply);
        if (discarding) FUZZ_CHECK(!r.reply->positive());
        if (last) FUZZ_CHECK(s.state() != SessionState::kBdat);
        break;
      }
    }
    check_state(s, o);
  }
  return 0;
}
