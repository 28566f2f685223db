#include "identity/password.hpp"

#include <sys/stat.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <type_traits>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "temp_dir.hpp"

namespace bridgehead::identity {
namespace {

using test_support::TempDir;

static_assert(!std::is_copy_constructible_v<SecretString>, "a password is never copied implicitly");
static_assert(!fmt::is_formattable<SecretString>::value, "a password cannot be formatted into a log line");

std::filesystem::path write_file(const std::filesystem::path& p, std::string_view content, mode_t mode) {
  {
    std::ofstream f(p, std::ios::binary | std::ios::trunc);
    f << content;
  }
  ::chmod(p.c_str(), mode);
  return p;
}

/// An environment made of a map, a terminal flag and a scripted prompt.
struct FakeEnv {
  std::map<std::string, std::string> vars;
  bool terminal = false;
  int prompts = 0;
  Environment env() {
    Environment e;
    e.get = [this](const std::string& name) -> std::optional<std::string> {
      auto it = vars.find(name);
      if (it == vars.end()) return std::nullopt;
      return it->second;
    };
    e.has_terminal = [this] { return terminal; };
    e.prompt = [this](std::string_view) -> Expected<SecretString> {
      ++prompts;
      return SecretString("typed");
    };
    return e;
  }
};

TEST(SecretString, HoldsGrowsMovesAndWipes) {
  SecretString s("abc");
  EXPECT_EQ(s.view(), "abc");
  EXPECT_EQ(std::string(s.c_str()), "abc");
  for (int i = 0; i < 200; ++i) s.push_back('x');
  EXPECT_EQ(s.size(), 203u);
  EXPECT_EQ(s.c_str()[203], '\0');
  SecretString moved(std::move(s));
  EXPECT_TRUE(s.empty());  // NOLINT(bugprone-use-after-move): moved-from is empty by contract
  EXPECT_EQ(moved.size(), 203u);
  SecretString copy = moved.clone();
  EXPECT_TRUE(copy.equals(moved));
  EXPECT_FALSE(copy.equals(SecretString("abc")));
  // clear() wipes the bytes in place (the buffer stays allocated, so this read is sound).
  const char* buffer = moved.c_str();
  moved.clear();
  EXPECT_TRUE(moved.empty());
  for (int i = 0; i < 203; ++i) ASSERT_EQ(buffer[i], '\0') << i;
  SecretString assigned;
  assigned = std::move(copy);
  EXPECT_EQ(assigned.size(), 203u);
  EXPECT_EQ(SecretString().c_str()[0], '\0');
}

TEST(PasswordFile, OwnerOnlyFileIsReadAndOneNewlineDropped) {
  TempDir dir;
  EXPECT_EQ(read_password_file(write_file(dir.path() / "a", "s3cret\n", 0600), "x")->view(), "s3cret");
  EXPECT_EQ(read_password_file(write_file(dir.path() / "b", "s3cret\r\n", 0600), "x")->view(), "s3cret");
  EXPECT_EQ(read_password_file(write_file(dir.path() / "c", "s3cret\n\n", 0600), "x")->view(), "s3cret\n");
  EXPECT_EQ(read_password_file(write_file(dir.path() / "d", " two words ", 0400), "x")->view(), " two words ");
}

TEST(PasswordFile, GroupOrWorldAccessIsRefusedWithTheFix) {
  TempDir dir;
  for (mode_t mode : {0644, 0640, 0604, 0620}) {
    const auto p = write_file(dir.path() / fmt::format("pw{:o}", mode), "s3cret\n", mode);
    auto r = read_password_file(p, "id_password_file");
    ASSERT_FALSE(r) << fmt::format("{:o}", mode);
    EXPECT_EQ(r.error().code, ErrorCode::kPermission);
    EXPECT_NE(r.error().message.find(p.string()), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find(fmt::format("mode {:04o}", mode)), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find("id_password_file"), std::string::npos);
    EXPECT_EQ(r.error().remedy, "run: chmod 600 " + p.string());
  }
}

TEST(PasswordFile, MissingEmptyOddFilesAreClearErrors) {
  TempDir dir;
  auto missing = read_password_file(dir.path() / "nope", "--password-file");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
  EXPECT_NE(missing.error().message.find("--password-file"), std::string::npos);
  auto empty = read_password_file(write_file(dir.path() / "e", "\n", 0600), "x");
  ASSERT_FALSE(empty);
  EXPECT_NE(empty.error().message.find("is empty"), std::string::npos);
  auto nul = read_password_file(write_file(dir.path() / "n", std::string("a\0b", 3), 0600), "x");
  ASSERT_FALSE(nul);
  EXPECT_NE(nul.error().message.find("NUL"), std::string::npos);
  auto big = read_password_file(write_file(dir.path() / "big", std::string(5000, 'x'), 0600), "x");
  ASSERT_FALSE(big);
  EXPECT_NE(big.error().message.find("larger than"), std::string::npos);
  std::filesystem::create_directory(dir.path() / "d");
  ::chmod((dir.path() / "d").c_str(), 0700);
  auto d = read_password_file(dir.path() / "d", "x");
  ASSERT_FALSE(d);
  EXPECT_NE(d.error().message.find("not a regular file"), std::string::npos);
}

TEST(PasswordSources, ConfigFileWinsOverEverything) {
  TempDir dir;
  write_file(dir.path() / std::string(kCredentialName), "cred\n", 0400);
  FakeEnv fake{{{"CREDENTIALS_DIRECTORY", dir.path().string()}, {"BRIDGEHEAD_ID_PASSWORD", "env"}}, true};
  const auto file = write_file(dir.path() / "id.pw", "fromfile\n", 0600);
  auto info = resolve_password_source(file, fake.env());
  EXPECT_EQ(info.source, PasswordSource::kPasswordFile);
  EXPECT_EQ(info.path, file);
  EXPECT_NE(info.description.find(file.string()), std::string::npos);
  EXPECT_FALSE(info.discouraged);
  EXPECT_EQ(to_string(info.source), "id_password_file");
  EXPECT_EQ(read_password(info, "?", fake.env())->view(), "fromfile");
  EXPECT_EQ(fake.prompts, 0);
}

TEST(PasswordSources, SystemdCredentialComesSecond) {
  TempDir dir;
  // systemd decides the credential's mode; a group-readable one is still used.
  write_file(dir.path() / std::string(kCredentialName), "cred\n", 0440);
  FakeEnv fake{{{"CREDENTIALS_DIRECTORY", dir.path().string()}, {"BRIDGEHEAD_ID_PASSWORD", "env"}}, true};
  auto info = resolve_password_source({}, fake.env());
  EXPECT_EQ(info.source, PasswordSource::kSystemdCredential);
  EXPECT_EQ(info.path, dir.path() / std::string(kCredentialName));
  EXPECT_EQ(read_password(info, "?", fake.env())->view(), "cred");
  // A credentials directory without our credential does not count.
  FakeEnv other{{{"CREDENTIALS_DIRECTORY", (dir.path() / "elsewhere").string()}}, false};
  EXPECT_EQ(resolve_password_source({}, other.env()).source, PasswordSource::kNone);
}

TEST(PasswordSources, EnvironmentIsThirdAndDiscouraged) {
  FakeEnv fake{{{"BRIDGEHEAD_ID_PASSWORD", "fromenv"}}, true};
  auto info = resolve_password_source({}, fake.env());
  EXPECT_EQ(info.source, PasswordSource::kEnvironment);
  EXPECT_TRUE(info.discouraged);
  EXPECT_NE(info.description.find("discouraged"), std::string::npos);
  EXPECT_EQ(read_password(info, "?", fake.env())->view(), "fromenv");
  FakeEnv empty{{{"BRIDGEHEAD_ID_PASSWORD", ""}}, false};
  EXPECT_EQ(resolve_password_source({}, empty.env()).source, PasswordSource::kNone);
}

TEST(PasswordSources, TerminalIsFourthAndPromptsOnlyWhenRead) {
  FakeEnv fake{{}, true};
  auto info = resolve_password_source({}, fake.env());
  EXPECT_EQ(info.source, PasswordSource::kTerminal);
  EXPECT_EQ(fake.prompts, 0);  // resolving never asks
  EXPECT_EQ(read_password(info, "Password: ", fake.env())->view(), "typed");
  EXPECT_EQ(fake.prompts, 1);
}

TEST(PasswordSources, NoneLeavesTheIdLockedAndSaysHowToUnlock) {
  FakeEnv fake{{}, false};
  auto info = resolve_password_source({}, fake.env());
  EXPECT_EQ(info.source, PasswordSource::kNone);
  EXPECT_NE(info.description.find("bridgehead unlock"), std::string::npos);
  auto r = read_password(info, "?", fake.env());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kUnavailable);
  EXPECT_TRUE(r.error().transient());
  EXPECT_NE(r.error().remedy.find("bridgehead unlock"), std::string::npos);
  EXPECT_NE(r.error().remedy.find("id_password_file"), std::string::npos);
}

TEST(PasswordSources, ConfiguredFileWithBadModeIsAnErrorNotAFallThrough) {
  TempDir dir;
  const auto file = write_file(dir.path() / "id.pw", "x\n", 0644);
  FakeEnv fake{{{"BRIDGEHEAD_ID_PASSWORD", "env"}}, true};
  auto info = resolve_password_source(file, fake.env());
  EXPECT_EQ(info.source, PasswordSource::kPasswordFile);
  auto r = read_password(info, "?", fake.env());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kPermission);
}

TEST(PasswordSources, PromptWithoutTerminalFailsClearly) {
  if (terminal_available()) GTEST_SKIP() << "a controlling terminal is present";
  auto r = prompt_on_terminal("Password: ");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(r.error().message.find("no terminal"), std::string::npos);
}

TEST(PasswordSources, WipeEnvironmentVariableOverwritesTheValueWhereItLies) {
  ASSERT_EQ(::setenv("BRIDGEHEAD_TEST_WIPE", "s3cret-value", 1), 0);
  char* where = std::getenv("BRIDGEHEAD_TEST_WIPE");
  ASSERT_NE(where, nullptr);
  const std::size_t n = std::strlen(where);
  wipe_environment_variable("BRIDGEHEAD_TEST_WIPE");
  EXPECT_EQ(std::getenv("BRIDGEHEAD_TEST_WIPE"), nullptr);
  // glibc never frees a setenv() string, so its bytes can be looked at after the wipe.
  EXPECT_EQ(std::string(where, n), std::string(n, '\0'));
}

}  // namespace
}  // namespace bridgehead::identity
