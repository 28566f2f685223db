#include "identity/id_file.hpp"

#include <dirent.h>
#include <sys/stat.h>

#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <fstream>
#include <iterator>

#include <gtest/gtest.h>

#include "identity/testdata/ids.hpp"
#include "temp_dir.hpp"

namespace bridgehead::identity {
namespace {

using test_support::TempDir;
using namespace std::chrono_literals;

constexpr auto kDay = std::chrono::hours(24);

using testing::fast;
using testing::make;
using testing::name;

/// A provider that counts its calls and answers `password`.
struct Answer {
  std::string password;
  int calls = 0;
  PasswordProvider provider() {
    return [this](const std::string&) -> Expected<SecretString> {
      ++calls;
      return SecretString(password);
    };
  }
};

PasswordProvider never_asked() {
  return [](const std::string& what) -> Expected<SecretString> {
    ADD_FAILURE() << "asked for a password of " << what;
    return fail(Error::permanent(ErrorCode::kInternal, "asked"));
  };
}

std::string read_all(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

std::span<const unsigned char> bytes(const std::string& s) {
  return {reinterpret_cast<const unsigned char*>(s.data()), s.size()};
}

std::vector<std::string> files_in(const std::filesystem::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

/// The DER of `p12`, which it frees.
std::string to_der(PKCS12* p12) {
  EXPECT_NE(p12, nullptr);
  if (p12 == nullptr) return {};
  unsigned char* der = nullptr;
  const int len = i2d_PKCS12(p12, &der);
  std::string out(reinterpret_cast<const char*>(der), static_cast<std::size_t>(len));
  OPENSSL_free(der);
  PKCS12_free(p12);
  return out;
}

/// A PKCS#12 made by OpenSSL's own PKCS12_create, for layouts Bridgehead does not write.
std::string openssl_p12(EVP_PKEY* key, X509* cert, const std::vector<X509*>& chain, const char* pass) {
  STACK_OF(X509)* ca = sk_X509_new_null();
  for (X509* c : chain) sk_X509_push(ca, c);
  PKCS12* p12 = PKCS12_create(pass, "test", key, cert, ca, NID_aes_256_cbc, NID_aes_256_cbc, 1000, 1000, 0);
  sk_X509_free(ca);
  return to_der(p12);
}

TEST(ConnectorId, CreateSaveLoadWithoutPassword) {
  TempDir dir;
  auto id = make("Exchange Connector/Sales/Acme");
  const auto path = dir.path() / "connector.id";
  ASSERT_TRUE(id.save(path, nullptr, fast()));
  EXPECT_EQ(std::filesystem::status(path).permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  auto prot = is_password_protected(path);
  ASSERT_TRUE(prot) << prot.error().describe();
  EXPECT_FALSE(*prot);
  auto loaded = ConnectorId::load(path, never_asked());
  ASSERT_TRUE(loaded) << loaded.error().describe();
  const auto a = id.info();
  const auto b = loaded->info();
  EXPECT_EQ(b.name, "Exchange Connector/Sales/Acme");
  EXPECT_EQ(b.subject, "CN=Exchange Connector,OU=Sales,O=Acme");
  EXPECT_EQ(b.fingerprint_sha256, a.fingerprint_sha256);
  EXPECT_EQ(b.fingerprint_sha256.size(), 32u * 3 - 1);
  EXPECT_EQ(b.key_type, "ec-p256");
  EXPECT_FALSE(b.is_ca);
  EXPECT_TRUE(b.issuers.empty());  // self-signed
  EXPECT_EQ(EVP_PKEY_eq(id.key(), loaded->key()), 1);
  EXPECT_TRUE(verify(*loaded)) << verify(*loaded).error().describe();
  // A loader without a provider opens an unprotected ID too.
  EXPECT_TRUE(ConnectorId::load(path, nullptr));
}

TEST(ConnectorId, CreateSaveLoadWithPassword) {
  TempDir dir;
  auto id = make("Exchange Connector/Acme");
  const auto path = dir.path() / "connector.id";
  SecretString pw("correct horse");
  ASSERT_TRUE(id.save(path, &pw, fast()));
  EXPECT_TRUE(*is_password_protected(path));
  Answer right{"correct horse"};
  auto loaded = ConnectorId::load(path, right.provider());
  ASSERT_TRUE(loaded) << loaded.error().describe();
  EXPECT_EQ(right.calls, 1);
  EXPECT_EQ(loaded->info().fingerprint_sha256, id.info().fingerprint_sha256);
  EXPECT_EQ(EVP_PKEY_eq(id.key(), loaded->key()), 1);
}

TEST(ConnectorId, WrongOrMissingPasswordIsTold) {
  TempDir dir;
  auto id = make("Exchange Connector/Acme");
  const auto path = dir.path() / "connector.id";
  SecretString pw("correct horse");
  ASSERT_TRUE(id.save(path, &pw, fast()));
  Answer wrong{"battery staple"};
  auto r = ConnectorId::load(path, wrong.provider());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kWrongPassword);
  EXPECT_NE(r.error().message.find("wrong password"), std::string::npos);
  EXPECT_NE(r.error().message.find(path.string()), std::string::npos);
  EXPECT_EQ(wrong.calls, 1);  // asked once, never in a loop
  Answer empty{""};
  EXPECT_EQ(ConnectorId::load(path, empty.provider()).error().code, ErrorCode::kWrongPassword);
  auto none = ConnectorId::load(path, nullptr);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(none.error().message.find("password-protected"), std::string::npos);
  // The provider's own failure comes through unchanged.
  auto refused = ConnectorId::load(path, [](const std::string&) -> Expected<SecretString> {
    return fail(Error::permanent(ErrorCode::kPermission, "pw file mode"));
  });
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kPermission);
  EXPECT_EQ(refused.error().message, "pw file mode");
}

TEST(ConnectorId, InspectTellsProtectionAndNameWithoutPassword) {
  TempDir dir;
  auto id = make("Exchange Connector/Sales/Acme");
  SecretString pw("pw");
  ASSERT_TRUE(id.save(dir.path() / "plain-certs.id", &pw, fast()));
  auto o = inspect(dir.path() / "plain-certs.id");
  ASSERT_TRUE(o) << o.error().describe();
  EXPECT_TRUE(o->password_protected);
  ASSERT_TRUE(o->info);
  EXPECT_EQ(o->info->name, "Exchange Connector/Sales/Acme");
  EXPECT_EQ(o->info->key_type, "ec-p256");
  // With the certificates encrypted too, only the protection can be told.
  SaveOptions enc = fast();
  enc.encrypt_certificates = true;
  ASSERT_TRUE(id.save(dir.path() / "enc-certs.id", &pw, enc));
  auto e = inspect(dir.path() / "enc-certs.id");
  ASSERT_TRUE(e) << e.error().describe();
  EXPECT_TRUE(e->password_protected);
  EXPECT_FALSE(e->info);
  Answer right{"pw"};
  auto loaded = ConnectorId::load(dir.path() / "enc-certs.id", right.provider());
  ASSERT_TRUE(loaded) << loaded.error().describe();
  EXPECT_EQ(loaded->info().name, "Exchange Connector/Sales/Acme");
}

TEST(ConnectorId, DefaultProtectionIsPbkdf2WithManyRoundsAndSha256Mac) {
  auto id = make("Exchange Connector/Acme");
  SecretString pw("pw");
  auto der = id.to_pkcs12(&pw);
  ASSERT_TRUE(der);
  const unsigned char* p = bytes(*der).data();
  PKCS12* p12 = d2i_PKCS12(nullptr, &p, static_cast<long>(der->size()));
  ASSERT_NE(p12, nullptr);
  const ASN1_OCTET_STRING* mac = nullptr;
  const X509_ALGOR* alg = nullptr;
  const ASN1_OCTET_STRING* salt = nullptr;
  const ASN1_INTEGER* iter = nullptr;
  PKCS12_get0_mac(&mac, &alg, &salt, &iter, p12);
  ASSERT_NE(iter, nullptr);
  EXPECT_EQ(ASN1_INTEGER_get(iter), kDefaultKdfIterations);
  EXPECT_GE(kDefaultKdfIterations, 2048);  // at least what `openssl pkcs12 -export` uses
  const ASN1_OBJECT* md = nullptr;
  X509_ALGOR_get0(&md, nullptr, nullptr, alg);
  EXPECT_EQ(OBJ_obj2nid(md), NID_sha256);
  EXPECT_EQ(ASN1_STRING_length(salt), 16);
  PKCS12_free(p12);
}

TEST(ConnectorId, SaveIsAtomicOwnerOnlyAndRefusesToClobberWhenAsked) {
  TempDir dir;
  auto first = make("First/Acme");
  auto second = make("Second/Acme");
  const auto path = dir.path() / "connector.id";
  const mode_t old_umask = ::umask(0);  // even a permissive umask gives 0600
  ASSERT_TRUE(first.save(path, nullptr, fast()));
  ::umask(old_umask);
  EXPECT_EQ(std::filesystem::status(path).permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  const auto before = read_all(path);
  SaveOptions keep = fast();
  keep.overwrite = false;
  auto r = second.save(path, nullptr, keep);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(r.error().message.find("already exists"), std::string::npos);
  EXPECT_EQ(read_all(path), before);
  EXPECT_EQ(files_in(dir.path()), std::vector<std::string>{"connector.id"});  // no temporary left
  ASSERT_TRUE(second.save(path, nullptr, fast()));
  EXPECT_EQ(ConnectorId::load(path, nullptr)->info().name, "Second/Acme");
  EXPECT_EQ(files_in(dir.path()), std::vector<std::string>{"connector.id"});
  auto nowhere = second.save(dir.path() / "missing" / "x.id", nullptr, fast());
  ASSERT_FALSE(nowhere);
  EXPECT_NE(nowhere.error().message.find("missing"), std::string::npos);
}

TEST(ConnectorId, CertifierHierarchy) {
  auto acme = make("/Acme", nullptr, true);
  EXPECT_TRUE(acme.is_certifier());
  EXPECT_TRUE(acme.info().is_ca);
  auto sales = make("/Sales/Acme", &acme, true);
  auto id = make("Exchange Connector/Sales/Acme", &sales);
  const auto info = id.info();
  EXPECT_EQ(info.issuers, (std::vector<std::string>{"/Sales/Acme", "/Acme"}));
  EXPECT_EQ(id.chain().size(), 2u);
  EXPECT_TRUE(verify(id)) << verify(id).error().describe();
  EXPECT_TRUE(verify(sales));
  // The chain survives a save and a load, in order.
  TempDir dir;
  SecretString pw("pw");
  ASSERT_TRUE(id.save(dir.path() / "c.id", &pw, fast()));
  Answer right{"pw"};
  auto loaded = ConnectorId::load(dir.path() / "c.id", right.provider());
  ASSERT_TRUE(loaded) << loaded.error().describe();
  EXPECT_EQ(loaded->info().issuers, info.issuers);
  EXPECT_TRUE(verify(*loaded));
  // A certificate never outlives its certifier's.
  CertificateOptions long_lived;
  long_lived.validity_days = 20000;
  auto capped = make("Long/Sales/Acme", &sales, false, long_lived);
  EXPECT_EQ(capped.info().not_after, sales.info().not_after);
}

TEST(ConnectorId, NamesMustFitTheCertifier) {
  auto acme = make("/Acme", nullptr, true);
  auto leaf = make("Exchange Connector/Acme", &acme);
  CreateOptions plain;
  auto outside = ConnectorId::create(name("X/Sales/Acme"), plain, &acme);
  ASSERT_FALSE(outside);
  EXPECT_EQ(outside.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(outside.error().message.find("not directly under the certifier '/Acme'"), std::string::npos)
      << outside.error().message;
  auto other_org = ConnectorId::create(name("X/Other"), plain, &acme);
  ASSERT_FALSE(other_org);
  auto not_ca = ConnectorId::create(name("Y/Exchange Connector/Acme"), plain, &leaf);
  ASSERT_FALSE(not_ca);
  EXPECT_EQ(not_ca.error().code, ErrorCode::kCertificate);
  EXPECT_NE(not_ca.error().message.find("not a certifier"), std::string::npos);
  CreateOptions ca;
  ca.certifier = true;
  auto cn_certifier = ConnectorId::create(name("X/Acme"), ca);
  ASSERT_FALSE(cn_certifier);
  EXPECT_NE(cn_certifier.error().message.find("has a common name"), std::string::npos);
  auto certifier_name = ConnectorId::create(name("/Acme"), plain);
  ASSERT_FALSE(certifier_name);
  EXPECT_NE(certifier_name.error().message.find("no common name"), std::string::npos);
  CreateOptions bad_days;
  bad_days.certificate.validity_days = 0;
  EXPECT_EQ(ConnectorId::create(name("X/Acme"), bad_days).error().code, ErrorCode::kInvalidArgument);
}

TEST(ConnectorId, CertifyKeepsTheKeyAndRenews) {
  auto acme = make("/Acme", nullptr, true);
  CertificateOptions short_lived;
  short_lived.validity_days = 10;
  auto id = make("Exchange Connector/Acme", &acme, false, short_lived);
  CertificateOptions longer;
  longer.validity_days = 400;
  auto renewed = certify(id, acme, longer);
  ASSERT_TRUE(renewed) << renewed.error().describe();
  EXPECT_EQ(EVP_PKEY_eq(renewed->key(), id.key()), 1);
  EXPECT_NE(renewed->info().fingerprint_sha256, id.info().fingerprint_sha256);
  EXPECT_GT(renewed->info().not_after, id.info().not_after + 300 * kDay);
  EXPECT_EQ(renewed->info().name, "Exchange Connector/Acme");
  EXPECT_TRUE(verify(*renewed));
  // Move under another certifier of the same name (a new /Acme key).
  auto acme2 = make("/Acme", nullptr, true);
  auto moved = certify(id, acme2);
  ASSERT_TRUE(moved) << moved.error().describe();
  EXPECT_EQ(X509_cmp(moved->chain().front(), acme2.certificate()), 0);
  EXPECT_TRUE(verify(*moved));
  // A certifier renews itself: same key, self-signed, still a CA.
  auto self = certify(acme, acme, longer);
  ASSERT_TRUE(self) << self.error().describe();
  EXPECT_TRUE(self->is_certifier());
  EXPECT_TRUE(self->chain().empty());
  EXPECT_TRUE(verify(*self));
  // IDs it certified before still verify against the renewed certifier.
  auto rechained = certify(id, *self);
  ASSERT_TRUE(rechained);
  EXPECT_TRUE(verify(*rechained));
  // Outside the hierarchy: refused.
  auto other = make("/Other", nullptr, true);
  auto refused = certify(id, other);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kInvalidArgument);
}

TEST(ConnectorId, ExpiredAndNotYetValid) {
  CertificateOptions past;
  past.not_before = Clock::now() - 400 * kDay;
  past.validity_days = 30;
  auto expired = make("Old/Acme", nullptr, false, past);
  auto r = verify(expired);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kCertificate);
  const std::string date = format_time(expired.info().not_after);
  EXPECT_NE(r.error().message.find("expired on " + date), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().remedy.find("bridgehead id certify"), std::string::npos);

  CertificateOptions future;
  future.not_before = Clock::now() + 10 * kDay;
  auto early = make("Early/Acme", nullptr, false, future);
  auto e = verify(early);
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().code, ErrorCode::kCertificate);
  EXPECT_NE(e.error().message.find("not valid before " + format_time(early.info().not_before)), std::string::npos)
      << e.error().message;

  auto fine = make("Fine/Acme");
  EXPECT_TRUE(verify(fine));
  auto later = verify(fine, Clock::now() + 1000 * kDay);
  ASSERT_FALSE(later);
  EXPECT_NE(later.error().message.find("expired on"), std::string::npos);
}

TEST(ConnectorId, ExpiredCertifierIsNamed) {
  CertificateOptions past;
  past.not_before = Clock::now() - 400 * kDay;
  past.validity_days = 365;
  auto acme = make("/Acme", nullptr, true, past);
  CreateOptions plain;
  auto refused = ConnectorId::create(name("X/Acme"), plain, &acme);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kCertificate);
  EXPECT_NE(refused.error().message.find("the certifier cannot certify"), std::string::npos);
  EXPECT_NE(refused.error().message.find("expired on"), std::string::npos);
  // An ID certified while the certifier was valid: verify names the certifier.
  CertificateOptions then;
  then.not_before = Clock::now() - 300 * kDay;
  then.validity_days = 600;
  auto good_acme = make("/Acme", nullptr, true);
  auto id = make("X/Acme", &good_acme, false, then);
  ASSERT_TRUE(verify(id));
  auto r = verify(id, Clock::now() + 3700 * kDay);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("expired"), std::string::npos);
}

TEST(ConnectorId, BrokenChainAndMismatchedKey) {
  auto acme = make("/Acme", nullptr, true);
  auto id = make("X/Acme", &acme);
  // Without its certifier in the file, the chain is broken.
  const auto lone = openssl_p12(id.key(), id.certificate(), {}, "pw");
  Answer pw{"pw"};
  auto loaded = ConnectorId::load_from_memory(bytes(lone), pw.provider());
  ASSERT_TRUE(loaded) << loaded.error().describe();
  auto r = verify(*loaded);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kCertificate);
  EXPECT_NE(r.error().message.find("broken"), std::string::npos);
  EXPECT_NE(r.error().message.find("/Acme"), std::string::npos);
  // A chain holding the wrong certifier (same name, other key): the signature fails.
  auto impostor = make("/Acme", nullptr, true);
  const auto wrong = openssl_p12(id.key(), id.certificate(), {impostor.certificate()}, "pw");
  auto w = ConnectorId::load_from_memory(bytes(wrong), pw.provider());
  ASSERT_TRUE(w);
  auto wr = verify(*w);
  ASSERT_FALSE(wr);
  EXPECT_EQ(wr.error().code, ErrorCode::kCertificate);
  EXPECT_NE(wr.error().message.find("broken"), std::string::npos) << wr.error().message;
  // A key that matches no certificate.
  // PKCS12_create refuses a key with a foreign certificate, so the bags are put together by hand.
  auto other = make("Y/Acme");
  STACK_OF(PKCS12_SAFEBAG)* bags = nullptr;
  PKCS12_add_cert(&bags, id.certificate());
  PKCS12_add_key(&bags, other.key(), 0, 1000, NID_aes_256_cbc, "pw");
  STACK_OF(PKCS7)* safes = nullptr;
  PKCS12_add_safe(&safes, bags, -1, 0, nullptr);
  sk_PKCS12_SAFEBAG_pop_free(bags, PKCS12_SAFEBAG_free);
  PKCS12* p12 = PKCS12_add_safes(safes, 0);
  sk_PKCS7_pop_free(safes, PKCS7_free);
  PKCS12_set_mac(p12, "pw", -1, nullptr, 0, 1000, EVP_sha256());
  const std::string mismatched = to_der(p12);
  auto m = ConnectorId::load_from_memory(bytes(mismatched), pw.provider());
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code, ErrorCode::kCorrupt);
  EXPECT_NE(m.error().message.find("matches none"), std::string::npos);
}

TEST(ConnectorId, MissingKeyOrCertificate) {
  auto id = make("X/Acme");
  // Certificates only.
  STACK_OF(X509)* ca = sk_X509_new_null();
  sk_X509_push(ca, id.certificate());
  const std::string certs_only =
      to_der(PKCS12_create("pw", nullptr, nullptr, nullptr, ca, NID_aes_256_cbc, NID_aes_256_cbc, 1000, 1000, 0));
  sk_X509_free(ca);
  Answer pw{"pw"};
  auto r = ConnectorId::load_from_memory(bytes(certs_only), pw.provider());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kCorrupt);
  EXPECT_NE(r.error().message.find("no private key"), std::string::npos);
  // A key only.
  const std::string key_only =
      to_der(PKCS12_create("pw", nullptr, id.key(), nullptr, nullptr, NID_aes_256_cbc, NID_aes_256_cbc, 1000, 1000, 0));
  auto k = ConnectorId::load_from_memory(bytes(key_only), pw.provider());
  ASSERT_FALSE(k);
  EXPECT_EQ(k.error().code, ErrorCode::kCorrupt);
  EXPECT_NE(k.error().message.find("no certificate"), std::string::npos);
}

TEST(ConnectorId, TruncatedFilesAreCleanErrors) {
  auto id = make("X/Acme");
  SecretString pw("pw");
  for (const SecretString* p : {static_cast<const SecretString*>(nullptr), static_cast<const SecretString*>(&pw)}) {
    const auto der = *id.to_pkcs12(p, fast());
    for (std::size_t n = 0; n < der.size(); n += (n < 64 ? 1 : 13)) {
      Answer a{"pw"};
      auto r = ConnectorId::load_from_memory(bytes(der.substr(0, n)), a.provider());
      ASSERT_FALSE(r) << n;
      EXPECT_TRUE(r.error().code == ErrorCode::kParse || r.error().code == ErrorCode::kCorrupt)
          << n << ": " << r.error().describe();
      EXPECT_FALSE(r.error().message.empty());
    }
    Answer a{"pw"};
    auto half = ConnectorId::load_from_memory(bytes(der.substr(0, der.size() / 2)), a.provider(), "the file");
    ASSERT_FALSE(half);
    EXPECT_EQ(half.error().code, ErrorCode::kCorrupt);
    EXPECT_NE(half.error().message.find("the file is damaged: it is truncated"), std::string::npos)
        << half.error().message;
    auto trailing = ConnectorId::load_from_memory(bytes(der + "xyz"), a.provider());
    ASSERT_FALSE(trailing);
    EXPECT_EQ(trailing.error().code, ErrorCode::kCorrupt);
  }
}

TEST(ConnectorId, CorruptedBytesNeverCrash) {
  auto id = make("X/Acme");
  SecretString pw("pw");
  for (const SecretString* p : {static_cast<const SecretString*>(nullptr), static_cast<const SecretString*>(&pw)}) {
    const auto der = *id.to_pkcs12(p, fast());
    for (std::size_t i = 0; i < der.size(); i += 3) {
      std::string bad = der;
      bad[i] = static_cast<char>(bad[i] ^ 0x5A);
      Answer a{"pw"};
      auto r = ConnectorId::load_from_memory(bytes(bad), a.provider());
      if (r) continue;  // a flip in a part nothing checks (none expected, but not a crash either)
      const auto c = r.error().code;
      EXPECT_TRUE(c == ErrorCode::kParse || c == ErrorCode::kCorrupt || c == ErrorCode::kWrongPassword ||
                  c == ErrorCode::kLimit)
          << i << ": " << r.error().describe();
      EXPECT_LE(a.calls, 1);
    }
  }
}

TEST(ConnectorId, NotPkcs12) {
  auto id = make("X/Acme");
  Answer a{"pw"};
  auto empty = ConnectorId::load_from_memory({}, a.provider(), "f");
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error().code, ErrorCode::kParse);
  EXPECT_NE(empty.error().message.find("is empty"), std::string::npos);
  const std::string text = "hello, this is not an ID\n";
  auto t = ConnectorId::load_from_memory(bytes(text), a.provider(), "f");
  ASSERT_FALSE(t);
  EXPECT_EQ(t.error().code, ErrorCode::kParse);
  EXPECT_NE(t.error().message.find("f is not a PKCS#12 file"), std::string::npos);
  // A PEM certificate.
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, id.certificate());
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio, &data);
  const std::string pem(data, static_cast<std::size_t>(len));
  BIO_free(bio);
  auto pr = ConnectorId::load_from_memory(bytes(pem), a.provider(), "f");
  ASSERT_FALSE(pr);
  EXPECT_EQ(pr.error().code, ErrorCode::kParse);
  EXPECT_NE(pr.error().message.find("PEM"), std::string::npos);
  EXPECT_NE(pr.error().remedy.find("openssl pkcs12 -export"), std::string::npos);
  // A DER certificate: DER, but not a PFX.
  unsigned char* der = nullptr;
  const int dlen = i2d_X509(id.certificate(), &der);
  const std::string cert_der(reinterpret_cast<const char*>(der), static_cast<std::size_t>(dlen));
  OPENSSL_free(der);
  auto dr = ConnectorId::load_from_memory(bytes(cert_der), a.provider(), "f");
  ASSERT_FALSE(dr);
  EXPECT_EQ(dr.error().code, ErrorCode::kParse);
  EXPECT_EQ(a.calls, 0);
  TempDir dir;
  auto missing = ConnectorId::load(dir.path() / "none.id", a.provider());
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
  EXPECT_NE(missing.error().message.find("none.id does not exist"), std::string::npos);
}

TEST(ConnectorId, AbsurdIterationCountsAreRefusedBeforeDeriving) {
  auto id = make("X/Acme");
  SecretString pw("pw");
  SaveOptions many = fast();
  many.kdf_iterations = 5000;
  const auto der = *id.to_pkcs12(&pw, many);
  LoadOptions strict;
  strict.max_kdf_iterations = 4000;
  Answer a{"pw"};
  auto r = ConnectorId::load_from_memory(bytes(der), a.provider(), "f", strict);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kLimit);
  EXPECT_NE(r.error().message.find("5000"), std::string::npos);
  EXPECT_EQ(a.calls, 0);
}

TEST(ConnectorId, RsaKeysAndDnsNames) {
  CreateOptions o;
  o.key = KeyType::kRsa3072;
  o.certificate.dns_names = {"bridgehead.example", "mx.example"};
  auto id = ConnectorId::create(name("Exchange Connector/Acme"), o);
  ASSERT_TRUE(id) << id.error().describe();
  EXPECT_EQ(id->info().key_type, "rsa-3072");
  EXPECT_EQ(id->info().dns_names, o.certificate.dns_names);
  EXPECT_TRUE(verify(*id));
  // Re-certifying keeps the DNS names.
  auto again = certify(*id, *id);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->info().dns_names, o.certificate.dns_names);
  o.certificate.dns_names = {"bad name"};
  EXPECT_EQ(ConnectorId::create(name("X/Acme"), o).error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(*parse_key_type("rsa-3072"), KeyType::kRsa3072);
  EXPECT_FALSE(parse_key_type("dsa"));
}

TEST(ConnectorId, InstallsIntoATlsContext) {
  auto acme = make("/Acme", nullptr, true);
  auto id = make("X/Acme", &acme);
  SSL_CTX* ctx = SSL_CTX_new(TLS_method());
  ASSERT_NE(ctx, nullptr);
  EXPECT_TRUE(id.use_in(ctx));
  EXPECT_EQ(X509_cmp(SSL_CTX_get0_certificate(ctx), id.certificate()), 0);
  STACK_OF(X509)* chain = nullptr;
  SSL_CTX_get0_chain_certs(ctx, &chain);
  ASSERT_NE(chain, nullptr);
  EXPECT_EQ(sk_X509_num(chain), 1);
  SSL_CTX_free(ctx);
  auto shared = id.share();
  EXPECT_EQ(shared.certificate(), id.certificate());
}

}  // namespace
}  // namespace bridgehead::identity
