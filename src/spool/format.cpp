#include "spool/format.hpp"

#include <algorithm>

#include "spool/crc32c.hpp"

namespace bridgehead::spool::detail {

std::array<char, kFileHeaderSize> encode_file_header(std::string_view magic, std::uint64_t sequence) {
  std::array<char, kFileHeaderSize> h{};
  std::memcpy(h.data(), magic.data(), 8);
  put_u32(h.data() + 8, kFormatVersion);
  put_u32(h.data() + 12, 0);
  put_u64(h.data() + 16, sequence);
  put_u32(h.data() + 24, 0);
  put_u32(h.data() + 28, crc32c(0, h.data(), 28));
  return h;
}

FileHeader decode_file_header(std::string_view magic, std::string_view bytes) {
  FileHeader out;
  if (bytes.size() < kFileHeaderSize || bytes.substr(0, 8) != magic) return out;
  out.version = get_u32(bytes.data() + 8);
  out.sequence = get_u64(bytes.data() + 16);
  // The version is judged before the CRC: a newer build may have changed what the CRC
  // covers, and its files must be refused, never taken for torn garbage and removed.
  if (out.version < kOldestFormatVersion || out.version > kFormatVersion) {
    out.check = HeaderCheck::kUnknownVersion;
    return out;
  }
  if (get_u32(bytes.data() + 28) != crc32c(0, bytes.data(), 28) || get_u32(bytes.data() + 12) != 0) {
    return out;
  }
  out.check = HeaderCheck::kOk;
  return out;
}

std::array<char, kFrameHeaderSize> encode_frame_header(std::uint8_t type, std::uint8_t flags,
                                                      std::string_view prefix, std::string_view body) {
  std::array<char, kFrameHeaderSize> h{};
  std::memcpy(h.data(), kRecordMagic.data(), 4);
  h[4] = static_cast<char>(type);
  h[5] = static_cast<char>(flags);
  put_u16(h.data() + 6, 0);
  put_u32(h.data() + 8, static_cast<std::uint32_t>(prefix.size() + body.size()));
  std::uint32_t crc = crc32c(0, h.data() + 4, 8);
  crc = crc32c(crc, prefix);
  crc = crc32c(crc, body);
  put_u32(h.data() + 12, crc);
  return h;
}

std::optional<FrameHeader> decode_frame_header(std::string_view bytes) {
  if (bytes.size() < kFrameHeaderSize || bytes.substr(0, 4) != kRecordMagic) return std::nullopt;
  FrameHeader h;
  h.type = static_cast<std::uint8_t>(bytes[4]);
  h.flags = static_cast<std::uint8_t>(bytes[5]);
  h.length = get_u32(bytes.data() + 8);
  h.crc = get_u32(bytes.data() + 12);
  if (get_u16(bytes.data() + 6) != 0 || (h.flags & ~kFlagSkippable) != 0 || h.length > kMaxPayload) {
    return std::nullopt;
  }
  return h;
}

bool frame_crc_ok(std::string_view header_bytes, const FrameHeader& h, std::string_view payload) {
  std::uint32_t crc = crc32c(0, header_bytes.data() + 4, 8);
  return crc32c(crc, payload) == h.crc;
}

namespace {
std::size_t reply_len(const RecipientState& st) { return std::min(st.reply.size(), kMaxStateReply); }
std::size_t remote_len(const RecipientState& st) { return std::min(st.remote.size(), kMaxStateRemote); }
}  // namespace

std::size_t recipient_states_payload_size(const std::vector<RecipientState>& states) {
  std::size_t n = kStatePrefix;
  for (const auto& st : states) n += kStateEntryFixed + reply_len(st) + remote_len(st);
  return n;
}

std::string encode_recipient_states(MessageId id, const std::vector<RecipientState>& states) {
  std::string out(recipient_states_payload_size(states), '\0');
  char* p = out.data();
  put_u64(p, id);
  put_u32(p + 8, static_cast<std::uint32_t>(states.size()));
  p += kStatePrefix;
  for (const auto& st : states) {
    put_u32(p, st.index);
    p[4] = static_cast<char>(st.status);
    p[5] = static_cast<char>(st.delay_notice_sent ? 1 : 0);
    put_u32(p + 6, st.attempts);
    put_u64(p + 10, static_cast<std::uint64_t>(st.next_attempt));
    put_u64(p + 18, static_cast<std::uint64_t>(st.last_attempt));
    p += 26;
    const std::size_t r = reply_len(st);
    put_u16(p, static_cast<std::uint16_t>(r));
    std::memcpy(p + 2, st.reply.data(), r);
    p += 2 + r;
    const std::size_t m = remote_len(st);
    put_u16(p, static_cast<std::uint16_t>(m));
    std::memcpy(p + 2, st.remote.data(), m);
    p += 2 + m;
  }
  return out;
}

std::optional<DecodedStates> decode_recipient_states(std::string_view payload) {
  if (payload.size() < kStatePrefix) return std::nullopt;
  DecodedStates out;
  out.id = get_u64(payload.data());
  const std::uint32_t count = get_u32(payload.data() + 8);
  payload.remove_prefix(kStatePrefix);
  // A damaged count must not make us reserve gigabytes: every entry takes at least
  // kStateEntryFixed bytes of the payload.
  if (count > payload.size() / kStateEntryFixed) return std::nullopt;
  out.states.reserve(count);
  for (std::uint32_t i = 0; i < count; ++i) {
    if (payload.size() < kStateEntryFixed) return std::nullopt;
    const char* p = payload.data();
    RecipientState st;
    st.index = get_u32(p);
    const auto status = static_cast<std::uint8_t>(p[4]);
    if (status > static_cast<std::uint8_t>(RecipientStatus::kFailed)) return std::nullopt;
    st.status = static_cast<RecipientStatus>(status);
    st.delay_notice_sent = (static_cast<std::uint8_t>(p[5]) & 1) != 0;
    st.attempts = get_u32(p + 6);
    st.next_attempt = static_cast<std::int64_t>(get_u64(p + 10));
    st.last_attempt = static_cast<std::int64_t>(get_u64(p + 18));
    const std::size_t r = get_u16(p + 26);
    payload.remove_prefix(28);
    if (payload.size() < r + 2) return std::nullopt;
    st.reply.assign(payload.data(), r);
    const std::size_t m = get_u16(payload.data() + r);
    payload.remove_prefix(r + 2);
    if (payload.size() < m) return std::nullopt;
    st.remote.assign(payload.data(), m);
    payload.remove_prefix(m);
    out.states.push_back(std::move(st));
  }
  if (!payload.empty()) return std::nullopt;
  return out;
}

}  // namespace bridgehead::spool::detail
