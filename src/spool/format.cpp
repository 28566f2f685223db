#include "spool/format.hpp"

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
  if (out.version != kFormatVersion) {
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

}  // namespace bridgehead::spool::detail
