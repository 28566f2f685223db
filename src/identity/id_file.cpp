#include "identity/id_file.hpp"

#include <stdio.h>
#include <sys/stat.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cerrno>
#include <ctime>

#include <fmt/format.h>

#include "core/durable_file.hpp"
#include "core/read_file.hpp"
#include "identity/ossl.hpp"
#include "identity/pkcs12_codec.hpp"

namespace bridgehead::identity {

struct ConnectorId::Parts {
  ossl::Pkey key;
  ossl::Cert cert;
  std::vector<ossl::Cert> chain;  // nearest certifier first
};

namespace {

constexpr std::size_t kMaxIdFile = 1 << 20;
constexpr std::size_t kMaxChain = 16;
constexpr auto kBackdate = std::chrono::hours(1);

Error internal(std::string_view what) {
  return Error::permanent(ErrorCode::kInternal, fmt::format("{}: {}", what, ossl::take_error()));
}

Clock::time_point to_time_point(const ASN1_TIME* t) {
  std::tm tm{};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return {};
  return Clock::from_time_t(timegm(&tm));
}

/// Subject and issuer are the same name: the top of a chain (a certifier, or an ID that
/// certified itself). X509_check_issued would also demand keyCertSign, which an ID lacks.
bool self_issued(X509* c) { return X509_NAME_cmp(X509_get_subject_name(c), X509_get_issuer_name(c)) == 0; }

/// The Notes name of a certificate name, or its RFC 4514 text when it is not one.
std::string display_name(const X509_NAME* n) {
  if (auto notes = from_x509_name(n)) return notes->abbreviated();
  ERR_clear_error();
  return x509_name_text(n);
}

std::string key_type_of(EVP_PKEY* key) {
  if (key == nullptr) return "none";
  switch (EVP_PKEY_get_base_id(key)) {
    case EVP_PKEY_RSA:
      return fmt::format("rsa-{}", EVP_PKEY_get_bits(key));
    case EVP_PKEY_ED25519:
      return "ed25519";
    case EVP_PKEY_ED448:
      return "ed448";
    case EVP_PKEY_EC: {
      char group[64] = {};
      size_t len = 0;
      if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &len) != 1) {
        ERR_clear_error();
        return "ec";
      }
      const std::string_view g(group, len);
      if (g == "prime256v1" || g == "P-256") return "ec-p256";
      if (g == "secp384r1" || g == "P-384") return "ec-p384";
      if (g == "secp521r1" || g == "P-521") return "ec-p521";
      return fmt::format("ec-{}", g);
    }
    default:
      return OBJ_nid2sn(EVP_PKEY_get_base_id(key));
  }
}

std::vector<std::string> dns_names_of(X509* cert) {
  std::vector<std::string> out;
  auto* names = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (names == nullptr) return out;
  for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* g = sk_GENERAL_NAME_value(names, i);
    if (g->type == GEN_DNS) {
      const ASN1_IA5STRING* s = g->d.dNSName;
      out.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                       static_cast<std::size_t>(ASN1_STRING_length(s)));
    }
  }
  GENERAL_NAMES_free(names);
  return out;
}

IdInfo info_of(X509* cert, const std::vector<X509*>& chain) {
  IdInfo info;
  info.subject = x509_name_text(X509_get_subject_name(cert));
  info.name = display_name(X509_get_subject_name(cert));
  if (!self_issued(cert)) {
    info.issuers.push_back(display_name(X509_get_issuer_name(cert)));
    for (X509* c : chain) {
      if (self_issued(c)) break;
      info.issuers.push_back(display_name(X509_get_issuer_name(c)));
    }
  }
  info.not_before = to_time_point(X509_get0_notBefore(cert));
  info.not_after = to_time_point(X509_get0_notAfter(cert));
  info.key_type = key_type_of(X509_get0_pubkey(cert));
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (X509_digest(cert, EVP_sha256(), md, &len) == 1) {
    for (unsigned int i = 0; i < len; ++i) info.fingerprint_sha256 += fmt::format("{}{:02X}", i == 0 ? "" : ":", md[i]);
  }
  info.is_ca = (X509_get_extension_flags(cert) & EXFLAG_CA) != 0;
  info.dns_names = dns_names_of(cert);
  ERR_clear_error();
  return info;
}

/// Orders `pool` into the chain above `leaf`: each next certificate is the issuer of the
/// previous one; stops at a self-issued one or when the issuer is missing.
std::vector<ossl::Cert> build_chain(X509* leaf, std::vector<ossl::Cert>& pool) {
  std::vector<ossl::Cert> chain;
  X509* current = leaf;
  while (!self_issued(current) && chain.size() < kMaxChain) {
    auto it = std::find_if(pool.begin(), pool.end(),
                           [current](const ossl::Cert& c) { return X509_check_issued(c.get(), current) == X509_V_OK; });
    if (it == pool.end()) break;
    chain.push_back(std::move(*it));
    pool.erase(it);
    current = chain.back().get();
  }
  ERR_clear_error();
  return chain;
}

/// Picks the leaf of a set of certificates without a key: one that issued none of the others.
std::size_t pick_leaf(const std::vector<ossl::Cert>& certs) {
  for (std::size_t i = 0; i < certs.size(); ++i) {
    bool issued_another = false;
    for (std::size_t j = 0; j < certs.size(); ++j) {
      if (i != j && X509_check_issued(certs[i].get(), certs[j].get()) == X509_V_OK) issued_another = true;
    }
    if (!issued_another) return i;
  }
  return 0;
}

}  // namespace

Expected<std::string> read_id_file(const std::filesystem::path& path) {
  const std::string what = fmt::format("connector ID {}", path.string());
  // Read a little past the limit: decode() refuses an oversized file with a clear message.
  return read_whole_file(path, what,
                         Error::permanent(ErrorCode::kNotFound, fmt::format("{} does not exist", what),
                                          "check the path, or create an ID with `bridgehead id create`"),
                         kMaxIdFile);
}

namespace {

std::span<const unsigned char> bytes_of(const std::string& s) {
  return {reinterpret_cast<const unsigned char*>(s.data()), s.size()};
}

bool valid_dns_name(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  for (char c : s) {
    const bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '*';
    if (!ok) return false;
  }
  return true;
}

Expected<void> add_extension(X509* cert, X509V3_CTX* ctx, int nid, const std::string& value) {
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, ctx, nid, value.c_str());
  if (ext == nullptr) return fail(internal(fmt::format("cannot make the {} extension", OBJ_nid2sn(nid))));
  const int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  if (ok != 1) return fail(internal(fmt::format("cannot add the {} extension", OBJ_nid2sn(nid))));
  return {};
}

/// A new certificate for `subject_key` named `subject`, signed by `issuer_key` (with
/// `issuer_cert`'s name, or self-signed when it is null).
Expected<ossl::Cert> issue_certificate(EVP_PKEY* subject_key, const NotesName& subject, bool ca,
                                       const CertificateOptions& opts, X509* issuer_cert, EVP_PKEY* issuer_key) {
  if (opts.validity_days < 1 || opts.validity_days > kMaxValidityDays) {
    return fail(Error::permanent(
        ErrorCode::kInvalidArgument,
        fmt::format("a validity of {} days is out of range: 1 to {}", opts.validity_days, kMaxValidityDays)));
  }
  for (const auto& d : opts.dns_names) {
    if (!valid_dns_name(d)) {
      return fail(Error::permanent(ErrorCode::kInvalidArgument, fmt::format("'{}' is not a DNS name", d)));
    }
  }
  ossl::Cert cert(X509_new());
  if (!cert || X509_set_version(cert.get(), X509_VERSION_3) != 1) return fail(internal("cannot make a certificate"));

  // Serial: 159 random bits (positive, at most 20 octets, unpredictable: RFC 5280 4.1.2.2).
  ossl::Bn serial(BN_new());
  if (!serial || BN_rand(serial.get(), 159, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
      BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get())) == nullptr) {
    return fail(internal("cannot make a serial number"));
  }

  const auto now = Clock::now();
  const auto start = opts.not_before.value_or(now - kBackdate);
  auto end = opts.not_before.value_or(now) + std::chrono::hours(24) * opts.validity_days;
  if (issuer_cert != nullptr) {
    // A certificate cannot outlive its certifier's: a chain is only as valid as its
    // shortest-lived link.
    const auto issuer_end = to_time_point(X509_get0_notAfter(issuer_cert));
    if (issuer_end != Clock::time_point{} && end > issuer_end) end = issuer_end;
  }
  if (ASN1_TIME_set(X509_getm_notBefore(cert.get()), Clock::to_time_t(start)) == nullptr ||
      ASN1_TIME_set(X509_getm_notAfter(cert.get()), Clock::to_time_t(end)) == nullptr) {
    return fail(internal("cannot set the validity"));
  }

  ossl::Name name(X509_NAME_new());
  if (!name) return fail(internal("cannot make a name"));
  if (auto ok = to_x509_name(subject, name.get()); !ok) return fail(ok.error());
  if (X509_set_subject_name(cert.get(), name.get()) != 1 ||
      X509_set_issuer_name(cert.get(), issuer_cert != nullptr ? X509_get_subject_name(issuer_cert) : name.get()) != 1 ||
      X509_set_pubkey(cert.get(), subject_key) != 1) {
    return fail(internal("cannot fill in the certificate"));
  }

  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer_cert != nullptr ? issuer_cert : cert.get(), cert.get(), nullptr, nullptr, 0);
  const bool rsa = EVP_PKEY_get_base_id(subject_key) == EVP_PKEY_RSA;
  std::vector<std::pair<int, std::string>> exts = {
      {NID_basic_constraints, ca ? "critical,CA:TRUE" : "critical,CA:FALSE"},
      {NID_key_usage, ca ? "critical,keyCertSign,cRLSign"
                         : (rsa ? "critical,digitalSignature,keyEncipherment" : "critical,digitalSignature")},
      {NID_subject_key_identifier, "hash"},
      {NID_authority_key_identifier, "keyid"},
  };
  if (!ca) exts.emplace_back(NID_ext_key_usage, "serverAuth,clientAuth");
  if (!opts.dns_names.empty()) {
    std::string san;
    for (const auto& d : opts.dns_names) san += (san.empty() ? "DNS:" : ",DNS:") + d;
    exts.emplace_back(NID_subject_alt_name, san);
  }
  for (const auto& [nid, value] : exts) {
    if (auto ok = add_extension(cert.get(), &ctx, nid, value); !ok) return fail(ok.error());
  }

  const int signer = EVP_PKEY_get_base_id(issuer_key);
  const EVP_MD* md = signer == EVP_PKEY_ED25519 || signer == EVP_PKEY_ED448 ? nullptr : EVP_sha256();
  if (X509_sign(cert.get(), issuer_key, md) <= 0) return fail(internal("cannot sign the certificate"));
  return cert;
}

Expected<ossl::Pkey> generate_key(KeyType type) {
  EVP_PKEY* key = nullptr;
  switch (type) {
    case KeyType::kEcP256:
      key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
      break;
    case KeyType::kRsa3072:
      key = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(3072));
      break;
  }
  if (key == nullptr) return fail(internal("cannot generate a key"));
  return ossl::Pkey(key);
}

/// The certifier may certify `name`: a CA, valid now, whose name is `name`'s parent.
Expected<void> check_certifier(const ConnectorId& certifier, const NotesName& name) {
  const auto cinfo = certifier.info();
  if (!cinfo.is_ca) {
    return fail(Error::permanent(ErrorCode::kCertificate,
                                 fmt::format("{} is not a certifier (its certificate is not a CA)", cinfo.name),
                                 "use a certifier ID, made with `bridgehead id create /Org --ca`"));
  }
  if (auto ok = verify(certifier); !ok) {
    Error e = ok.error();
    e.message = fmt::format("the certifier cannot certify: {}", e.message);
    return fail(std::move(e));
  }
  auto cname = from_x509_name(X509_get_subject_name(certifier.certificate()));
  if (!cname) {
    return fail(Error::permanent(ErrorCode::kInvalidArgument,
                                 fmt::format("the certifier {} does not have a Notes name", cinfo.subject)));
  }
  if (!name.parent().same_as(*cname)) {
    return fail(Error::permanent(
        ErrorCode::kInvalidArgument,
        fmt::format("'{}' is not directly under the certifier '{}': it certifies names like 'Name{}' and "
                    "'/Unit{}'",
                    name.abbreviated(), cname->abbreviated(), cname->abbreviated(), cname->abbreviated()),
        fmt::format("use the certifier '{}', or pick a name under '{}'", name.parent().abbreviated(),
                    cname->abbreviated())));
  }
  return {};
}

}  // namespace

// ---- ConnectorId ------------------------------------------------------------------------

ConnectorId::ConnectorId(std::unique_ptr<Parts> parts) : parts_(std::move(parts)) {}
ConnectorId::ConnectorId(ConnectorId&&) noexcept = default;
ConnectorId& ConnectorId::operator=(ConnectorId&&) noexcept = default;
ConnectorId::~ConnectorId() = default;

EVP_PKEY* ConnectorId::key() const { return parts_->key.get(); }
X509* ConnectorId::certificate() const { return parts_->cert.get(); }
std::vector<X509*> ConnectorId::chain() const {
  std::vector<X509*> out;
  for (const auto& c : parts_->chain) out.push_back(c.get());
  return out;
}

ConnectorId ConnectorId::share() const {
  auto p = std::make_unique<Parts>();
  p->key = ossl::up_ref(parts_->key.get());
  p->cert = ossl::up_ref(parts_->cert.get());
  for (const auto& c : parts_->chain) p->chain.push_back(ossl::up_ref(c.get()));
  return ConnectorId(std::move(p));
}

IdInfo ConnectorId::info() const { return info_of(certificate(), chain()); }

NotesName ConnectorId::name() const {
  auto n = from_x509_name(X509_get_subject_name(certificate()));
  ERR_clear_error();
  return n ? *n : NotesName{};
}

bool ConnectorId::is_certifier() const { return (X509_get_extension_flags(certificate()) & EXFLAG_CA) != 0; }

Expected<ConnectorId> ConnectorId::create(const NotesName& name, const CreateOptions& options,
                                          const ConnectorId* certifier) {
  ERR_clear_error();
  if (options.certifier && !name.is_certifier()) {
    return fail(Error::permanent(ErrorCode::kInvalidArgument,
                                 fmt::format("'{}' has a common name; a certifier's name has none, like '{}'",
                                             name.abbreviated(), name.parent().abbreviated())));
  }
  if (!options.certifier && name.is_certifier()) {
    return fail(Error::permanent(
        ErrorCode::kInvalidArgument,
        fmt::format("'{}' has no common name; only a certifier is named like that", name.abbreviated()),
        fmt::format("give the ID a name like 'Exchange Connector{}', or create a certifier", name.abbreviated())));
  }
  if (certifier != nullptr) {
    if (auto ok = check_certifier(*certifier, name); !ok) return fail(ok.error());
  }
  auto key = generate_key(options.key);
  if (!key) return fail(key.error());
  auto cert = issue_certificate(key->get(), name, options.certifier, options.certificate,
                                certifier != nullptr ? certifier->certificate() : nullptr,
                                certifier != nullptr ? certifier->key() : key->get());
  if (!cert) return fail(cert.error());
  auto parts = std::make_unique<Parts>();
  parts->key = std::move(*key);
  parts->cert = std::move(*cert);
  if (certifier != nullptr) {
    parts->chain.push_back(ossl::up_ref(certifier->certificate()));
    for (X509* c : certifier->chain()) parts->chain.push_back(ossl::up_ref(c));
  }
  return ConnectorId(std::move(parts));
}

Expected<ConnectorId> ConnectorId::load(const std::filesystem::path& path, const PasswordProvider& password,
                                        const LoadOptions& options) {
  auto bytes = read_id_file(path);
  if (!bytes) return fail(bytes.error());
  return load_from_memory(bytes_of(*bytes), password, fmt::format("connector ID {}", path.string()), options);
}

Expected<ConnectorId> ConnectorId::load_from_memory(std::span<const unsigned char> der,
                                                    const PasswordProvider& password, const std::string& what,
                                                    const LoadOptions& options) {
  PasswordProvider provider = password;
  if (!provider) {
    provider = [](const std::string& w) -> Expected<SecretString> {
      return fail(Error::transient_error(ErrorCode::kUnavailable, fmt::format("{} is password-protected", w),
                                         "give its password"));
    };
  }
  auto decoded = pkcs12::decode(der, what, &provider, options);
  if (!decoded) return fail(decoded.error());
  if (decoded->keys.empty()) {
    return fail(Error::permanent(ErrorCode::kCorrupt, fmt::format("{} holds no private key", what),
                                 "an ID needs its key: export it with `openssl pkcs12 -export -inkey KEY ...`"));
  }
  if (decoded->keys.size() > 1) {
    return fail(Error::permanent(ErrorCode::kCorrupt,
                                 fmt::format("{} holds {} private keys; an ID holds one", what, decoded->keys.size())));
  }
  if (decoded->certs.empty()) {
    return fail(Error::permanent(ErrorCode::kCorrupt, fmt::format("{} holds no certificate", what),
                                 "an ID needs its certificate: export it with `openssl pkcs12 -export -in CERT ...`"));
  }
  auto& certs = decoded->certs;
  auto leaf = std::find_if(certs.begin(), certs.end(), [&](const ossl::Cert& c) {
    return X509_check_private_key(c.get(), decoded->keys.front().get()) == 1;
  });
  ERR_clear_error();
  if (leaf == certs.end()) {
    return fail(Error::permanent(ErrorCode::kCorrupt,
                                 fmt::format("{}: its private key matches none of its {} certificate{}", what,
                                             certs.size(), certs.size() == 1 ? "" : "s"),
                                 "the file mixes a key and a certificate that do not belong together"));
  }
  auto parts = std::make_unique<Parts>();
  parts->key = std::move(decoded->keys.front());
  parts->cert = std::move(*leaf);
  certs.erase(leaf);
  parts->chain = build_chain(parts->cert.get(), certs);
  return ConnectorId(std::move(parts));
}

Expected<std::string> ConnectorId::to_pkcs12(const SecretString* password, const SaveOptions& options) const {
  return pkcs12::encode(key(), certificate(), chain(), info().name, password, options);
}

Expected<void> ConnectorId::save(const std::filesystem::path& path, const SecretString* password,
                                 const SaveOptions& options) const {
  auto bytes = to_pkcs12(password, options);
  if (!bytes) return fail(bytes.error());
  // A crash leaves either the old file or the new one, never a mix or a truncated file.
  auto ok = durable::write_file_durably(
      path, *bytes,
      {.mode = 0600, .if_exists = options.overwrite ? durable::IfExists::kReplace : durable::IfExists::kKeep});
  OPENSSL_cleanse(bytes->data(), bytes->size());  // an unprotected ID holds the key in the clear
  return ok;
}

Expected<void> ConnectorId::use_in(SSL_CTX* ctx) const {
  ERR_clear_error();
  if (SSL_CTX_use_certificate(ctx, certificate()) != 1) return fail(internal("cannot use the ID's certificate"));
  if (SSL_CTX_use_PrivateKey(ctx, key()) != 1) return fail(internal("cannot use the ID's key"));
  if (SSL_CTX_clear_chain_certs(ctx) != 1) return fail(internal("cannot reset the TLS chain"));
  for (X509* c : chain()) {
    if (SSL_CTX_add1_chain_cert(ctx, c) != 1) return fail(internal("cannot add a certifier to the TLS chain"));
  }
  if (SSL_CTX_check_private_key(ctx) != 1) return fail(internal("the ID's key does not match its certificate"));
  return {};
}

// ---- free functions ---------------------------------------------------------------------

std::string_view to_string(KeyType type) {
  switch (type) {
    case KeyType::kEcP256:
      return "ec-p256";
    case KeyType::kRsa3072:
      return "rsa-3072";
  }
  return "ec-p256";
}

Expected<KeyType> parse_key_type(std::string_view text) {
  if (text == "ec-p256") return KeyType::kEcP256;
  if (text == "rsa-3072") return KeyType::kRsa3072;
  return fail(Error::permanent(ErrorCode::kInvalidArgument,
                               fmt::format("unknown key type '{}': use ec-p256 or rsa-3072", text)));
}

Expected<IdOverview> inspect_memory(std::span<const unsigned char> der, const std::string& what,
                                    const LoadOptions& options) {
  auto decoded = pkcs12::decode(der, what, nullptr, options);
  if (!decoded) return fail(decoded.error());
  IdOverview out;
  out.password_protected = decoded->password_protected;
  auto& certs = decoded->certs;
  if (certs.empty()) return out;
  std::size_t leaf_index = pick_leaf(certs);
  if (!decoded->keys.empty()) {
    for (std::size_t i = 0; i < certs.size(); ++i) {
      if (X509_check_private_key(certs[i].get(), decoded->keys.front().get()) == 1) leaf_index = i;
    }
    ERR_clear_error();
  }
  ossl::Cert leaf = std::move(certs[leaf_index]);
  certs.erase(certs.begin() + static_cast<std::ptrdiff_t>(leaf_index));
  auto chain = build_chain(leaf.get(), certs);
  std::vector<X509*> raw;
  for (const auto& c : chain) raw.push_back(c.get());
  out.info = info_of(leaf.get(), raw);
  return out;
}

Expected<IdOverview> inspect(const std::filesystem::path& path, const LoadOptions& options) {
  auto bytes = read_id_file(path);
  if (!bytes) return fail(bytes.error());
  return inspect_memory(bytes_of(*bytes), fmt::format("connector ID {}", path.string()), options);
}

Expected<bool> is_password_protected(const std::filesystem::path& path) {
  auto o = inspect(path);
  if (!o) return fail(o.error());
  return o->password_protected;
}

Expected<ConnectorId> certify(const ConnectorId& subject, const ConnectorId& certifier,
                              const CertificateOptions& options) {
  ERR_clear_error();
  auto name = from_x509_name(X509_get_subject_name(subject.certificate()));
  if (!name) {
    return fail(Error::permanent(ErrorCode::kInvalidArgument,
                                 fmt::format("cannot certify {}: {}", subject.info().subject, name.error().message)));
  }
  const bool same_key = EVP_PKEY_eq(subject.key(), certifier.key()) == 1;
  ERR_clear_error();
  CertificateOptions opts = options;
  if (opts.dns_names.empty()) opts.dns_names = dns_names_of(subject.certificate());
  const bool ca = subject.is_certifier();
  ossl::Cert cert;
  if (same_key) {
    // Renewing a self-signed ID or certifier: a new self-signed certificate.
    auto c = issue_certificate(subject.key(), *name, ca, opts, nullptr, subject.key());
    if (!c) return fail(c.error());
    cert = std::move(*c);
  } else {
    if (auto ok = check_certifier(certifier, *name); !ok) return fail(ok.error());
    auto c = issue_certificate(subject.key(), *name, ca, opts, certifier.certificate(), certifier.key());
    if (!c) return fail(c.error());
    cert = std::move(*c);
  }
  auto parts = std::make_unique<ConnectorId::Parts>();
  parts->key = ossl::up_ref(subject.key());
  parts->cert = std::move(cert);
  if (!same_key) {
    parts->chain.push_back(ossl::up_ref(certifier.certificate()));
    for (X509* c : certifier.chain()) parts->chain.push_back(ossl::up_ref(c));
  }
  return ConnectorId(std::move(parts));
}

std::string format_time(Clock::time_point t) {
  const std::time_t tt = Clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  return fmt::format("{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec);
}

Expected<void> verify(const ConnectorId& id, Clock::time_point now) {
  ERR_clear_error();
  X509* cert = id.certificate();
  const std::string name = display_name(X509_get_subject_name(cert));
  if (X509_check_private_key(cert, id.key()) != 1) {
    ERR_clear_error();
    return fail(Error::permanent(ErrorCode::kCorrupt, fmt::format("the key of {} does not match its certificate", name),
                                 "re-create the ID, or export it again with the right key"));
  }
  const auto chain = id.chain();
  X509* top = chain.empty() ? cert : chain.back();
  if (!self_issued(top)) {
    ERR_clear_error();
    return fail(Error::permanent(
        ErrorCode::kCertificate,
        fmt::format("the certificate chain of {} is broken: {} was certified by {}, which is not in the ID", name,
                    display_name(X509_get_subject_name(top)), display_name(X509_get_issuer_name(top))),
        "re-certify it with `bridgehead id certify FILE --certifier CERT.id`, or export it with the full chain"));
  }
  ossl::Store store(X509_STORE_new());
  ossl::StoreCtx ctx(X509_STORE_CTX_new());
  STACK_OF(X509)* untrusted = sk_X509_new_null();
  if (!store || !ctx || untrusted == nullptr) {
    sk_X509_free(untrusted);
    return fail(internal("cannot set up a certificate check"));
  }
  for (X509* c : chain) sk_X509_push(untrusted, c);
  bool ok =
      X509_STORE_add_cert(store.get(), top) == 1 && X509_STORE_CTX_init(ctx.get(), store.get(), cert, untrusted) == 1;
  if (ok) {
    X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(ctx.get()), Clock::to_time_t(now));
    ok = X509_verify_cert(ctx.get()) == 1;
  }
  const int err = X509_STORE_CTX_get_error(ctx.get());
  const int depth = X509_STORE_CTX_get_error_depth(ctx.get());
  X509* bad = X509_STORE_CTX_get_current_cert(ctx.get());
  if (bad == nullptr) bad = cert;
  const std::string bad_name = display_name(X509_get_subject_name(bad));
  const Clock::time_point bad_not_before = to_time_point(X509_get0_notBefore(bad));
  const Clock::time_point bad_not_after = to_time_point(X509_get0_notAfter(bad));
  sk_X509_free(untrusted);
  ERR_clear_error();
  if (ok) return {};
  const std::string whose =
      depth <= 0 ? fmt::format("the certificate of {}", name) : fmt::format("the certifier {}", bad_name);
  switch (err) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
      return fail(Error::permanent(ErrorCode::kCertificate,
                                   fmt::format("{} expired on {}", whose, format_time(bad_not_after)),
                                   depth <= 0 ? "re-certify it: `bridgehead id certify FILE --certifier CERT.id`"
                                              : "renew the certifier, then re-certify the ID with it"));
    case X509_V_ERR_CERT_NOT_YET_VALID:
      return fail(Error::permanent(ErrorCode::kCertificate,
                                   fmt::format("{} is not valid before {}", whose, format_time(bad_not_before)),
                                   "check the system clock, or wait until then"));
    default:
      return fail(Error::permanent(ErrorCode::kCertificate,
                                   fmt::format("the certificate chain of {} is broken at {}: {}", name, bad_name,
                                               X509_verify_cert_error_string(err)),
                                   "re-certify it with `bridgehead id certify FILE --certifier CERT.id`"));
  }
}

}  // namespace bridgehead::identity
