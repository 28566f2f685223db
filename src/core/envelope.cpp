#include "core/envelope.hpp"

#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string_view>

#include <nlohmann/json.hpp>

namespace bridgehead {

namespace {
constexpr int kEnvelopeVersion = 1;

// Binary form: magic, version, then the fields in declaration order. Strings and counts
// are LEB128 lengths; received_at is zigzag so a negative time (a clock before 1970) stays
// short and exact.
constexpr unsigned char kBinaryMagic = 0xB5;
constexpr unsigned char kBinaryVersion = 1;

void put_varint(std::string& out, std::uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

void put_string(std::string& out, std::string_view s) {
  put_varint(out, s.size());
  out.append(s);
}

struct Reader {
  std::string_view in;
  bool ok = true;

  std::uint64_t varint() {
    std::uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (in.empty()) break;
      const auto b = static_cast<unsigned char>(in.front());
      in.remove_prefix(1);
      // The tenth byte may carry only the top bit of a 64-bit value.
      if (shift == 63 && b > 1) break;
      v |= static_cast<std::uint64_t>(b & 0x7F) << shift;
      if ((b & 0x80) == 0) return v;
    }
    ok = false;
    return 0;
  }
  std::uint8_t byte() {
    if (in.empty()) {
      ok = false;
      return 0;
    }
    const auto b = static_cast<std::uint8_t>(in.front());
    in.remove_prefix(1);
    return b;
  }
  std::string string() {
    const std::uint64_t n = varint();
    if (!ok || n > in.size()) {
      ok = false;
      return {};
    }
    std::string s(in.substr(0, n));
    in.remove_prefix(n);
    return s;
  }
  bool flag() {
    const std::uint8_t b = byte();
    if (b > 1) ok = false;
    return b == 1;
  }
};

// A JSON number read as an integer of type T, refused unless it is one and fits: nlohmann's
// get<T>() converts a float or a too-large value without a check, which is undefined
// behaviour for a float out of T's range (found by fuzz_envelope).
struct BadField : std::runtime_error {
  using std::runtime_error::runtime_error;
};

template <typename T>
T integer(const nlohmann::json& j, const char* key) {
  const auto& v = j.at(key);
  if (!v.is_number_integer()) throw BadField(std::string(key) + " is not an integer");
  if (v.is_number_unsigned()) {
    const auto u = v.get<std::uint64_t>();
    if (u > static_cast<std::uint64_t>(std::numeric_limits<T>::max())) throw BadField(std::string(key) + " is out of range");
    return static_cast<T>(u);
  }
  const auto n = v.get<std::int64_t>();
  if (n < static_cast<std::int64_t>(std::numeric_limits<T>::min()) ||
      (n > 0 && static_cast<std::uint64_t>(n) > static_cast<std::uint64_t>(std::numeric_limits<T>::max()))) {
    throw BadField(std::string(key) + " is out of range");
  }
  return static_cast<T>(n);
}

Error corrupt_envelope(std::string why) {
  return Error::permanent(ErrorCode::kCorrupt, "envelope record: " + std::move(why));
}

Expected<Envelope> decode_binary(std::string_view bytes) {
  Reader r{bytes.substr(2)};
  if (static_cast<unsigned char>(bytes[1]) != kBinaryVersion) return fail(corrupt_envelope("unknown version"));
  Envelope e;
  e.mail_from = r.string();
  const std::uint64_t n = r.varint();
  // Each recipient takes at least three bytes: a count past that is a lie, not a reason
  // to reserve memory for it.
  if (!r.ok || n > r.in.size() / 3) return fail(corrupt_envelope("recipient count past the record's end"));
  e.recipients.reserve(n);
  for (std::uint64_t i = 0; i < n && r.ok; ++i) {
    Recipient rc;
    rc.address = r.string();
    rc.notify = r.byte();
    rc.orcpt = r.string();
    e.recipients.push_back(std::move(rc));
  }
  const std::uint8_t body = r.byte();
  e.smtputf8 = r.flag();
  const std::uint8_t ret = r.byte();
  e.envid = r.string();
  e.declared_size = r.varint();
  e.helo = r.string();
  e.client_address = r.string();
  e.ingress_system = r.string();
  e.tls = r.flag();
  const std::uint64_t at = r.varint();
  e.received_at = static_cast<std::int64_t>(at >> 1) ^ -static_cast<std::int64_t>(at & 1);
  e.route_system = r.string();
  if (!r.ok) return fail(corrupt_envelope("truncated or malformed binary envelope"));
  if (!r.in.empty()) return fail(corrupt_envelope("bytes after the end of the binary envelope"));
  e.body = static_cast<BodyType>(body);
  e.ret = static_cast<DsnRet>(ret);
  if (!has_valid_values(e)) return fail(corrupt_envelope("unknown body type or RET value"));
  return e;
}
}  // namespace

std::string encode_envelope(const Envelope& e) {
  std::string out;
  out.reserve(64 + e.mail_from.size() + e.helo.size() + e.recipients.size() * 32);
  out.push_back(static_cast<char>(kBinaryMagic));
  out.push_back(static_cast<char>(kBinaryVersion));
  put_string(out, e.mail_from);
  put_varint(out, e.recipients.size());
  for (const auto& r : e.recipients) {
    put_string(out, r.address);
    out.push_back(static_cast<char>(r.notify));
    put_string(out, r.orcpt);
  }
  out.push_back(static_cast<char>(e.body));
  out.push_back(static_cast<char>(e.smtputf8 ? 1 : 0));
  out.push_back(static_cast<char>(e.ret));
  put_string(out, e.envid);
  put_varint(out, e.declared_size);
  put_string(out, e.helo);
  put_string(out, e.client_address);
  put_string(out, e.ingress_system);
  out.push_back(static_cast<char>(e.tls ? 1 : 0));
  const auto at = static_cast<std::uint64_t>(e.received_at);
  put_varint(out, (at << 1) ^ static_cast<std::uint64_t>(e.received_at >> 63));
  put_string(out, e.route_system);
  return out;
}

bool is_binary_envelope(std::string_view bytes) {
  return !bytes.empty() && static_cast<unsigned char>(bytes.front()) == kBinaryMagic;
}

bool has_valid_values(const Envelope& e) {
  return static_cast<std::uint8_t>(e.body) <= static_cast<std::uint8_t>(BodyType::kBinaryMime) &&
         static_cast<std::uint8_t>(e.ret) <= static_cast<std::uint8_t>(DsnRet::kHeaders);
}

std::string serialize(const Envelope& e) {
  nlohmann::json rcpts = nlohmann::json::array();
  for (const auto& r : e.recipients) {
    rcpts.push_back({{"a", r.address}, {"n", r.notify}, {"o", r.orcpt}});
  }
  nlohmann::json j = {{"v", kEnvelopeVersion},      {"from", e.mail_from},
                      {"rcpt", std::move(rcpts)},   {"body", static_cast<int>(e.body)},
                      {"utf8", e.smtputf8},         {"ret", static_cast<int>(e.ret)},
                      {"envid", e.envid},           {"size", e.declared_size},
                      {"helo", e.helo},             {"client", e.client_address},
                      {"system", e.ingress_system}, {"tls", e.tls},
                      {"at", e.received_at}};
  // Optional keys: absent in envelopes written before they existed.
  if (!e.route_system.empty()) j["route"] = e.route_system;
  // Invalid UTF-8 (an 8-bit HELO, say) must not make the spool refuse a message.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Expected<Envelope> deserialize_envelope(std::string_view text) {
  if (text.size() >= 2 && is_binary_envelope(text)) return decode_binary(text);
  auto j = nlohmann::json::parse(text, nullptr, false);
  auto corrupt = [](std::string why) {
    return fail(Error::permanent(ErrorCode::kCorrupt, "envelope record: " + std::move(why)));
  };
  if (j.is_discarded() || !j.is_object()) return corrupt("not a JSON object");
  try {
    if (integer<int>(j, "v") != kEnvelopeVersion) return corrupt("unknown version");
    Envelope e;
    e.mail_from = j.at("from").get<std::string>();
    for (const auto& r : j.at("rcpt")) {
      e.recipients.push_back(Recipient{r.at("a").get<std::string>(), integer<std::uint8_t>(r, "n"),
                                       r.at("o").get<std::string>()});
    }
    e.body = static_cast<BodyType>(integer<std::uint8_t>(j, "body"));
    e.smtputf8 = j.at("utf8").get<bool>();
    e.ret = static_cast<DsnRet>(integer<std::uint8_t>(j, "ret"));
    if (!has_valid_values(e)) return corrupt("unknown body type or RET value");
    e.envid = j.at("envid").get<std::string>();
    e.declared_size = integer<std::uint64_t>(j, "size");
    e.helo = j.at("helo").get<std::string>();
    e.client_address = j.at("client").get<std::string>();
    e.ingress_system = j.at("system").get<std::string>();
    e.tls = j.at("tls").get<bool>();
    e.received_at = integer<std::int64_t>(j, "at");
    if (auto it = j.find("route"); it != j.end()) e.route_system = it->get<std::string>();
    return e;
  } catch (const nlohmann::json::exception& ex) {
    return corrupt(ex.what());
  } catch (const BadField& ex) {
    return corrupt(ex.what());
  }
}

}  // namespace bridgehead
