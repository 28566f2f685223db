// Interop with the real `openssl` binary: what `openssl pkcs12 -export` writes loads, and
// what Bridgehead writes opens with `openssl pkcs12 -info`, protected as documented.
#include <sys/stat.h>
#include <sys/wait.h>

#include <cstdio>
#include <fstream>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "identity/id_file.hpp"
#include "temp_dir.hpp"

namespace bridgehead::identity {
namespace {

using test_support::TempDir;

struct CommandResult {
  int status = -1;
  std::string output;
};

class OpensslInterop : public ::testing::Test {
 protected:
  void SetUp() override {
    openssl_ = BRIDGEHEAD_OPENSSL_BIN;
    ASSERT_FALSE(openssl_.empty()) << "openssl is not installed: install the Debian package 'openssl' "
                                      "(scripts/install-deps does)";
    pw_file_ = dir_.path() / "pw";
    std::ofstream(pw_file_) << "s3cret pass\n";
    ::chmod(pw_file_.c_str(), 0600);
  }

  /// Runs `openssl ARGS` in the temp dir; stdout and stderr together.
  CommandResult openssl(const std::string& args) {
    const std::string cmd = fmt::format("cd '{}' && '{}' {} 2>&1", dir_.path().string(), openssl_, args);
    CommandResult r;
    FILE* p = ::popen(cmd.c_str(), "r");
    if (p == nullptr) return r;
    char buf[4096];
    size_t n = 0;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
    const int st = ::pclose(p);
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return r;
  }

  void must(const std::string& args) {
    auto r = openssl(args);
    ASSERT_EQ(r.status, 0) << "openssl " << args << ":\n" << r.output;
  }

  PasswordProvider password() {
    return [](const std::string&) -> Expected<SecretString> { return SecretString("s3cret pass"); };
  }

  std::filesystem::path path(const char* name) const { return dir_.path() / name; }

  TempDir dir_;
  std::string openssl_;
  std::filesystem::path pw_file_;
};

TEST_F(OpensslInterop, OpensslExportLoads) {
  must(
      "req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout key.pem -out cert.pem -days 30 "
      "-subj '/O=Acme/OU=Sales/CN=Exchange Connector'");
  must(
      "pkcs12 -export -inkey key.pem -in cert.pem -out explicit.p12 -passout file:pw -keypbe AES-256-CBC "
      "-certpbe AES-256-CBC -macalg sha256");
  must("pkcs12 -export -inkey key.pem -in cert.pem -out default.p12 -passout file:pw");
  must(
      "pkcs12 -export -inkey key.pem -in cert.pem -out tdes.p12 -passout file:pw -keypbe PBE-SHA1-3DES "
      "-certpbe PBE-SHA1-3DES");
  for (const char* f : {"explicit.p12", "default.p12", "tdes.p12"}) {
    auto id = ConnectorId::load(path(f), password());
    ASSERT_TRUE(id) << f << ": " << id.error().describe();
    EXPECT_EQ(id->info().name, "Exchange Connector/Sales/Acme") << f;
    EXPECT_EQ(id->info().key_type, "ec-p256");
    EXPECT_TRUE(verify(*id)) << f << ": " << verify(*id).error().describe();
    auto o = inspect(path(f));
    ASSERT_TRUE(o) << o.error().describe();
    EXPECT_TRUE(o->password_protected);
    EXPECT_FALSE(o->info) << "openssl encrypts the certificates by default";
  }
  // Without a password (`-passout pass:`, no encryption).
  must("pkcs12 -export -inkey key.pem -in cert.pem -out open.p12 -passout pass: -keypbe NONE -certpbe NONE");
  EXPECT_FALSE(*is_password_protected(path("open.p12")));
  auto open = ConnectorId::load(path("open.p12"), nullptr);
  ASSERT_TRUE(open) << open.error().describe();
  // Wrong password.
  auto wrong = ConnectorId::load(path("explicit.p12"),
                                 [](const std::string&) -> Expected<SecretString> { return SecretString("nope"); });
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().code, ErrorCode::kWrongPassword);
}

TEST_F(OpensslInterop, OpensslChainLoadsInOrder) {
  must(
      "req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.pem -days 30 "
      "-subj '/O=Acme' -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign");
  must(
      "req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout leaf.key -out leaf.csr "
      "-subj '/O=Acme/CN=Exchange Connector'");
  must("x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out leaf.pem -days 20");
  must("pkcs12 -export -inkey leaf.key -in leaf.pem -certfile ca.pem -out chain.p12 -passout file:pw");
  auto id = ConnectorId::load(path("chain.p12"), password());
  ASSERT_TRUE(id) << id.error().describe();
  EXPECT_EQ(id->info().name, "Exchange Connector/Acme");
  EXPECT_EQ(id->info().issuers, std::vector<std::string>{"/Acme"});
  EXPECT_TRUE(verify(*id)) << verify(*id).error().describe();
}

TEST_F(OpensslInterop, LegacyRc2IsRefusedWithAWayOut) {
  must(
      "req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout key.pem -out cert.pem -days 30 "
      "-subj '/O=Acme/CN=X'");
  must("pkcs12 -export -legacy -inkey key.pem -in cert.pem -out legacy.p12 -passout file:pw");
  auto id = ConnectorId::load(path("legacy.p12"), password());
  ASSERT_FALSE(id);
  EXPECT_EQ(id.error().code, ErrorCode::kParse);
  EXPECT_NE(id.error().message.find("RC2"), std::string::npos) << id.error().message;
  EXPECT_NE(id.error().remedy.find("AES-256-CBC"), std::string::npos);
}

TEST_F(OpensslInterop, BridgeheadFileOpensWithOpensslAndUsesModernProtection) {
  auto id = ConnectorId::create(*parse_notes_name("Exchange Connector/Sales/Acme"), CreateOptions{}, nullptr);
  ASSERT_TRUE(id);
  SecretString pw("s3cret pass");
  ASSERT_TRUE(id->save(path("connector.id"), &pw));  // the real default: 600000 rounds
  auto info = openssl("pkcs12 -info -in connector.id -passin file:pw -noout");
  ASSERT_EQ(info.status, 0) << info.output;
  EXPECT_NE(info.output.find("Shrouded Keybag: PBES2, PBKDF2, AES-256-CBC, Iteration 600000, PRF hmacWithSHA256"),
            std::string::npos)
      << info.output;
  EXPECT_NE(info.output.find("MAC: sha256, Iteration 600000"), std::string::npos) << info.output;
  EXPECT_EQ(info.output.find("RC2"), std::string::npos);
  EXPECT_EQ(info.output.find("3DES"), std::string::npos);
  auto subject = openssl("pkcs12 -in connector.id -passin file:pw -nokeys -clcerts | '" + openssl_ +
                         "' x509 -noout -subject -nameopt RFC2253");
  ASSERT_EQ(subject.status, 0) << subject.output;
  EXPECT_NE(subject.output.find("subject=CN=Exchange Connector,OU=Sales,O=Acme"), std::string::npos) << subject.output;
  auto wrong = openssl("pkcs12 -info -in connector.id -passin pass:nope -noout");
  EXPECT_NE(wrong.status, 0);

  // With the certificates encrypted too.
  SaveOptions enc;
  enc.encrypt_certificates = true;
  enc.kdf_iterations = 2048;
  ASSERT_TRUE(id->save(path("enc.id"), &pw, enc));
  auto e = openssl("pkcs12 -info -in enc.id -passin file:pw -noout");
  ASSERT_EQ(e.status, 0) << e.output;
  EXPECT_NE(e.output.find("PKCS7 Encrypted data: PBES2, PBKDF2, AES-256-CBC, Iteration 2048"), std::string::npos)
      << e.output;

  // Without a password: opens with an empty one, key in the clear.
  ASSERT_TRUE(id->save(path("open.id"), nullptr));
  auto open = openssl("pkcs12 -info -in open.id -nodes -passin pass:");
  ASSERT_EQ(open.status, 0) << open.output;
  EXPECT_NE(open.output.find("BEGIN PRIVATE KEY"), std::string::npos) << open.output;
  EXPECT_NE(open.output.find("MAC: sha256"), std::string::npos) << open.output;
}

}  // namespace
}  // namespace bridgehead::identity
