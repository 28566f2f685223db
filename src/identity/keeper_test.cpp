#include "identity/keeper.hpp"

#include <fstream>
#include <map>

#include <gtest/gtest.h>

#include "identity/testdata/ids.hpp"
#include "temp_dir.hpp"

namespace bridgehead::identity {
namespace {

using test_support::TempDir;
using namespace std::chrono_literals;

constexpr auto kDay = std::chrono::hours(24);

using testing::fast;

// The keeper tests vary the certificate more than the certifier: that goes first.
ConnectorId make(std::string_view n, CertificateOptions cert = {}, const ConnectorId* certifier = nullptr,
                 bool ca = false) {
  return testing::make(n, certifier, ca, std::move(cert));
}

class IdKeeperTest : public ::testing::Test {
 protected:
  std::filesystem::path save(const ConnectorId& id, const char* password) {
    const auto path = dir_.path() / "connector.id";
    SecretString pw(password == nullptr ? "" : password);
    auto saved = id.save(path, password == nullptr ? nullptr : &pw, fast());
    EXPECT_TRUE(saved) << saved.error().describe();
    last_ = path;
    return path;
  }
  std::filesystem::path keeper_file_for(const char* password) {
    return save(make("Exchange Connector/Acme"), password);
  }
  const std::filesystem::path& keeper_file() const { return last_; }
  TempDir dir_;
  std::filesystem::path last_;
};

TEST_F(IdKeeperTest, AnIdWithoutPasswordOpensWithoutOne) {
  IdKeeper keeper(save(make("Exchange Connector/Acme"), nullptr));
  EXPECT_EQ(keeper.status(), IdStatus::kLocked);
  EXPECT_TRUE(keeper.problem().has_value());
  auto opened = keeper.open(nullptr);
  ASSERT_TRUE(opened) << opened.error().describe();
  EXPECT_EQ(keeper.status(), IdStatus::kOpen);
  EXPECT_FALSE(keeper.problem().has_value());
  ASSERT_NE(keeper.current(), nullptr);
  EXPECT_EQ(keeper.current()->info().name, "Exchange Connector/Acme");
  EXPECT_EQ(keeper.waiting_activity(), "");
}

TEST_F(IdKeeperTest, ALockedIdSaysWhatIsMissingAndHowToGiveIt) {
  IdKeeper keeper(save(make("Exchange Connector/Acme"), "s3cret"));
  auto opened = keeper.open(nullptr);
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(keeper.status(), IdStatus::kLocked);
  EXPECT_EQ(keeper.current(), nullptr);
  EXPECT_EQ(keeper.waiting_activity(), "waiting for the connector ID password");
  const auto problem = keeper.problem();
  ASSERT_TRUE(problem);
  EXPECT_NE(problem->message.find("password-protected"), std::string::npos) << problem->message;
  EXPECT_NE(problem->message.find(keeper.file().string()), std::string::npos);
  for (const char* way : {"bridgehead unlock", "id_password_file", "bridgehead-id-password", "BRIDGEHEAD_ID_PASSWORD"}) {
    EXPECT_NE(problem->remedy.find(way), std::string::npos) << way << " missing from: " << problem->remedy;
  }
  SecretString right("s3cret");
  ASSERT_TRUE(keeper.open(&right));
  EXPECT_EQ(keeper.status(), IdStatus::kOpen);
}

TEST_F(IdKeeperTest, WrongPasswordsAreCountedAndSlowedDown) {
  IdKeeper keeper(save(make("Exchange Connector/Acme"), "s3cret"));
  const auto t0 = Clock::now();
  SecretString wrong("guess");
  for (int i = 1; i <= kFreeWrongPasswords + 1; ++i) {
    auto r = keeper.open(&wrong, t0);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, ErrorCode::kWrongPassword) << r.error().describe();
    EXPECT_NE(r.error().message.find("wrong password"), std::string::npos);
    EXPECT_EQ(keeper.wrong_passwords(), i);
  }
  EXPECT_EQ(keeper.status(), IdStatus::kRejected);
  EXPECT_NE(keeper.waiting_activity().find("wrong"), std::string::npos);
  // Past the free tries, the next one (even the right one) must wait a second.
  SecretString right("s3cret");
  auto early = keeper.open(&right, t0 + 500ms);
  ASSERT_FALSE(early);
  EXPECT_EQ(early.error().code, ErrorCode::kLimit);
  EXPECT_NE(early.error().message.find("try is accepted in 1 s"), std::string::npos) << early.error().message;
  EXPECT_EQ(keeper.current(), nullptr);
  // One more wrong one after the wait doubles it.
  ASSERT_EQ(keeper.open(&wrong, t0 + 1s).error().code, ErrorCode::kWrongPassword);
  EXPECT_EQ(keeper.open(&right, t0 + 2500ms).error().code, ErrorCode::kLimit);
  auto opened = keeper.open(&right, t0 + 3s);
  ASSERT_TRUE(opened) << opened.error().describe();
  EXPECT_EQ(keeper.wrong_passwords(), 0);
}

TEST_F(IdKeeperTest, TheDelayStopsGrowingAtItsCap) {
  IdKeeper keeper(save(make("Exchange Connector/Acme"), "s3cret"));
  SecretString wrong("guess");
  auto t = Clock::now();
  for (int i = 0; i < 20; ++i) {
    ASSERT_EQ(keeper.open(&wrong, t).error().code, ErrorCode::kWrongPassword);
    t += kMaxUnlockDelay;
  }
  SecretString right("s3cret");
  EXPECT_EQ(keeper.open(&right, t - kMaxUnlockDelay + 59s).error().code, ErrorCode::kLimit);
  EXPECT_TRUE(keeper.open(&right, t));
}

TEST_F(IdKeeperTest, AnExpiredCertificateSaysWhenItExpired) {
  CertificateOptions c;
  c.validity_days = 1;
  c.not_before = Clock::now() - 3 * kDay;
  IdKeeper keeper(save(make("Exchange Connector/Acme", c), nullptr));
  auto r = keeper.open(nullptr);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kCertificate);
  EXPECT_NE(r.error().message.find("expired on"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().remedy.find("bridgehead id certify"), std::string::npos) << r.error().remedy;
  EXPECT_EQ(keeper.status(), IdStatus::kUnusable);
  EXPECT_NE(keeper.waiting_activity().find("expired on"), std::string::npos);
}

TEST_F(IdKeeperTest, ANotYetValidCertificateIsRefused) {
  CertificateOptions c;
  c.not_before = Clock::now() + 2 * kDay;
  IdKeeper keeper(save(make("Exchange Connector/Acme", c), nullptr));
  auto r = keeper.open(nullptr);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kCertificate);
  EXPECT_NE(r.error().message.find("not valid before"), std::string::npos) << r.error().message;
}

TEST_F(IdKeeperTest, ExpiryWhileRunningTakesTheIdAway) {
  CertificateOptions c;
  c.validity_days = 10;
  IdKeeper keeper(save(make("Exchange Connector/Acme", c), nullptr));
  ASSERT_TRUE(keeper.open(nullptr));
  EXPECT_TRUE(keeper.expires_soon());
  EXPECT_FALSE(keeper.check_expiry(Clock::now()));
  EXPECT_TRUE(keeper.check_expiry(Clock::now() + 11 * kDay));
  EXPECT_EQ(keeper.current(), nullptr);
  EXPECT_EQ(keeper.status(), IdStatus::kUnusable);
  ASSERT_TRUE(keeper.problem());
  EXPECT_NE(keeper.problem()->message.find("expired on"), std::string::npos);
}

TEST_F(IdKeeperTest, AFailedReReadKeepsTheWorkingId) {
  const auto path = save(make("Exchange Connector/Acme"), "s3cret");
  IdKeeper keeper(path);
  SecretString right("s3cret");
  ASSERT_TRUE(keeper.open(&right));
  SecretString wrong("guess");
  ASSERT_FALSE(keeper.open(&wrong));
  EXPECT_EQ(keeper.status(), IdStatus::kOpen);
  EXPECT_NE(keeper.current(), nullptr);
}

TEST_F(IdKeeperTest, AMissingOrDamagedFileIsUnusableWithARemedy) {
  IdKeeper missing(dir_.path() / "nope.id");
  auto r = missing.open(nullptr);
  ASSERT_FALSE(r);
  EXPECT_EQ(missing.status(), IdStatus::kUnusable);
  EXPECT_NE(r.error().remedy.find("bridgehead unlock"), std::string::npos) << r.error().remedy;

  const auto path = save(make("Exchange Connector/Acme"), nullptr);
  std::filesystem::resize_file(path, 100);
  IdKeeper damaged(path);
  auto d = damaged.open(nullptr);
  ASSERT_FALSE(d);
  EXPECT_EQ(damaged.status(), IdStatus::kUnusable);
}

TEST_F(IdKeeperTest, UnlockReadsARecertifiedFileAgain) {
  CertificateOptions c;
  c.validity_days = 1;
  c.not_before = Clock::now() - 3 * kDay;
  CertificateOptions ten_years;
  ten_years.validity_days = 3650;
  const auto certifier = make("/Acme", ten_years, nullptr, true);
  const auto old_id = make("Exchange Connector/Acme", c, &certifier);
  const auto path = save(old_id, nullptr);
  IdKeeper keeper(path);
  ASSERT_FALSE(keeper.open(nullptr));
  // What `bridgehead id certify` does: a new certificate for the same key, written in place.
  auto renewed = certify(old_id, certifier, CertificateOptions{});
  ASSERT_TRUE(renewed) << renewed.error().describe();
  ASSERT_TRUE(renewed->save(path, nullptr, fast()));
  auto opened = keeper.open(nullptr);
  ASSERT_TRUE(opened) << opened.error().describe();
  EXPECT_EQ(keeper.status(), IdStatus::kOpen);
}

// An environment of our own: variables from `vars`, a terminal when `typed` is set.
Environment fake_env(std::map<std::string, std::string> vars, std::optional<std::string> typed = std::nullopt) {
  Environment env;
  env.get = [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
  env.has_terminal = [typed] { return typed.has_value(); };
  env.prompt = [typed](std::string_view) -> Expected<SecretString> { return SecretString(typed.value_or("")); };
  return env;
}

TEST_F(IdKeeperTest, AtStartAnIdWithoutPasswordNeedsNoSource) {
  IdKeeper keeper(save(make("Exchange Connector/Acme"), nullptr));
  auto r = open_at_start(keeper, "", fake_env({}), "");
  EXPECT_FALSE(r.password_needed);
  EXPECT_FALSE(r.source_error);
  EXPECT_EQ(keeper.status(), IdStatus::kOpen);
}

TEST_F(IdKeeperTest, AtStartThePasswordComesFromTheFirstConfiguredSource) {
  IdKeeper from_env(save(make("Exchange Connector/Acme"), "s3cret"));
  auto r = open_at_start(from_env, "", fake_env({{std::string(kPasswordEnvVar), "s3cret"}}, "wrong"), "");
  EXPECT_TRUE(r.password_needed);
  EXPECT_EQ(r.source.source, PasswordSource::kEnvironment);
  EXPECT_FALSE(r.source_error);
  EXPECT_EQ(from_env.status(), IdStatus::kOpen);

  IdKeeper from_terminal(keeper_file());
  r = open_at_start(from_terminal, "", fake_env({}, "s3cret"), "Password: ");
  EXPECT_EQ(r.source.source, PasswordSource::kTerminal);
  EXPECT_EQ(from_terminal.status(), IdStatus::kOpen);

  IdKeeper none(keeper_file());
  r = open_at_start(none, "", fake_env({}), "");
  EXPECT_EQ(r.source.source, PasswordSource::kNone);
  EXPECT_FALSE(r.source_error) << "no source configured is a state, not a failure of one";
  EXPECT_EQ(none.status(), IdStatus::kLocked);
}

TEST_F(IdKeeperTest, AtStartAFailingOrWrongSourceIsNamedWithItsRemedy) {
  const auto id = keeper_file_for("s3cret");
  const auto loose = dir_.path() / "loose.pw";
  {
    std::ofstream(loose) << "s3cret\n";
  }
  std::filesystem::permissions(loose, std::filesystem::perms(0644));
  IdKeeper keeper(id);
  auto r = open_at_start(keeper, loose, fake_env({}), "");
  ASSERT_TRUE(r.source_error);
  EXPECT_NE(r.source_error->message.find("stays locked"), std::string::npos) << r.source_error->message;
  EXPECT_NE(r.source_error->describe().find("chmod 600"), std::string::npos) << r.source_error->describe();
  EXPECT_NE(r.source_error->remedy.find("bridgehead unlock"), std::string::npos);
  EXPECT_EQ(keeper.status(), IdStatus::kLocked);

  IdKeeper wrong(id);
  r = open_at_start(wrong, "", fake_env({{std::string(kPasswordEnvVar), "guess"}}), "");
  ASSERT_TRUE(r.source_error);
  EXPECT_EQ(r.source_error->code, ErrorCode::kWrongPassword);
  EXPECT_NE(r.source_error->remedy.find("the password from environment variable BRIDGEHEAD_ID_PASSWORD"), std::string::npos)
      << r.source_error->remedy;
  EXPECT_EQ(wrong.status(), IdStatus::kRejected);
}

}  // namespace
}  // namespace bridgehead::identity
