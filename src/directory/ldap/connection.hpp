// directory/ldap/connection: one blocking LDAPv3 connection over OpenLDAP's libldap: connect
// (ldap:// with optional StartTLS, or ldaps://), bind (simple, or SASL EXTERNAL with the
// connector ID's certificate and key handed to libldap in memory), paged searches (RFC 2696)
// that say whether the read was complete, AD's ranged retrieval continued transparently, and
// the writes (add, modify, delete, rename). Blocking: dirsync runs it off the I/O thread; one
// thread uses a Connection at a time. What to synchronize is dirsync's business, not this.
#pragma once

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/expected.hpp"
#include "directory/entry.hpp"
#include "identity/id_file.hpp"
#include "identity/password.hpp"

struct ldap;  // libldap's LDAP handle; ldap.h stays out of this header

namespace bridgehead::directory::ldap {

/// AD's MaxPageSize default, and the largest page this client asks for.
inline constexpr int kMaxPageSize = 1000;

enum class TlsMode {
  kNone,      ///< plain ldap:// (an ldaps:// URI is TLS from the start whatever this says)
  kStartTls,  ///< ldap:// upgraded with StartTLS (RFC 4511 4.14) before the bind
};

struct Timeouts {
  std::chrono::milliseconds connect{10'000};    ///< TCP connect (and the TLS handshake of ldaps://)
  std::chrono::milliseconds operation{60'000};  ///< each request: bind, StartTLS, one search page, one write
};

/// A simple bind (RFC 4513 5.1). An empty DN and password bind anonymously.
struct SimpleBind {
  std::string dn;
  identity::SecretString password;  ///< e.g. from identity::read_password_file()
};

/// SASL EXTERNAL (RFC 4422 appendix A) over TLS: the server takes the identity from the
/// client certificate. Certificate and key are the connector ID's, given to libldap as DER
/// in memory (LDAP_OPT_X_TLS_CERT / LDAP_OPT_X_TLS_KEY): the key is never written to a file.
struct SaslExternalBind {
  std::shared_ptr<const identity::ConnectorId> id;
};

using Bind = std::variant<SimpleBind, SaslExternalBind>;

struct Options {
  std::string uri;  ///< "ldap://host:port" or "ldaps://host:port"
  TlsMode tls = TlsMode::kNone;
  /// PEM file of the CAs that may certify the server; empty: the system's trust store. The
  /// server's certificate must name the URI's host (DNS or IP subjectAltName; its CN when it
  /// has none). libldap checks the host "localhost" against this machine's host name instead.
  /// libldap also reads /etc/ldap/ldap.conf, ~/.ldaprc and LDAP* variables; what is set here
  /// (certificate checking, timeouts, CA file) overrides them.
  std::filesystem::path ca_file;
  Timeouts timeouts;
  Bind bind;
  int page_size = kMaxPageSize;  ///< 1 .. kMaxPageSize
};

/// Checks `options` without touching the network: the URI's scheme, StartTLS only on ldap://,
/// SASL EXTERNAL only over TLS and with an ID, the page size, positive timeouts. Fails with
/// kInvalidArgument naming the option.
Expected<void> check_options(const Options& options);

enum class Scope { kBase, kOneLevel, kSubtree };

/// A request control sent with a search besides paging, e.g. AD's show-deleted
/// (1.2.840.113556.1.4.417, no value). Used by the change feeds (change_feed.hpp).
struct RequestControl {
  std::string oid;
  std::string value;  ///< BER octets; empty: no value
  bool critical = false;
};

struct SearchRequest {
  std::string base;
  Scope scope = Scope::kSubtree;
  std::string filter = "(objectClass=*)";
  std::vector<std::string> attributes;  ///< empty: all user attributes
  bool paged = true;                    ///< RFC 2696 paged results (critical), Options::page_size a page
  /// Sent with every page besides the paging control.
  std::vector<RequestControl> controls;
};

/// Why a search read less than everything.
enum class Completeness {
  kComplete,         ///< every matching entry was delivered
  kSizeLimit,        ///< the server stopped at its size limit (sizeLimitExceeded, adminLimitExceeded)
  kTimeLimit,        ///< the server's time limit, or no answer within Timeouts::operation
  kPagingError,      ///< the server did not page as asked (no or bad paged-results control)
  kDisconnected,     ///< the connection broke
  kServerError,      ///< the server ended the search with an error after entries had come
  kRangeError,       ///< a ranged attribute (AD) could not be read in full
  kStoppedByCaller,  ///< the callback returned false
};
/// "complete", "size-limit", "time-limit", "paging-error", "disconnected", "server-error",
/// "range-error", "stopped".
std::string_view to_string(Completeness c);

struct SearchOutcome {
  Completeness completeness = Completeness::kComplete;
  std::size_t entries = 0;       ///< delivered to the callback
  std::size_t pages = 0;         ///< search requests sent (1 for an unpaged search)
  std::optional<Error> problem;  ///< why incomplete, with the remedy; nullopt when complete
  /// Only a complete read may be taken as "the directory holds nothing else": dirsync must
  /// not delete after an incomplete one.
  bool complete() const { return completeness == Completeness::kComplete; }
};

/// Called once per entry, in the order the server sends them; return false to stop.
using EntryCallback = std::function<bool(Entry entry)>;

enum class ModifyOp { kAdd, kDelete, kReplace };

/// One change of one attribute (RFC 4511 4.6): add `values`; delete `values` (all values
/// when empty); replace with `values` (remove the attribute when empty).
struct Modification {
  ModifyOp op = ModifyOp::kReplace;
  std::string attribute;
  std::vector<std::string> values;
  bool operator==(const Modification&) const = default;  ///< exact (dirsync's Operation compares by it)
};

class Connection {
 public:
  /// Connects, runs StartTLS when asked, and binds. Errors name the URI and say what to do:
  /// kInvalidArgument (check_options), kUnavailable ("cannot connect to URI: connection
  /// refused"), kTimeout, kCertificate (TLS refused the server's certificate: check ca_file),
  /// kWrongPassword (invalid credentials for the DN), kPermission, kConfig.
  static Expected<Connection> open(Options options);

  Connection(Connection&& other) noexcept;
  Connection& operator=(Connection&& other) noexcept;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection();  ///< unbinds

  const std::string& uri() const { return uri_; }

  /// Searches and hands each entry to `on_entry`, with AD's ranged attributes already read in
  /// full under their plain names. Fails (nothing is known) when the request cannot be sent or
  /// the server rejects it before any entry came (no such base DN, bad filter, no access);
  /// everything after that, and every disconnect, limit or timeout, is told in the outcome.
  Expected<SearchOutcome> search(const SearchRequest& request, const EntryCallback& on_entry);

  /// The identity the server sees for this connection (RFC 4532): "dn:cn=...", "" for anonymous.
  Expected<std::string> who_am_i();

  /// Adds `entry` with all its attributes. kInvalidArgument for "entry already exists" and
  /// schema violations, kPermission, kNotFound (parent missing), as the server says.
  Expected<void> add(const Entry& entry);
  /// Applies `changes` to `dn` in one request, atomically on the server.
  Expected<void> modify(std::string_view dn, const std::vector<Modification>& changes);
  /// Deletes the leaf entry `dn`.
  Expected<void> remove(std::string_view dn);
  /// Renames `dn` to `new_rdn` ("cn=New Name"), below `new_superior` when given (a move).
  Expected<void> rename(std::string_view dn, std::string_view new_rdn,
                        const std::optional<std::string>& new_superior = std::nullopt, bool delete_old_rdn = true);

  // ---- For the change feeds beside this class (content_sync.hpp, change_feed.hpp) ----------
  /// libldap's handle, for requests this class does not make itself (RFC 4533's search with
  /// its intermediate responses, left open while persisting). Still owned by the Connection;
  /// the one-thread-at-a-time rule holds for it too.
  ::ldap* native_handle() const { return ld_; }
  const Timeouts& timeouts() const { return timeouts_; }
  // ---- end of the change feeds' block --------------------------------------------------------

 private:
  Connection(::ldap* ld, std::string uri, Timeouts timeouts, int page_size);
  Error last_error(int code, std::string_view operation) const;
  Expected<void> read_ranges(Entry& entry);

  ::ldap* ld_ = nullptr;
  std::string uri_;
  Timeouts timeouts_;
  int page_size_ = kMaxPageSize;

  // ---- The batch writer beside this class (writer.hpp) sends its requests on ld_ -----------
  friend class Writer;
};

}  // namespace bridgehead::directory::ldap
