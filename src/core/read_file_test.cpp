#include "core/read_file.hpp"

#include <fstream>

#include <gtest/gtest.h>

#include "temp_dir.hpp"

namespace bridgehead {
namespace {

namespace fs = std::filesystem;
using test_support::TempDir;

Error missing() { return Error::permanent(ErrorCode::kNotFound, "no such thing", "make one"); }

void put(const fs::path& p, const std::string& data) {
  std::ofstream out(p, std::ios::binary);
  out << data;
}

TEST(ReadWholeFile, GivesEveryOctetOfAFileLargerThanOneRead) {
  TempDir dir;
  std::string data;
  for (int i = 0; i < 200000; ++i) data.push_back(static_cast<char>(i * 7));
  put(dir.path() / "f", data);
  auto r = read_whole_file(dir.path() / "f", "the file", missing());
  ASSERT_TRUE(r) << r.error().describe();
  EXPECT_EQ(*r, data);
}

TEST(ReadWholeFile, AMissingFileFailsWithTheCallersError) {
  TempDir dir;
  auto r = read_whole_file(dir.path() / "absent", "the file", missing());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(r.error().message, "no such thing");
  EXPECT_EQ(r.error().remedy, "make one");
}

TEST(ReadWholeFile, StopsSoonAfterTheLimitSoTheCallerCanRefuseTheFile) {
  TempDir dir;
  put(dir.path() / "big", std::string(1 << 20, 'x'));
  auto r = read_whole_file(dir.path() / "big", "the file", missing(), 1000);
  ASSERT_TRUE(r);
  EXPECT_GT(r->size(), 1000u);
  EXPECT_LT(r->size(), std::size_t{1} << 20);
}

TEST(ReadWholeFile, AnUnreadableFileIsAnErrnoErrorNamingWhatWasRead) {
  TempDir dir;
  // A directory opens read-only but read(2) fails with EISDIR.
  auto r = read_whole_file(dir.path(), "the connector ID", missing());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kIo);
  EXPECT_NE(r.error().message.find("cannot read the connector ID"), std::string::npos) << r.error().message;
}

}  // namespace
}  // namespace bridgehead
