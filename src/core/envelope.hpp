// Envelope: the RFC 5321 envelope of one message plus the DSN parameters (RFC 3461) that
// must travel with it. Shared vocabulary of ingress, spool and (later) queue and delivery;
// it owns no behaviour beyond (de)serialization.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/expected.hpp"

namespace bridgehead {

/// RFC 3461 NOTIFY flags; 0 means the client did not say (the DSN default applies).
enum NotifyFlags : std::uint8_t {
  kNotifyNone = 0,
  kNotifySuccess = 1,
  kNotifyFailure = 2,
  kNotifyDelay = 4,
  kNotifyNever = 8,
};

enum class BodyType : std::uint8_t { kUnspecified, k7Bit, k8BitMime, kBinaryMime };
enum class DsnRet : std::uint8_t { kUnspecified, kFull, kHeaders };

struct Recipient {
  std::string address;     ///< forward-path without angle brackets
  std::uint8_t notify = kNotifyNone;
  std::string orcpt;       ///< ORCPT as given, xtext-decoded ("rfc822;user@example"), or empty
  bool operator==(const Recipient&) const = default;
};

struct Envelope {
  std::string mail_from;   ///< reverse-path without angle brackets; empty is the null sender
  std::vector<Recipient> recipients;
  BodyType body = BodyType::kUnspecified;
  bool smtputf8 = false;
  DsnRet ret = DsnRet::kUnspecified;
  std::string envid;       ///< ENVID, xtext-decoded, or empty
  std::uint64_t declared_size = 0;  ///< SIZE= from MAIL, 0 when absent

  std::string helo;             ///< what the client said in EHLO/HELO
  std::string client_address;   ///< "ip:port" of the client
  std::string ingress_system;   ///< name of the system whose listener accepted it
  bool tls = false;             ///< whether the message arrived over TLS
  std::int64_t received_at = 0; ///< unix seconds of acceptance
  /// For mail the connector writes itself (DSNs): the system to deliver to when no system
  /// owns a recipient's domain (the one the original came from). Empty for received mail.
  std::string route_system;

  bool operator==(const Envelope&) const = default;
};

/// A compact, versioned JSON form of the envelope (quarantine records, control socket):
/// for files people and other tools read.
std::string serialize(const Envelope& e);
/// A versioned binary form (spool commit records): a few times smaller in memory than an
/// Envelope and decoded about a hundred times faster than the JSON form, which is what a
/// restart with a large backlog spends its time on. Starts with a byte that no JSON text
/// starts with, so both forms can be told apart.
std::string encode_envelope(const Envelope& e);
/// Parses what serialize() or encode_envelope() wrote; fails with kCorrupt on anything
/// else (including trailing bytes and values has_valid_values() refuses).
Expected<Envelope> deserialize_envelope(std::string_view text);
/// Whether `bytes` are in the binary form (its first byte), not the JSON form.
bool is_binary_envelope(std::string_view bytes);
/// Whether the body type and RET hold values that both forms read back; an envelope
/// without them cannot be stored (it would not decode again).
bool has_valid_values(const Envelope& e);

}  // namespace bridgehead
