// The spool's on-disk format: file headers and record frames (docs/spool.md is the
// byte-by-byte description). Internal to the spool; pure, no I/O.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "spool/spool.hpp"

namespace bridgehead::spool::detail {

// Every integer on disk is little-endian.
inline void put_u16(char* p, std::uint16_t v) {
  for (int i = 0; i < 2; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xFF);
}
inline void put_u32(char* p, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xFF);
}
inline void put_u64(char* p, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xFF);
}
inline std::uint16_t get_u16(const char* p) {
  return static_cast<std::uint16_t>(static_cast<unsigned char>(p[0]) |
                                    (static_cast<unsigned char>(p[1]) << 8));
}
inline std::uint32_t get_u32(const char* p) {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}
inline std::uint64_t get_u64(const char* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

// ---- File header (32 bytes), the same layout for segments, journals and the state file.
//  0  8  magic ("BHSEGMNT", "BHJOURNL", "BHSTATE\0")
//  8  4  format version
// 12  4  flags (0; a reader refuses bits it does not know)
// 16  8  sequence: segment number, journal number, or boot generation for the state file
// 24  4  reserved (0)
// 28  4  CRC32C of bytes 0..27
inline constexpr std::size_t kFileHeaderSize = 32;
/// Written by this build. 2: commit records hold the binary envelope (encode_envelope),
/// which a version-1 reader would take for damage and set every message aside; so such a
/// reader must refuse the spool, untouched, instead.
inline constexpr std::uint32_t kFormatVersion = 2;
/// The oldest version this build reads (1: JSON envelopes in commit records).
inline constexpr std::uint32_t kOldestFormatVersion = 1;
inline constexpr std::string_view kSegmentMagic{"BHSEGMNT", 8};
inline constexpr std::string_view kJournalMagic{"BHJOURNL", 8};
inline constexpr std::string_view kStateMagic{"BHSTATE\0", 8};

std::array<char, kFileHeaderSize> encode_file_header(std::string_view magic, std::uint64_t sequence);

enum class HeaderCheck {
  kOk,
  kDamaged,         ///< short, wrong magic or bad CRC: torn (last file) or corrupt
  kUnknownVersion,  ///< a well-formed header of a version this build cannot read
};
struct FileHeader {
  HeaderCheck check = HeaderCheck::kDamaged;
  std::uint32_t version = 0;
  std::uint64_t sequence = 0;
};
FileHeader decode_file_header(std::string_view magic, std::string_view bytes);

// ---- Record frame (16-byte header + payload)
//  0  4  magic "BHrc"
//  4  1  type
//  5  1  flags: bit 0 = kSkippable, a reader that does not know `type` may skip the record
//  6  2  reserved (0)
//  8  4  payload length
// 12  4  CRC32C of bytes 4..11 followed by the payload
// 16  .. payload
inline constexpr std::size_t kFrameHeaderSize = 16;
inline constexpr std::string_view kRecordMagic{"BHrc", 4};
inline constexpr std::uint8_t kFlagSkippable = 1;
/// Larger lengths are damage, not data: bounds what recovery ever reads into memory.
inline constexpr std::uint32_t kMaxPayload = 64u << 20;
/// Appends larger than this are split into several CHUNK records.
inline constexpr std::size_t kMaxChunkContent = 1u << 20;

enum RecordType : std::uint8_t {
  // segment records
  kChunk = 1,   ///< u64 id, u32 chunk index, content
  kCommit = 2,  ///< u64 id, u64 size, u32 chunks, u32 digest, u32 envelope length, envelope
  // journal records
  kFinished = 16,        ///< u64 id
  kRecipientState = 17,  ///< u64 id, u32 count, count x recipient state; always kFlagSkippable
};

inline constexpr std::size_t kChunkPrefix = 12;
inline constexpr std::size_t kCommitPrefix = 28;

// ---- RECIPIENT_STATE payload
//  0  8  message id
//  8  4  count
// 12  .. count entries, each:
//        0  4  recipient index
//        4  1  status (RecipientStatus, 0..3)
//        5  1  flags: bit 0 = delay_notice_sent; other bits 0, ignored by readers
//        6  4  attempts
//       10  8  next_attempt (signed)
//       18  8  last_attempt (signed)
//       26  2  reply length r, then r bytes
//     28+r  2  remote length m, then m bytes
inline constexpr std::size_t kStatePrefix = 12;
inline constexpr std::size_t kStateEntryFixed = 30;
/// Longer replies and remotes are cut to these sizes when recorded (the reply is a
/// diagnostic for a person or a DSN, not something anything parses in full).
inline constexpr std::size_t kMaxStateReply = 1000;
inline constexpr std::size_t kMaxStateRemote = 255;

/// Size of the RECIPIENT_STATE payload for `states` (replies and remotes longer than the
/// limits count at the limit, as encode writes them).
std::size_t recipient_states_payload_size(const std::vector<RecipientState>& states);
std::string encode_recipient_states(MessageId id, const std::vector<RecipientState>& states);
struct DecodedStates {
  MessageId id = 0;
  std::vector<RecipientState> states;
};
/// nullopt when the payload does not parse exactly (short, trailing bytes, unknown status).
std::optional<DecodedStates> decode_recipient_states(std::string_view payload);

/// Builds the 16-byte frame header for a payload given as `prefix` + `body` (the body is
/// passed separately so large content is never copied).
std::array<char, kFrameHeaderSize> encode_frame_header(std::uint8_t type, std::uint8_t flags,
                                                      std::string_view prefix, std::string_view body);

/// Frame header fields that can be read before the payload is checked.
struct FrameHeader {
  std::uint8_t type = 0;
  std::uint8_t flags = 0;
  std::uint32_t length = 0;
  std::uint32_t crc = 0;
};
/// Parses a frame header; nullopt when the magic, the reserved bits or the length are wrong.
std::optional<FrameHeader> decode_frame_header(std::string_view bytes);
/// Whether the CRC in `h` matches the header bytes and `payload`.
bool frame_crc_ok(std::string_view header_bytes, const FrameHeader& h, std::string_view payload);

/// The message-content digest kept in a COMMIT: CRC32C over the CRCs of its CHUNK records
/// (4 bytes little-endian each, in chunk order). Chunks already carry their own CRC, so
/// this only has to catch a missing, extra or reordered chunk, and costs no second pass
/// over the content.
inline std::uint32_t extend_digest(std::uint32_t digest, std::uint32_t chunk_crc);

}  // namespace bridgehead::spool::detail

#include "spool/crc32c.hpp"

namespace bridgehead::spool::detail {
inline std::uint32_t extend_digest(std::uint32_t digest, std::uint32_t chunk_crc) {
  char b[4];
  put_u32(b, chunk_crc);
  return crc32c(digest, b, 4);
}
}  // namespace bridgehead::spool::detail
