// The connector's configuration: one TOML file, every setting declared once in the table
// in settings.cpp. That table drives loading, validation (`bridgehead check`), the
// defaults (`bridgehead config --defaults`) and docs/configuration.md, so they cannot
// disagree. This component reads and checks; it does not act on the settings.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "directory/sync/sync_settings.hpp"
#include "queue/retry_schedule.hpp"
#include "smtp/client/tls_policy.hpp"
#include "smtp/server/server_settings.hpp"
#include "spool/spool.hpp"

namespace bridgehead::config {

enum class SystemKind { kExchange, kDomino, kSmtp };
enum class DeliveryMethod { kSmtp, kLmtp, kMaildir };

struct Endpoint {
  std::string host;  ///< literal IP (IPv4 or IPv6 without brackets) or a name
  std::uint16_t port = 0;
};

struct DeliveryTarget {
  DeliveryMethod method = DeliveryMethod::kMaildir;
  Endpoint endpoint;          ///< smtp, lmtp
  std::string path;           ///< maildir root (one Maildir per recipient below it)
  unsigned concurrency = 10;  ///< parallel connections (or Maildir writers) to this system
  smtp::client::TlsPolicy tls = smtp::client::TlsPolicy::kOpportunistic;  ///< smtp, lmtp: STARTTLS policy
  std::string tls_ca_file;  ///< PEM CAs that verify the server with smtp::client::TlsPolicy::kRequired
  /// The name the server's certificate must carry with smtp::client::TlsPolicy::kRequired; empty: the host
  /// of `endpoint` (which check() then requires to be a name, not an IP address).
  std::string tls_verify_name;
  std::chrono::seconds timeout{300};  ///< connect and per-reply timeout (data: twice this)
};

struct SystemConfig {
  std::string name;  ///< "exchange", "notes": names processes too
  SystemKind kind = SystemKind::kSmtp;
  std::vector<std::string> domains;  ///< mail domains of this system, lower case
  Endpoint listen;                   ///< ingress listener: mail FROM this system
  std::string tls_cert_file;         ///< PEM; with tls_key_file enables STARTTLS
  std::string tls_key_file;
  /// PEM certifiers whose client certificates the listener requires (and STARTTLS before
  /// MAIL); empty: no client certificate asked for.
  std::string tls_client_ca_file;
  std::vector<std::string> recipients;  ///< static recipient list (lower case) until dirsync
  DeliveryTarget delivery;              ///< where mail TO this system goes
  /// [system.directory]: where this system's directory is read, and the other system's
  /// contacts written; present only when the table is. `system` is this system's name,
  /// `routing_domain` its first domain, `profile` from `kind` unless set.
  std::optional<directory::sync::DirectorySettings> directory;
};

struct QueueSettings {
  /// retry_delays, lifetime, delay_notice_after (0 = never); their defaults are the queue's.
  queue::RetryOptions retry;
  std::filesystem::path quarantine_dir;  ///< poison messages go here (default state_dir/quarantine)
};

struct IdentitySettings {
  std::filesystem::path id_file;           ///< the connector ID (PKCS#12); empty: none
  std::filesystem::path id_password_file;  ///< the first password source; empty: not configured
};

struct Config {
  std::filesystem::path file;                               ///< where it was loaded from
  std::string hostname;                                     ///< [connector] hostname
  std::filesystem::path state_dir = "/var/lib/bridgehead";  ///< [connector] state_dir
  std::string user;                                         ///< [connector] user: the service user when started as root
  std::string group;                                        ///< [connector] group; empty: the user's primary group
  std::string log_level = "info";
  std::filesystem::path control_socket;  ///< [admin] control_socket (default state_dir/control.sock)
  std::filesystem::path tracking_file;   ///< [tracking] file (default state_dir/tracking.jsonl)
  unsigned control_socket_mode = 0600;
  std::filesystem::path spool_dir;  ///< [spool] dir (default state_dir/spool)
  std::uint64_t spool_segment_size = spool::SpoolOptions{}.segment_size;
  IdentitySettings identity;
  smtp::ServerSettings smtp;  ///< [smtp]: the listeners' limits, with the defaults of the parts that enforce them
  QueueSettings queue;
  std::vector<SystemConfig> systems;
  /// [dirsync]; `directories` holds a copy of every system's `directory`, in [[system]] order.
  directory::sync::SyncSettings dirsync;
};

/// One thing wrong with a config file: where, and a sentence that says how to fix it.
struct Problem {
  std::string file;
  int line = 0;  ///< 1-based; 0 when the problem is about the whole file
  int column = 0;
  std::string message;
  /// "file:line:column: message" (what `bridgehead check` prints, one per line); "file: message"
  /// when line is 0
  std::string describe() const;
};

struct LoadResult {
  std::optional<Config> config;   ///< set only when problems is empty
  std::vector<Problem> problems;  ///< every problem found, not just the first
};

/// Loads and validates a config file. Relative paths in it are relative to the file.
LoadResult load(const std::filesystem::path& file);
/// Same, from text (for tests); `name` is used in problem locations.
LoadResult load_string(std::string_view toml_text, const std::string& name,
                       const std::filesystem::path& base_dir = ".");

/// A complete, commented TOML file with every setting at its default.
std::string defaults_toml();
/// The configuration reference in Markdown (docs/configuration.md is this, verbatim).
std::string reference_markdown();
/// The complete example file shown at the end of reference_markdown(); it loads cleanly.
std::string example_toml();

}  // namespace bridgehead::config
