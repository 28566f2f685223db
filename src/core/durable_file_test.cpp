#include "core/durable_file.hpp"

#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "temp_dir.hpp"

namespace bridgehead::durable {
namespace {

namespace fs = std::filesystem;
using test_support::TempDir;

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Every name in `dir`: a temporary file left behind would show up here.
std::vector<std::string> names_in(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

mode_t mode_of(const fs::path& p) {
  struct stat st{};
  EXPECT_EQ(::stat(p.c_str(), &st), 0);
  return st.st_mode & 07777;
}

TEST(DurableFile, WritesTheExactBytesWithTheModeAndLeavesNoTemporaryFile) {
  TempDir dir;
  const auto p = dir.path() / "a.json";
  const std::string data("x\0y\r\n", 5);
  ASSERT_TRUE(write_file_durably(p, data, {.mode = 0640}));
  EXPECT_EQ(slurp(p), data);
  EXPECT_EQ(mode_of(p), 0640u);
  EXPECT_EQ(names_in(dir.path()), std::vector<std::string>{"a.json"});
}

TEST(DurableFile, InterruptedWritesAreRemovedAndNothingElse) {
  TempDir dir;
  const auto p = dir.path();
  // What a crash between create and rename leaves, of both helpers' naming.
  auto pending = PendingFile::create_beside(p / "0000000100000001.eml", 0600);
  ASSERT_TRUE(pending);
  const auto left = pending->path();
  std::filesystem::copy_file(left, p / ".0000000100000002.json.Ab3dEf.tmp");
  // Not theirs: kept.
  for (const char* keep : {"0000000100000001.eml", ".hidden", "x.tmp", ".a.tmp", ".dir.Ab3dEf.tmp"}) {
    if (std::string(keep) == ".dir.Ab3dEf.tmp") {
      std::filesystem::create_directory(p / keep);
    } else {
      std::ofstream(p / keep) << "data";
    }
  }
  EXPECT_EQ(remove_interrupted_writes(p), 2u);
  EXPECT_FALSE(std::filesystem::exists(left));
  EXPECT_FALSE(std::filesystem::exists(p / ".0000000100000002.json.Ab3dEf.tmp"));
  for (const char* keep : {"0000000100000001.eml", ".hidden", "x.tmp", ".a.tmp", ".dir.Ab3dEf.tmp"}) {
    EXPECT_TRUE(std::filesystem::exists(p / keep)) << keep;
  }
  EXPECT_EQ(remove_interrupted_writes(p / "missing"), 0u);
}

TEST(DurableFile, ReplacesByDefaultAndKeepsWhenAsked) {
  TempDir dir;
  const auto p = dir.path() / "id.p12";
  ASSERT_TRUE(write_file_durably(p, "old"));
  ASSERT_TRUE(write_file_durably(p, "new"));
  EXPECT_EQ(slurp(p), "new");
  auto kept = write_file_durably(p, "other", {.if_exists = IfExists::kKeep});
  ASSERT_FALSE(kept);
  EXPECT_EQ(kept.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(kept.error().message, p.string() + " already exists");
  EXPECT_FALSE(kept.error().remedy.empty());
  EXPECT_EQ(slurp(p), "new");
  EXPECT_EQ(names_in(dir.path()), std::vector<std::string>{"id.p12"});
}

TEST(DurableFile, AMissingDirectoryFailsNamingTheTarget) {
  TempDir dir;
  const auto p = dir.path() / "missing" / "a.eml";
  auto r = write_file_durably(p, "x");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find(p.string()), std::string::npos) << r.error().message;
  auto s = sync_directory(dir.path() / "missing");
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find((dir.path() / "missing").string()), std::string::npos);
}

TEST(DurableFile, PendingFileIsRemovedUnlessPublished) {
  TempDir dir;
  {
    auto f = PendingFile::create(dir.path() / "tmp1", 0600);
    ASSERT_TRUE(f);
    ASSERT_TRUE(f->write("abandoned"));
  }
  EXPECT_TRUE(names_in(dir.path()).empty()) << "an abandoned file leaves nothing behind";
  bool exists = false;
  ASSERT_TRUE(write_file_durably(dir.path() / "taken", "x"));
  auto clash = PendingFile::create(dir.path() / "taken", 0600, &exists);
  ASSERT_FALSE(clash);
  EXPECT_TRUE(exists);
  EXPECT_EQ(slurp(dir.path() / "taken"), "x") << "create never truncates an existing file";
}

TEST(DurableFile, PublishWithKeepReportsAnExistingNameAndCanTryAnother) {
  TempDir dir;
  ASSERT_TRUE(write_file_durably(dir.path() / "m1", "first"));
  auto f = PendingFile::create(dir.path() / "tmp", 0600);
  ASSERT_TRUE(f);
  ASSERT_TRUE(f->write("second"));
  auto r = f->publish(dir.path() / "m1", IfExists::kKeep);
  ASSERT_TRUE(r) << r.error().describe();
  EXPECT_FALSE(*r);
  EXPECT_EQ(slurp(dir.path() / "m1"), "first") << "kKeep never replaces";
  r = f->publish(dir.path() / "m2", IfExists::kKeep);
  ASSERT_TRUE(r && *r);
  EXPECT_EQ(slurp(dir.path() / "m2"), "second");
  EXPECT_EQ(names_in(dir.path()), (std::vector<std::string>{"m1", "m2"}));
}

TEST(DurableFile, RenameDurablyMovesAcrossDirectories) {
  TempDir dir;
  fs::create_directories(dir.path() / "tmp");
  fs::create_directories(dir.path() / "new");
  ASSERT_TRUE(write_file_durably(dir.path() / "tmp" / "f", "x"));
  auto r = rename_durably(dir.path() / "tmp" / "f", dir.path() / "new" / "f");
  ASSERT_TRUE(r && *r);
  EXPECT_EQ(slurp(dir.path() / "new" / "f"), "x");
  auto gone = rename_durably(dir.path() / "tmp" / "f", dir.path() / "new" / "g");
  ASSERT_FALSE(gone);
  EXPECT_NE(gone.error().message.find((dir.path() / "tmp" / "f").string()), std::string::npos);
}

}  // namespace
}  // namespace bridgehead::durable
