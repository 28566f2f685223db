// The connector ID: a private key, its certificate and the certifier chain, kept in a
// PKCS#12 file that `openssl pkcs12` reads and writes too. Creates, certifies, verifies,
// loads and saves IDs and hands the key and chain to a TLS context. Where the password
// comes from is password.hpp's business; names are names.hpp's.
#pragma once

#include <openssl/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/expected.hpp"
#include "identity/names.hpp"
#include "identity/password.hpp"

namespace bridgehead::identity {

using Clock = std::chrono::system_clock;

enum class KeyType { kEcP256, kRsa3072 };
/// "ec-p256", "rsa-3072".
std::string_view to_string(KeyType type);
/// Parses "ec-p256" or "rsa-3072"; kInvalidArgument otherwise.
Expected<KeyType> parse_key_type(std::string_view text);

/// Asked for the password when, and only when, a file needs one. `what` names the file
/// ("connector ID /etc/bridgehead/connector.id") for a prompt. An error it returns is
/// passed on unchanged.
using PasswordProvider = std::function<Expected<SecretString>(const std::string& what)>;

inline constexpr int kDefaultValidityDays = 730;            ///< an ID: two years
inline constexpr int kDefaultCertifierValidityDays = 3650;  ///< a certifier: ten years
inline constexpr int kMaxValidityDays = 36500;
/// PBKDF2-HMAC-SHA256 rounds for a password-protected file (OWASP's 2023 figure;
/// `openssl pkcs12 -export` uses 2048).
inline constexpr int kDefaultKdfIterations = 600000;

/// What a new certificate says; used by create() and certify().
struct CertificateOptions {
  int validity_days = kDefaultValidityDays;  ///< 1 .. kMaxValidityDays
  /// Start of validity; default: now minus one hour, so a peer whose clock is a little
  /// behind accepts it. Tests set it to make expired or not-yet-valid certificates.
  std::optional<Clock::time_point> not_before;
  /// DNS names for subjectAltName, for when the ID serves STARTTLS to clients that check
  /// the host name.
  std::vector<std::string> dns_names;
};

struct CreateOptions {
  KeyType key = KeyType::kEcP256;
  bool certifier = false;  ///< a CA (basicConstraints CA:TRUE, keyCertSign); the name must have no CN
  CertificateOptions certificate;
};

struct SaveOptions {
  int kdf_iterations = kDefaultKdfIterations;  ///< PBKDF2 rounds for the key (and the MAC)
  /// Also encrypt the certificates. Off by default: certificates are public (TLS sends them
  /// in the clear), and unencrypted ones let `bridgehead id show` and `bridgehead check`
  /// report name and expiry of a locked ID.
  bool encrypt_certificates = false;
  bool overwrite = true;  ///< false: fail with kInvalidArgument when the file exists
};

struct LoadOptions {
  /// Files asking for more key-derivation rounds than this are refused (kLimit), so a
  /// crafted file cannot keep the loader busy for hours.
  std::uint64_t max_kdf_iterations = 10'000'000;
};

/// What `bridgehead id show` prints.
struct IdInfo {
  std::string name;                  ///< the Notes name (abbreviated), or the RFC 4514 subject when it is none
  std::string subject;               ///< RFC 4514
  std::vector<std::string> issuers;  ///< the certifier chain, nearest first, as names like `name`
  Clock::time_point not_before;
  Clock::time_point not_after;
  std::string key_type;            ///< "ec-p256", "rsa-3072", "ec-secp384r1", "ed25519", ...
  std::string fingerprint_sha256;  ///< of the certificate, "AB:CD:..."
  bool is_ca = false;
  std::vector<std::string> dns_names;
};

/// What can be told about a file without its password.
struct IdOverview {
  bool password_protected = false;
  /// Present when the certificates can be read without the password (always for files
  /// Bridgehead writes with default options; not for `openssl pkcs12 -export` defaults).
  /// Without the password its integrity is not checked.
  std::optional<IdInfo> info;
};

/// One connector ID in memory: key, certificate, chain. Move-only; owns its OpenSSL objects.
class ConnectorId {
 public:
  ConnectorId(ConnectorId&&) noexcept;
  ConnectorId& operator=(ConnectorId&&) noexcept;
  ~ConnectorId();

  /// A new key and certificate for `name`: self-signed without `certifier`, otherwise
  /// signed by it (which must be a valid certifier whose name is `name`'s parent).
  /// kInvalidArgument for a name that does not fit (a CN with options.certifier, none
  /// without; outside the certifier's hierarchy), kCertificate for an unusable certifier.
  static Expected<ConnectorId> create(const NotesName& name, const CreateOptions& options,
                                      const ConnectorId* certifier = nullptr);

  /// Loads a PKCS#12 file; `password` is asked only when the file is protected. Errors:
  /// kNotFound/kIo/kPermission (cannot read), kParse (not PKCS#12), kCorrupt (truncated,
  /// damaged, no key or certificate, key and certificate do not match), kWrongPassword,
  /// kUnavailable (protected and no password: provider empty or it failed that way),
  /// kLimit (absurd KDF parameters). A MAC that fails with the given password reads as a
  /// wrong password: PKCS#12 cannot tell that from a changed file.
  static Expected<ConnectorId> load(const std::filesystem::path& path, const PasswordProvider& password,
                                    const LoadOptions& options = {});
  /// The same from bytes in memory; `what` names them in messages.
  static Expected<ConnectorId> load_from_memory(std::span<const unsigned char> der, const PasswordProvider& password,
                                                const std::string& what = "connector ID",
                                                const LoadOptions& options = {});

  /// PKCS#12 bytes: the key as a PBES2 shrouded key bag (AES-256-CBC, PBKDF2-HMAC-SHA256,
  /// 16-byte salt), a SHA-256 MAC keyed by the password. Without a password (nullptr) the
  /// key bag is not encrypted and the MAC uses the empty password, so `openssl pkcs12
  /// -passin pass:` opens it.
  Expected<std::string> to_pkcs12(const SecretString* password, const SaveOptions& options = {}) const;
  /// Writes to_pkcs12() to `path` atomically (temporary file in the same directory, fsync,
  /// rename, fsync of the directory) with mode 0600.
  Expected<void> save(const std::filesystem::path& path, const SecretString* password,
                      const SaveOptions& options = {}) const;

  IdInfo info() const;
  NotesName name() const;  ///< the subject as a Notes name; empty parts when it is not one
  bool is_certifier() const;

  /// Installs key, certificate and chain into a TLS context (server or client side).
  Expected<void> use_in(SSL_CTX* ctx) const;

  EVP_PKEY* key() const;             ///< borrowed
  X509* certificate() const;         ///< borrowed
  std::vector<X509*> chain() const;  ///< borrowed, nearest certifier first

  /// The same key and chain; cheap (OpenSSL reference counts).
  ConnectorId share() const;

 private:
  struct Parts;
  explicit ConnectorId(std::unique_ptr<Parts> parts);
  friend Expected<ConnectorId> certify(const ConnectorId&, const ConnectorId&, const CertificateOptions&);

  std::unique_ptr<Parts> parts_;
};

/// The bytes of an ID file, still encrypted, for load_from_memory(). Errors: kNotFound,
/// kPermission, kIo, each naming the file.
Expected<std::string> read_id_file(const std::filesystem::path& path);

/// Reads what a file shows without a password. Errors as for load() (never kWrongPassword).
Expected<IdOverview> inspect(const std::filesystem::path& path, const LoadOptions& options = {});
Expected<IdOverview> inspect_memory(std::span<const unsigned char> der, const std::string& what = "connector ID",
                                    const LoadOptions& options = {});
/// Whether opening the file needs a password, told without one.
Expected<bool> is_password_protected(const std::filesystem::path& path);

/// A new certificate for `subject`'s key and name signed by `certifier` (the same ID for a
/// certifier renewing itself), with the certifier's chain. A certifier stays a certifier.
/// kInvalidArgument when the name is not directly under the certifier's, kCertificate when
/// the certifier is not a valid CA.
Expected<ConnectorId> certify(const ConnectorId& subject, const ConnectorId& certifier,
                              const CertificateOptions& options = {});

/// Checks that the key matches the certificate (kCorrupt) and that the certificate chains
/// up to the ID's own top certifier with every certificate valid at `now` (kCertificate:
/// "expired on DATE", "not valid before DATE", or what broke the chain).
Expected<void> verify(const ConnectorId& id, Clock::time_point now = Clock::now());

/// "2025-06-30 12:00:00 UTC".
std::string format_time(Clock::time_point t);

}  // namespace bridgehead::identity
