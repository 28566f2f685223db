#include "directory/sync/engine.hpp"

#include <fstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "temp_dir.hpp"

namespace bridgehead::directory::sync {
namespace {

using test_support::TempDir;

// `n` Domino persons as an LDIF file.
void write_persons(const std::filesystem::path& file, int n, int from = 0) {
  std::ofstream out(file);
  out << "version: 1\n\n";
  for (int i = from; i < n; ++i) {
    out << fmt::format(
        "dn: cn=Person{0:05d} Test,ou=Sales,o=Acme\nobjectClass: dominoPerson\ncn: Person{0:05d} Test\nsn: Test\n"
        "uid: p{0:05d}\nmail: p{0:05d}@notes.example\nfullName: CN=Person{0:05d} Test/OU=Sales/O=Acme\n"
        "dominoUNID: {1:032X}\n\n",
        i, 0xC0000000 + i);
  }
}

SyncSettings two_ldif_directories(const TempDir& dir) {
  DirectorySettings notes;
  notes.system = "notes";
  notes.profile = Profile::kDomino;
  notes.ldif_file = dir.path() / "notes.ldif";
  notes.routing_domain = "notes.example";
  DirectorySettings exchange;
  exchange.system = "exchange";
  exchange.profile = Profile::kExchange;
  exchange.ldif_file = dir.path() / "exchange.ldif";
  exchange.routing_domain = "exchange.example";
  exchange.contacts_container = "ou=Notes Contacts,dc=acme,dc=example";
  exchange.ldif_output = dir.path() / "exchange-changes.ldif";
  SyncSettings s;
  s.directories = {notes, exchange};
  s.notes_domain = "AcmeNotes";
  return s;
}

TEST(Engine, ReadingProgressCountsAgainstWhatTheLastRunKept) {
  TempDir dir;
  write_persons(dir.path() / "notes.ldif", 2500);
  std::ofstream(dir.path() / "exchange.ldif") << "version: 1\n";
  auto engine = Engine::open(two_ldif_directories(dir), dir.path(), [] { return nullptr; });
  ASSERT_TRUE(engine) << engine.error().describe();
  std::vector<std::string> activity;
  (*engine)->on_progress([&](const std::string& a) { activity.push_back(a); });

  auto first = (*engine)->run(RunOptions{RunKind::kFull});
  ASSERT_TRUE(first) << first.error().describe();
  EXPECT_EQ(first->counts.adds, 2500u);
  // The first run knows no total yet.
  EXPECT_NE(std::find(activity.begin(), activity.end(), "reading notes: 2,000 entries"), activity.end());

  activity.clear();
  auto second = (*engine)->run(RunOptions{RunKind::kFull});
  ASSERT_TRUE(second) << second.error().describe();
  EXPECT_EQ(second->counts.adds + second->counts.updates + second->counts.deletes, 0u);
  EXPECT_NE(std::find(activity.begin(), activity.end(), "reading notes: 1,000/2,500 entries"), activity.end());
  EXPECT_NE(std::find(activity.begin(), activity.end(), "reading notes: 2,000/2,500 entries"), activity.end());
}

TEST(Engine, DeletesFromAnLdifSourceAreConfirmedAgainstTheFile) {
  TempDir dir;
  write_persons(dir.path() / "notes.ldif", 2500);
  std::ofstream(dir.path() / "exchange.ldif") << "version: 1\n";
  auto engine = Engine::open(two_ldif_directories(dir), dir.path(), [] { return nullptr; });
  ASSERT_TRUE(engine) << engine.error().describe();
  auto first = (*engine)->run(RunOptions{RunKind::kFull});
  ASSERT_TRUE(first) << first.error().describe();
  ASSERT_EQ(first->counts.adds, 2500u);

  write_persons(dir.path() / "notes.ldif", 2500, 100);  // the first 100 are gone
  auto second = (*engine)->run(RunOptions{RunKind::kFull});
  ASSERT_TRUE(second) << second.error().describe();
  EXPECT_EQ(second->status, RunStatus::kOk) << second->error;
  EXPECT_EQ(second->counts.deletes, 100u);
  EXPECT_EQ(second->counts.adds + second->counts.updates, 0u);
  EXPECT_EQ((*engine)->state().object_count("notes->exchange").value(), 2400u);
}

}  // namespace
}  // namespace bridgehead::directory::sync
