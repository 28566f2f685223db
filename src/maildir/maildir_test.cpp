#include "maildir/maildir.hpp"

#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "temp_dir.hpp"

namespace bridgehead::maildir {
namespace {

namespace fs = std::filesystem;

using test_support::TempDir;

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::size_t count_files(const fs::path& dir) {
  std::error_code ec;
  std::size_t n = 0;
  for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) ++n;
  return n;
}

unsigned mode_of(const fs::path& p) {
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0) return 0;
  return st.st_mode & 07777;
}

constexpr std::string_view kPrepend = "Return-Path: <s@example.org>\nDelivered-To: user@example.com\n";

TEST(MaildirWriter, DeliversExactContentIntoNew) {
  TempDir t;
  MaildirWriter w(t.path() / "mail", "mx1.example.com");
  const std::string body = "Subject: hi\n\nline one\nline two\n";
  auto p = w.deliver("user@example.com", kPrepend, body);
  ASSERT_TRUE(p) << p.error().describe();
  EXPECT_EQ(p->parent_path(), t.path() / "mail" / "user@example.com" / "new");
  EXPECT_EQ(read_file(*p), std::string(kPrepend) + body);
  EXPECT_EQ(count_files(t.path() / "mail" / "user@example.com" / "tmp"), 0u);
  EXPECT_EQ(count_files(t.path() / "mail" / "user@example.com" / "new"), 1u);
  EXPECT_TRUE(fs::is_directory(t.path() / "mail" / "user@example.com" / "cur"));
  EXPECT_TRUE(std::regex_match(p->filename().string(), std::regex(R"(\d+\.\d+_\d+\.mx1\.example\.com)")))
      << p->filename();
}

TEST(MaildirWriter, StreamsPiecesInOrder) {
  TempDir t;
  MaildirWriter w(t.path(), "h");
  std::string expected(kPrepend);
  auto p = w.deliver("u@x", kPrepend, [&](const ContentSink& sink) -> Expected<void> {
    for (int i = 0; i < 100; ++i) {
      const std::string piece = "piece " + std::to_string(i) + "\n" + std::string(1000, 'x') + "\n";
      expected += piece;
      if (auto r = sink(piece); !r) return r;
    }
    return {};
  });
  ASSERT_TRUE(p) << p.error().describe();
  EXPECT_EQ(read_file(*p), expected);
}

TEST(MaildirWriter, EmptyMessageAndEmptyPrepend) {
  TempDir t;
  MaildirWriter w(t.path(), "h");
  auto p = w.deliver("u@x", "", std::string_view{});
  ASSERT_TRUE(p) << p.error().describe();
  EXPECT_EQ(fs::file_size(*p), 0u);
}

TEST(MaildirWriter, LowercasesTheAddressForTheDirectory) {
  TempDir t;
  MaildirWriter w(t.path(), "h");
  auto a = w.deliver("User@Example.COM", "", "a");
  auto b = w.deliver("user@example.com", "", "b");
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->parent_path(), b->parent_path());
  EXPECT_EQ(a->parent_path().parent_path().filename(), "user@example.com");
}

TEST(MaildirWriter, NamesAreUniqueAcrossManyDeliveries) {
  TempDir t;
  MaildirWriter w1(t.path(), "h");
  MaildirWriter w2(t.path(), "h");  // a second writer in the same process shares the counter
  std::set<std::string> names;
  for (int i = 0; i < 300; ++i) {
    auto p = (i % 2 ? w1 : w2).deliver("u@x", "", std::to_string(i));
    ASSERT_TRUE(p) << p.error().describe();
    names.insert(p->filename().string());
  }
  EXPECT_EQ(names.size(), 300u);
  EXPECT_EQ(count_files(t.path() / "u@x" / "new"), 300u);
}

// Pre-creates the next few names (same second and the next one) in tmp/ or new/: the writer must
// skip them and must never replace an existing message.
void occupy_next_names(const fs::path& last, const fs::path& dir, std::string_view content) {
  std::smatch m;
  const std::string name = last.filename().string();
  ASSERT_TRUE(std::regex_match(name, m, std::regex(R"((\d+)\.(\d+)_(\d+)\.h)"))) << name;
  const long long t = std::stoll(m[1]);
  const unsigned long long c = std::stoull(m[3]);
  for (long long tt = t; tt <= t + 1; ++tt) {
    for (unsigned long long cc = c + 1; cc <= c + 3; ++cc) {
      std::ofstream(dir / (std::to_string(tt) + "." + m[2].str() + "_" + std::to_string(cc) + ".h")) << content;
    }
  }
}

TEST(MaildirWriter, NeverReplacesAnExistingMessageInNew) {
  TempDir t;
  MaildirWriter w(t.path(), "h");
  auto first = w.deliver("u@x", "", "first");
  ASSERT_TRUE(first) << first.error().describe();
  occupy_next_names(*first, t.path() / "u@x" / "new", "older message");
  auto p = w.deliver("u@x", "", "newest");
  ASSERT_TRUE(p) << p.error().describe();
  EXPECT_EQ(read_file(*p), "newest");
  for (const auto& e : fs::directory_iterator(t.path() / "u@x" / "new")) {
    if (e.path() != *p && e.path() != *first) {
      EXPECT_EQ(read_file(e.path()), "older message") << e.path();
    }
  }
  EXPECT_EQ(count_files(t.path() / "u@x" / "tmp"), 0u);
}

TEST(MaildirWriter, SkipsANameTakenInTmp) {
  TempDir t;
  MaildirWriter w(t.path(), "h");
  auto first = w.deliver("u@x", "", "first");
  ASSERT_TRUE(first) << first.error().describe();
  occupy_next_names(*first, t.path() / "u@x" / "tmp", "someone else's");
  auto p = w.deliver("u@x", "", "newest");
  ASSERT_TRUE(p) << p.error().describe();
  EXPECT_EQ(read_file(*p), "newest");
  EXPECT_EQ(count_files(t.path() / "u@x" / "tmp"), 6u);  // theirs, untouched
}

TEST(MaildirWriter, HostnameIsEncodedInFileNames) {
  TempDir t;
  MaildirWriter w(t.path(), "a/b:c");
  auto p = w.deliver("u@x", "", "m");
  ASSERT_TRUE(p) << p.error().describe();
  const std::string name = p->filename().string();
  EXPECT_TRUE(name.ends_with(".a\\057b\\072c")) << name;
  EXPECT_EQ(encode_hostname(""), "localhost");
}

TEST(MaildirWriter, DirectoriesAreMode0700WhateverTheUmask) {
  TempDir t;
  const mode_t old = ::umask(0);
  MaildirWriter w(t.path() / "root", "h");
  auto p = w.deliver("u@x", "", "m");
  ::umask(old);
  ASSERT_TRUE(p) << p.error().describe();
  const fs::path box = t.path() / "root" / "u@x";
  for (const fs::path& d : {t.path() / "root", box, box / "tmp", box / "new", box / "cur"}) {
    EXPECT_EQ(mode_of(d), 0700u) << d;
  }
  EXPECT_EQ(mode_of(*p), 0600u);
}

TEST(MaildirWriter, RejectsAddressesThatAreNotSafeDirectoryNames) {
  TempDir t;
  MaildirWriter w(t.path() / "root", "h");
  const std::vector<std::string> bad = {"../x@y",
                                        "a/b@c",
                                        std::string("\x01@x"),
                                        "",
                                        ".",
                                        "..",
                                        ".hidden@x",
                                        "a..b@x",
                                        "x@y/..",
                                        "/etc/passwd",
                                        std::string("a\0b@x", 5),
                                        "a\x7f@x",
                                        "a\n@x",
                                        std::string(256, 'a')};
  for (const auto& addr : bad) {
    auto p = w.deliver(addr, "", "m");
    ASSERT_FALSE(p) << "accepted " << addr;
    EXPECT_EQ(p.error().code, ErrorCode::kInvalidArgument) << addr;
    EXPECT_FALSE(p.error().transient()) << addr;
    EXPECT_NE(p.error().message.find("cannot deliver to Maildir"), std::string::npos);
  }
  // Nothing was created outside the root, and no mailbox inside it.
  EXPECT_FALSE(fs::exists(t.path() / "x@y"));
  EXPECT_EQ(count_files(t.path()), fs::exists(t.path() / "root") ? 1u : 0u);
  if (fs::exists(t.path() / "root")) {
    EXPECT_EQ(count_files(t.path() / "root"), 0u);
  }
  // Control characters are shown escaped, not raw, in the message.
  auto p = w.deliver(std::string("\x01@x"), "", "m");
  EXPECT_NE(p.error().message.find("\\x01@x"), std::string::npos) << p.error().message;
}

TEST(MaildirWriter, AcceptsUnusualButSafeAddresses) {
  TempDir t;
  MaildirWriter w(t.path(), "h");
  for (const std::string addr : {"first.last+tag@example.com", "postmaster", "\"a b\"@x", "j\xc3\xbcrgen@x", "a.@x"}) {
    auto p = w.deliver(addr, "", "m");
    ASSERT_TRUE(p) << addr << ": " << p.error().describe();
  }
}

TEST(MailboxName, DistinctLowercasedAddressesGetDistinctNames) {
  const std::vector<std::string> addrs = {"a@b", "a@b.", "a.@b", "a@b.c", "a_@b", "a%2f@b", "\xc3\x84@x", "\xc3\xa4@x"};
  std::set<std::string> names;
  for (const auto& a : addrs) {
    auto n = mailbox_name(a);
    ASSERT_TRUE(n) << a;
    names.insert(*n);
  }
  EXPECT_EQ(names.size(), addrs.size());
}

TEST(MaildirWriter, ConcurrentDeliveriesFromThreads) {
  TempDir t;
  MaildirWriter w(t.path(), "h");
  constexpr int kPerThread = 50;
  std::vector<std::string> errors[2];
  std::vector<std::thread> threads;
  for (int th = 0; th < 2; ++th) {
    threads.emplace_back([&, th] {
      for (int i = 0; i < kPerThread; ++i) {
        // Both threads create the same mailbox on their first delivery.
        auto p = w.deliver("shared@x", "", "thread " + std::to_string(th) + " msg " + std::to_string(i) + "\n");
        if (!p) errors[th].push_back(p.error().describe());
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_TRUE(errors[0].empty() && errors[1].empty()) << (errors[0].empty() ? errors[1] : errors[0]).front();
  std::set<std::string> contents;
  for (const auto& e : fs::directory_iterator(t.path() / "shared@x" / "new")) contents.insert(read_file(e.path()));
  EXPECT_EQ(contents.size(), 2u * kPerThread);
  EXPECT_EQ(count_files(t.path() / "shared@x" / "tmp"), 0u);
}

TEST(MaildirWriter, FailingSourceLeavesNoFile) {
  TempDir t;
  MaildirWriter w(t.path(), "h");
  auto p = w.deliver("u@x", kPrepend, [](const ContentSink& sink) -> Expected<void> {
    if (auto r = sink("Subject: partial\n\n"); !r) return r;
    return fail(Error::transient_error(ErrorCode::kIo, "spool read failed"));
  });
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().message, "spool read failed");
  EXPECT_TRUE(p.error().transient());
  EXPECT_EQ(count_files(t.path() / "u@x" / "tmp"), 0u);
  EXPECT_EQ(count_files(t.path() / "u@x" / "new"), 0u);
}

TEST(MaildirWriter, UnusableRootIsATransientErrorNamingThePath) {
  TempDir t;
  const fs::path file = t.path() / "not-a-dir";
  std::ofstream(file) << "x";
  MaildirWriter w(file, "h");
  auto p = w.deliver("u@x", "", "m");
  ASSERT_FALSE(p);
  EXPECT_TRUE(p.error().transient());
  EXPECT_NE(p.error().message.find(file.string()), std::string::npos) << p.error().message;
}

class MaildirDiskFull : public ::testing::Test {
 protected:
  void SetUp() override {
    mnt_ = t_.path() / "mnt";
    fs::create_directory(mnt_);
    if (::mount("tmpfs", mnt_.c_str(), "tmpfs", 0, "size=64k") != 0) {
      const int err = errno;
      if (err == EPERM) GTEST_SKIP() << "mount(tmpfs) needs CAP_SYS_ADMIN: " << std::strerror(err);
      FAIL() << "cannot mount a tmpfs on " << mnt_ << ": " << std::strerror(err);
    }
    mounted_ = true;
  }
  void TearDown() override {
    if (mounted_) ::umount2(mnt_.c_str(), MNT_DETACH);
  }

  TempDir t_;
  fs::path mnt_;
  bool mounted_ = false;
};

TEST_F(MaildirDiskFull, IsTransientDiskFullAndLeavesNothing) {
  MaildirWriter w(mnt_ / "mail", "h");
  const std::string big(256 * 1024, 'x');
  auto p = w.deliver("u@x", kPrepend, big);
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().code, ErrorCode::kDiskFull) << p.error().describe();
  EXPECT_TRUE(p.error().transient());
  EXPECT_NE(p.error().message.find((mnt_ / "mail" / "u@x" / "tmp").string()), std::string::npos) << p.error().message;
  EXPECT_EQ(count_files(mnt_ / "mail" / "u@x" / "tmp"), 0u);
  EXPECT_EQ(count_files(mnt_ / "mail" / "u@x" / "new"), 0u);

  // A source that ignores the sink's failure still cannot make a truncated message delivered.
  auto q = w.deliver("u@x", "", [&](const ContentSink& sink) -> Expected<void> {
    for (int i = 0; i < 64; ++i) (void)sink(std::string_view(big).substr(0, 8192));
    return {};
  });
  ASSERT_FALSE(q);
  EXPECT_EQ(q.error().code, ErrorCode::kDiskFull);
  EXPECT_EQ(count_files(mnt_ / "mail" / "u@x" / "new"), 0u);

  // The space was given back: a small message fits again.
  auto r = w.deliver("u@x", kPrepend, "small\n");
  ASSERT_TRUE(r) << r.error().describe();
  EXPECT_EQ(count_files(mnt_ / "mail" / "u@x" / "new"), 1u);
}

}  // namespace
}  // namespace bridgehead::maildir
