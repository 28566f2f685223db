#include "identity/pkcs12_codec.hpp"

#include <openssl/objects.h>
#include <openssl/pkcs7.h>
#include <openssl/rand.h>

#include <algorithm>

#include <fmt/format.h>

namespace bridgehead::identity::pkcs12 {
namespace {

constexpr std::size_t kMaxFileSize = 1 << 20;  // an ID is a few KiB; anything this big is not one
constexpr int kMaxBagDepth = 4;
constexpr std::size_t kMaxCerts = 32;
constexpr std::size_t kMaxKeys = 8;
constexpr int kSaltLength = 16;
constexpr int kUnprotectedMacIterations = 2048;  // integrity only: there is no secret to stretch

const char* kConvertRemedy =
    "if it came from another tool, re-export it with `openssl pkcs12 -export -keypbe AES-256-CBC "
    "-certpbe AES-256-CBC`";

Error corrupt(const std::string& what, std::string detail) {
  return Error::permanent(ErrorCode::kCorrupt, fmt::format("{} is damaged: {}", what, detail),
                          "restore it from a backup, or create a new ID with `bridgehead id create`");
}

Error not_pkcs12(const std::string& what, std::string detail, std::string remedy = {}) {
  if (remedy.empty()) remedy = "point to the PKCS#12 file of the connector ID (made by `bridgehead id create`)";
  return Error::permanent(ErrorCode::kParse, fmt::format("{} is not a PKCS#12 file: {}", what, detail),
                          std::move(remedy));
}

Error unsupported(const std::string& what, std::string detail) {
  return Error::permanent(ErrorCode::kParse, fmt::format("{} uses {}, which Bridgehead does not read", what, detail),
                          kConvertRemedy);
}

Error wrong_password(const std::string& what) {
  return Error::permanent(ErrorCode::kWrongPassword, fmt::format("wrong password for {}", what),
                          "give the right password; if it is right, the file has been changed or damaged: restore it "
                          "from a backup");
}

std::string oid_text(const ASN1_OBJECT* obj) {
  char buf[128];
  const int nid = OBJ_obj2nid(obj);
  if (nid != NID_undef) return OBJ_nid2ln(nid);
  OBJ_obj2txt(buf, sizeof buf, obj, 1);
  return buf;
}

Expected<void> check_iterations(const ASN1_INTEGER* iter, const std::string& what, std::string_view part,
                                const LoadOptions& limits) {
  const long n = iter == nullptr ? 1 : ASN1_INTEGER_get(iter);
  if (n <= 0) return fail(corrupt(what, fmt::format("the {} has an invalid iteration count", part)));
  if (static_cast<std::uint64_t>(n) > limits.max_kdf_iterations) {
    return fail(Error::permanent(ErrorCode::kLimit,
                                 fmt::format("{} asks for {} key-derivation rounds for the {}; at most {} are accepted",
                                             what, n, part, limits.max_kdf_iterations),
                                 "re-export it with fewer iterations (-iter)"));
  }
  return {};
}

template <typename T, void (*Free)(T*)>
using Owned = std::unique_ptr<T, ossl::Deleter<T, Free>>;

/// Checks the password-based encryption of one part before anything is derived: known
/// scheme, sane parameters, iteration count within the limit.
Expected<void> check_pbe(const X509_ALGOR* alg, const std::string& what, std::string_view part,
                         const LoadOptions& limits) {
  if (alg == nullptr || alg->algorithm == nullptr)
    return fail(corrupt(what, fmt::format("the {} has no algorithm", part)));
  const int nid = OBJ_obj2nid(alg->algorithm);
  switch (nid) {
    case NID_pbes2: {
      Owned<PBE2PARAM, PBE2PARAM_free> p(
          static_cast<PBE2PARAM*>(ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(PBE2PARAM), alg->parameter)));
      if (!p || p->keyfunc == nullptr || p->encryption == nullptr) {
        ERR_clear_error();
        return fail(corrupt(what, fmt::format("the {} has bad PBES2 parameters", part)));
      }
      const int kdf = OBJ_obj2nid(p->keyfunc->algorithm);
      if (kdf != NID_id_pbkdf2) {
        return fail(
            unsupported(what, fmt::format("the key derivation {} for the {}", oid_text(p->keyfunc->algorithm), part)));
      }
      Owned<PBKDF2PARAM, PBKDF2PARAM_free> k(
          static_cast<PBKDF2PARAM*>(ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(PBKDF2PARAM), p->keyfunc->parameter)));
      if (!k) {
        ERR_clear_error();
        return fail(corrupt(what, fmt::format("the {} has bad PBKDF2 parameters", part)));
      }
      if (k->keylength != nullptr) {
        const long len = ASN1_INTEGER_get(k->keylength);
        if (len <= 0 || len > 64) return fail(corrupt(what, fmt::format("the {} has a bad key length", part)));
      }
      return check_iterations(k->iter, what, part, limits);
    }
    case NID_pbe_WithSHA1And3_Key_TripleDES_CBC:
    case NID_pbe_WithSHA1And2_Key_TripleDES_CBC: {
      Owned<PBEPARAM, PBEPARAM_free> p(
          static_cast<PBEPARAM*>(ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(PBEPARAM), alg->parameter)));
      if (!p) {
        ERR_clear_error();
        return fail(corrupt(what, fmt::format("the {} has bad PBE parameters", part)));
      }
      return check_iterations(p->iter, what, part, limits);
    }
    default:
      return fail(unsupported(
          what, fmt::format("the legacy or unknown encryption {} for the {}", oid_text(alg->algorithm), part)));
  }
}

/// The password as it stands while decoding: unknown until the MAC or the first
/// decryption settles it.
class PasswordState {
 public:
  PasswordState(const std::string& what, const PasswordProvider* provider, Decoded& out)
      : what_(what), provider_(provider), out_(out) {}

  /// Settles the password from the MAC: empty (either PKCS#12 form), or the provider's.
  Expected<void> from_mac(PKCS12* p12) {
    ERR_clear_error();
    if (PKCS12_verify_mac(p12, "", 0) == 1) return settle_empty("", true);
    if (ERR_peek_error() != 0) return mac_error();
    if (PKCS12_verify_mac(p12, nullptr, 0) == 1) return settle_empty(nullptr, true);
    if (ERR_peek_error() != 0) return mac_error();
    out_.password_protected = true;
    if (provider_ == nullptr) return {};  // probe: encrypted parts stay unread
    auto pw = ask();
    if (!pw) return fail(pw.error());
    secret_ = std::move(*pw);
    if (PKCS12_verify_mac(p12, secret_.c_str(), static_cast<int>(secret_.size())) != 1) {
      if (ERR_peek_error() != 0) return mac_error();
      return fail(wrong_password(what_));
    }
    out_.integrity_checked = true;
    settled_ = true;
    pass_ = secret_.c_str();
    passlen_ = static_cast<int>(secret_.size());
    return {};
  }

  /// Runs `decrypt(pass, passlen)` (returns an owning pointer, null on failure) with the
  /// settled password, or — when there is no MAC — finds the password by trying the empty
  /// one and then asking. Returns null in probe mode when the password is needed.
  template <typename T, typename F>
  Expected<T*> decrypt(F&& attempt, std::string_view part) {
    if (settled_) {
      ERR_clear_error();
      if (T* r = attempt(pass_, passlen_)) return r;
      if (out_.integrity_checked || !out_.password_protected) {
        return fail(corrupt(what_, fmt::format("the {} cannot be decrypted: {}", part, ossl::take_error())));
      }
      // No MAC: a wrong password can decrypt one part to something well-formed by chance;
      // the next part fails.
      return fail(wrong_password(what_));
    }
    if (out_.password_protected && provider_ == nullptr) {
      out_.skipped_encrypted = true;
      return static_cast<T*>(nullptr);
    }
    if (!out_.password_protected) {
      // No MAC: try the empty password in both PKCS#12 forms.
      for (const char* empty : {"", static_cast<const char*>(nullptr)}) {
        ERR_clear_error();
        if (T* r = attempt(empty, 0)) {
          settle_empty(empty, false);
          return r;
        }
      }
      ERR_clear_error();
      out_.password_protected = true;
      if (provider_ == nullptr) {
        out_.skipped_encrypted = true;
        return static_cast<T*>(nullptr);
      }
    }
    auto pw = ask();
    if (!pw) return fail(pw.error());
    secret_ = std::move(*pw);
    ERR_clear_error();
    T* r = attempt(secret_.c_str(), static_cast<int>(secret_.size()));
    if (r == nullptr) {
      ERR_clear_error();
      return fail(wrong_password(what_));
    }
    settled_ = true;
    pass_ = secret_.c_str();
    passlen_ = static_cast<int>(secret_.size());
    return r;
  }

 private:
  Expected<void> settle_empty(const char* empty, bool by_mac) {
    settled_ = true;
    pass_ = empty;
    passlen_ = 0;
    out_.integrity_checked = by_mac;
    return {};
  }

  Expected<void> mac_error() {
    return fail(corrupt(what_, fmt::format("its integrity check (MAC) cannot be computed: {}", ossl::take_error())));
  }

  Expected<SecretString> ask() {
    ++asked_;
    if (asked_ > 1) return fail(wrong_password(what_));  // asked once per file, never in a loop
    auto pw = (*provider_)(what_);
    if (!pw) return fail(pw.error());
    if (pw->view().find('\0') != std::string_view::npos) return fail(wrong_password(what_));
    return pw;
  }

  const std::string& what_;
  const PasswordProvider* provider_;
  Decoded& out_;
  SecretString secret_;
  bool settled_ = false;
  const char* pass_ = nullptr;
  int passlen_ = 0;
  int asked_ = 0;
};

using SafeBags = STACK_OF(PKCS12_SAFEBAG);

void free_bags(SafeBags* bags) { sk_PKCS12_SAFEBAG_pop_free(bags, PKCS12_SAFEBAG_free); }
void free_safes(STACK_OF(PKCS7) * safes) { sk_PKCS7_pop_free(safes, PKCS7_free); }

Expected<void> take_key(const PKCS8_PRIV_KEY_INFO* p8, const std::string& what, Decoded& out) {
  EVP_PKEY* key = EVP_PKCS82PKEY_ex(p8, nullptr, nullptr);
  if (key == nullptr) return fail(corrupt(what, fmt::format("its private key cannot be read: {}", ossl::take_error())));
  out.keys.emplace_back(key);
  if (out.keys.size() > kMaxKeys) return fail(corrupt(what, "it holds too many private keys"));
  return {};
}

Expected<void> read_bags(const SafeBags* bags, int depth, const std::string& what, PasswordState& pw,
                         const LoadOptions& limits, Decoded& out) {
  if (depth > kMaxBagDepth) return fail(corrupt(what, "its bags are nested too deeply"));
  for (int i = 0; i < sk_PKCS12_SAFEBAG_num(bags); ++i) {
    const PKCS12_SAFEBAG* bag = sk_PKCS12_SAFEBAG_value(bags, i);
    switch (PKCS12_SAFEBAG_get_nid(bag)) {
      case NID_keyBag: {
        const PKCS8_PRIV_KEY_INFO* p8 = PKCS12_SAFEBAG_get0_p8inf(bag);
        if (p8 == nullptr) return fail(corrupt(what, "a key bag is empty"));
        if (auto r = take_key(p8, what, out); !r) return r;
        break;
      }
      case NID_pkcs8ShroudedKeyBag: {
        const X509_SIG* sig = PKCS12_SAFEBAG_get0_pkcs8(bag);
        if (sig == nullptr) return fail(corrupt(what, "an encrypted key bag is empty"));
        const X509_ALGOR* alg = nullptr;
        X509_SIG_get0(sig, &alg, nullptr);
        if (auto ok = check_pbe(alg, what, "private key", limits); !ok) return ok;
        auto p8 = pw.decrypt<PKCS8_PRIV_KEY_INFO>(
            [bag](const char* pass, int len) { return PKCS12_decrypt_skey_ex(bag, pass, len, nullptr, nullptr); },
            "private key");
        if (!p8) return fail(p8.error());
        if (*p8 == nullptr) break;  // probe mode
        ossl::P8Info owned(*p8);
        if (auto r = take_key(owned.get(), what, out); !r) return r;
        break;
      }
      case NID_certBag: {
        if (PKCS12_SAFEBAG_get_bag_nid(bag) != NID_x509Certificate) break;  // SDSI certificates: not ours
        X509* cert = PKCS12_SAFEBAG_get1_cert(bag);
        if (cert == nullptr)
          return fail(corrupt(what, fmt::format("a certificate cannot be read: {}", ossl::take_error())));
        out.certs.emplace_back(cert);
        if (out.certs.size() > kMaxCerts) return fail(corrupt(what, "it holds too many certificates"));
        break;
      }
      case NID_safeContentsBag: {
        const SafeBags* inner = PKCS12_SAFEBAG_get0_safes(bag);
        if (inner == nullptr) return fail(corrupt(what, "a nested bag is empty"));
        if (auto r = read_bags(inner, depth + 1, what, pw, limits, out); !r) return r;
        break;
      }
      default:
        break;  // CRLs and secrets: nothing an ID needs
    }
  }
  return {};
}

/// Why d2i_PKCS12 refused: tells a file that is not PKCS#12 at all from a damaged or
/// truncated one, by its DER header and its first field (version INTEGER 3).
Error classify_unparseable(std::span<const unsigned char> der, const std::string& what) {
  const std::string detail = ossl::take_error();
  auto starts_with = [&](std::string_view prefix) {
    return der.size() >= prefix.size() &&
           std::equal(prefix.begin(), prefix.end(), der.begin(),
                      [](char a, unsigned char b) { return static_cast<unsigned char>(a) == b; });
  };
  if (starts_with("-----BEGIN")) {
    return not_pkcs12(
        what, "it is a PEM file",
        "make a PKCS#12 file from it: `openssl pkcs12 -export -in cert.pem -inkey key.pem -out connector.id`");
  }
  if (der[0] != 0x30) return not_pkcs12(what, "it does not start with a DER SEQUENCE");
  // DER length of the outer SEQUENCE.
  std::size_t header = 2;
  std::size_t length = 0;
  bool definite = true;
  if (der.size() < 2) return corrupt(what, "it is truncated");
  if (der[1] < 0x80) {
    length = der[1];
  } else if (der[1] == 0x80) {
    definite = false;
  } else {
    const std::size_t n = der[1] & 0x7Fu;
    if (n > 4) return not_pkcs12(what, "its outer length is not DER");
    if (der.size() < 2 + n) return corrupt(what, "it is truncated");
    for (std::size_t i = 0; i < n; ++i) length = (length << 8) | der[2 + i];
    header = 2 + n;
  }
  if (der.size() < header + 3) return corrupt(what, "it is truncated");
  const bool version3 = der[header] == 0x02 && der[header + 1] == 0x01 && der[header + 2] == 0x03;
  if (!version3) return not_pkcs12(what, "it is DER, but not a PKCS#12 PFX (version 3)");
  if (definite && header + length > der.size()) {
    return corrupt(what, fmt::format("it is truncated ({} of {} bytes)", der.size(), header + length));
  }
  return corrupt(what, fmt::format("its structure is broken ({})", detail));
}

}  // namespace

Expected<Decoded> decode(std::span<const unsigned char> der, const std::string& what, const PasswordProvider* password,
                         const LoadOptions& limits) {
  ERR_clear_error();
  if (der.empty()) return fail(not_pkcs12(what, "it is empty"));
  if (der.size() > kMaxFileSize) {
    return fail(not_pkcs12(what, fmt::format("it has {} bytes; an ID has a few thousand", der.size())));
  }
  const unsigned char* p = der.data();
  ossl::Pkcs12 p12(d2i_PKCS12(nullptr, &p, static_cast<long>(der.size())));
  if (!p12) return fail(classify_unparseable(der, what));
  if (p != der.data() + der.size()) {
    return fail(
        corrupt(what, fmt::format("{} unexpected bytes follow the PKCS#12 structure", der.data() + der.size() - p)));
  }
  Decoded out;
  PasswordState pw(what, password, out);
  if (PKCS12_mac_present(p12.get()) == 1) {
    const ASN1_OCTET_STRING* mac = nullptr;
    const X509_ALGOR* mac_alg = nullptr;
    const ASN1_OCTET_STRING* salt = nullptr;
    const ASN1_INTEGER* iter = nullptr;
    PKCS12_get0_mac(&mac, &mac_alg, &salt, &iter, p12.get());
    if (auto ok = check_iterations(iter, what, "integrity check (MAC)", limits); !ok) return fail(ok.error());
    const ASN1_OBJECT* md_obj = nullptr;
    if (mac_alg != nullptr) X509_ALGOR_get0(&md_obj, nullptr, nullptr, mac_alg);
    switch (md_obj == nullptr ? NID_undef : OBJ_obj2nid(md_obj)) {
      case NID_sha1:
      case NID_sha224:
      case NID_sha256:
      case NID_sha384:
      case NID_sha512:
        break;
      default:
        return fail(unsupported(what, fmt::format("the integrity check (MAC) digest {}",
                                                  md_obj == nullptr ? std::string("(none)") : oid_text(md_obj))));
    }
    if (auto ok = pw.from_mac(p12.get()); !ok) return fail(ok.error());
  }

  Owned<STACK_OF(PKCS7), free_safes> safes(PKCS12_unpack_authsafes(p12.get()));
  if (!safes) {
    return fail(not_pkcs12(what, fmt::format("its content cannot be read ({}); public-key integrity mode is not "
                                             "supported",
                                             ossl::take_error())));
  }
  for (int i = 0; i < sk_PKCS7_num(safes.get()); ++i) {
    PKCS7* p7 = sk_PKCS7_value(safes.get(), i);
    const int nid = OBJ_obj2nid(p7->type);
    Owned<SafeBags, free_bags> bags;
    if (nid == NID_pkcs7_data) {
      bags.reset(PKCS12_unpack_p7data(p7));
      if (!bags) return fail(corrupt(what, fmt::format("a part cannot be read: {}", ossl::take_error())));
    } else if (nid == NID_pkcs7_encrypted) {
      if (p7->d.encrypted == nullptr || p7->d.encrypted->enc_data == nullptr) {
        return fail(corrupt(what, "an encrypted part is empty"));
      }
      if (auto ok = check_pbe(p7->d.encrypted->enc_data->algorithm, what, "certificates", limits); !ok) {
        return fail(ok.error());
      }
      auto r = pw.decrypt<SafeBags>([p7](const char* pass, int len) { return PKCS12_unpack_p7encdata(p7, pass, len); },
                                    "certificates");
      if (!r) return fail(r.error());
      if (*r == nullptr) continue;  // probe mode
      bags.reset(*r);
    } else {
      return fail(unsupported(what, fmt::format("a part of type {}", oid_text(p7->type))));
    }
    if (auto ok = read_bags(bags.get(), 0, what, pw, limits, out); !ok) return fail(ok.error());
  }
  ERR_clear_error();
  return out;
}

Expected<std::string> encode(EVP_PKEY* key, X509* cert, const std::vector<X509*>& chain,
                             const std::string& friendly_name, const SecretString* password,
                             const SaveOptions& options) {
  ERR_clear_error();
  auto failed = [](std::string_view step) {
    return fail(Error::permanent(ErrorCode::kInternal,
                                 fmt::format("cannot encode the ID as PKCS#12 ({}): {}", step, ossl::take_error())));
  };
  if (password != nullptr && password->view().find('\0') != std::string_view::npos) {
    return fail(Error::permanent(ErrorCode::kInvalidArgument, "the password contains a NUL character"));
  }
  if (options.kdf_iterations < 1) {
    return fail(Error::permanent(ErrorCode::kInvalidArgument, "the iteration count must be at least 1"));
  }
  const char* pass = password != nullptr ? password->c_str() : "";
  const int passlen = password != nullptr ? static_cast<int>(password->size()) : 0;
  const int iter = options.kdf_iterations;

  // localKeyID ties the key bag to its certificate bag, as OpenSSL does: the SHA-1 of the
  // certificate.
  unsigned char key_id[EVP_MAX_MD_SIZE];
  unsigned int key_id_len = 0;
  if (X509_digest(cert, EVP_sha1(), key_id, &key_id_len) != 1) return failed("certificate digest");

  Owned<SafeBags, free_bags> cert_bags;
  {
    SafeBags* raw = nullptr;
    PKCS12_SAFEBAG* bag = PKCS12_add_cert(&raw, cert);
    cert_bags.reset(raw);
    if (bag == nullptr) return failed("certificate bag");
    if (PKCS12_add_friendlyname_utf8(bag, friendly_name.c_str(), -1) != 1 ||
        PKCS12_add_localkeyid(bag, key_id, static_cast<int>(key_id_len)) != 1) {
      return failed("certificate attributes");
    }
    for (X509* c : chain) {
      if (PKCS12_add_cert(&raw, c) == nullptr) return failed("chain certificate bag");
    }
  }
  Owned<SafeBags, free_bags> key_bags(sk_PKCS12_SAFEBAG_new_null());
  {
    ossl::P8Info p8(EVP_PKEY2PKCS8(key));
    if (!p8) return failed("private key");
    PKCS12_SAFEBAG* bag = nullptr;
    if (password != nullptr) {
      bag = PKCS12_SAFEBAG_create_pkcs8_encrypt_ex(NID_aes_256_cbc, pass, passlen, nullptr, kSaltLength, iter, p8.get(),
                                                   nullptr, nullptr);
    } else {
      bag = PKCS12_SAFEBAG_create0_p8inf(p8.get());
      if (bag != nullptr) p8.release();  // the bag owns it now
    }
    if (bag == nullptr) return failed("key bag");
    if (sk_PKCS12_SAFEBAG_push(key_bags.get(), bag) <= 0) {
      PKCS12_SAFEBAG_free(bag);
      return failed("key bag");
    }
    if (PKCS12_add_friendlyname_utf8(bag, friendly_name.c_str(), -1) != 1 ||
        PKCS12_add_localkeyid(bag, key_id, static_cast<int>(key_id_len)) != 1) {
      return failed("key attributes");
    }
  }
  Owned<STACK_OF(PKCS7), free_safes> safes;
  {
    STACK_OF(PKCS7)* raw = nullptr;
    const int cert_nid = password != nullptr && options.encrypt_certificates ? NID_aes_256_cbc : -1;
    const bool ok = PKCS12_add_safe_ex(&raw, cert_bags.get(), cert_nid, iter, pass, nullptr, nullptr) == 1;
    safes.reset(raw);
    if (!ok) return failed("certificate safe");
    if (PKCS12_add_safe_ex(&raw, key_bags.get(), -1, 0, nullptr, nullptr, nullptr) != 1) return failed("key safe");
  }
  ossl::Pkcs12 p12(PKCS12_add_safes_ex(safes.get(), 0, nullptr, nullptr));
  if (!p12) return failed("PFX");
  const int mac_iter = password != nullptr ? iter : kUnprotectedMacIterations;
  if (PKCS12_set_mac(p12.get(), pass, passlen, nullptr, kSaltLength, mac_iter, EVP_sha256()) != 1) {
    return failed("MAC");
  }
  unsigned char* der = nullptr;
  const int len = i2d_PKCS12(p12.get(), &der);
  if (len <= 0) return failed("DER");
  std::string out(reinterpret_cast<const char*>(der), static_cast<std::size_t>(len));
  OPENSSL_free(der);
  return out;
}

}  // namespace bridgehead::identity::pkcs12
