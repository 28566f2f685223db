#include "directory/addressbook/address_book_file.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>

#include "temp_dir.hpp"

namespace bridgehead::directory {
namespace {

using test_support::TempDir;

std::shared_ptr<const AddressBook> sample_book() {
  AddressBookBuilder b;
  Recipient r;
  r.id = "OF1A2B3C4D";
  r.system = "notes";
  r.display_name = "Jürgen Doe";
  r.forms = {{FormKind::kSmtp, "juergen@acme.example"},
             {FormKind::kNotesCanonical, "CN=Jürgen Doe/O=Acme"},
             {FormKind::kNotesAddress, "Jürgen Doe/Acme@AcmeDomain"}};
  r.routing_address = "juergen@acme.example";
  EXPECT_TRUE(b.add(r));
  r = Recipient();
  r.id = "d1b7c6a5-3f2e-4d1c-9b8a-0123456789ab";
  r.system = "exchange";
  r.kind = RecipientKind::kGroup;
  r.hidden = true;
  r.forms = {{FormKind::kSmtp, "sales@acme.example"}, {FormKind::kX500, "/o=Acme/cn=Recipients/cn=sales"}};
  EXPECT_TRUE(b.add(r));
  auto built = std::move(b).build(std::chrono::system_clock::time_point(std::chrono::milliseconds(1764777600123)));
  EXPECT_TRUE(built);
  return built->book;
}

void expect_same(const AddressBook& a, const AddressBook& b) {
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(a.form_count(), b.form_count());
  EXPECT_EQ(a.built_at(), b.built_at());
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a.to_recipient(i), b.to_recipient(i));
}

// The byte offset of the first recipient record and of the first form record.
constexpr std::size_t kFirstRecipient = 32;

std::string damaged_message(std::string bytes, bool verify = true) {
  auto parsed = parse_address_book(bytes, "/state/addressbook.bin", verify);
  EXPECT_FALSE(parsed);
  if (parsed) return {};
  EXPECT_EQ(parsed.error().code, ErrorCode::kCorrupt);
  EXPECT_NE(parsed.error().message.find("address book /state/addressbook.bin is damaged: "), std::string::npos)
      << parsed.error().message;
  EXPECT_FALSE(parsed.error().remedy.empty());
  return parsed.error().message;
}

TEST(AddressBookFile, RoundTripsEveryField) {
  const auto book = sample_book();
  const std::string bytes = serialize_address_book(*book);
  auto parsed = parse_address_book(bytes, "mem");
  ASSERT_TRUE(parsed) << parsed.error().describe();
  expect_same(*book, **parsed);
  EXPECT_EQ((*parsed)->find("SALES@acme.example")->recipient.id, "d1b7c6a5-3f2e-4d1c-9b8a-0123456789ab");
  EXPECT_EQ(serialize_address_book(**parsed), bytes);  // nothing lost, nothing added
}

TEST(AddressBookFile, SavedAndLoadedThroughTheStateDirectory) {
  TempDir dir;
  const auto path = dir.path() / kAddressBookFileName;
  auto empty = load_address_book(path);
  ASSERT_TRUE(empty) << empty.error().describe();
  EXPECT_EQ((*empty)->size(), 0u);  // no file yet: an empty book, not an error

  const auto book = sample_book();
  ASSERT_TRUE(save_address_book(*book, path));
  auto loaded = load_address_book(path);
  ASSERT_TRUE(loaded) << loaded.error().describe();
  expect_same(*book, **loaded);
  EXPECT_EQ(std::filesystem::status(path).permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
}

TEST(AddressBookFile, ADamagedFileIsAnErrorNamingItAndTheProblem) {
  const std::string good = serialize_address_book(*sample_book());
  std::string flipped = good;
  flipped[good.size() / 2] = static_cast<char>(flipped[good.size() / 2] ^ 0x04);
  EXPECT_NE(damaged_message(flipped).find("checksum"), std::string::npos);
  EXPECT_NE(damaged_message(good.substr(0, good.size() - 1)).find("truncated"), std::string::npos);
  EXPECT_NE(damaged_message(good.substr(0, 10)).find("it has 10 octets"), std::string::npos);
  EXPECT_NE(damaged_message("XX" + good.substr(2)).find("not an address book file"), std::string::npos);
  std::string newer = good;
  newer[8] = 2;
  EXPECT_NE(damaged_message(newer).find("format version is 2; this Bridgehead reads version 1"), std::string::npos);
  EXPECT_NE(damaged_message(good + "x").find("truncated or overwritten"), std::string::npos);
}

TEST(AddressBookFile, RecordsAreCheckedEvenWithAMatchingChecksum) {
  const std::string good = serialize_address_book(*sample_book());
  // Recipient 0's display name offset, far outside the strings.
  std::string outside = good;
  const std::uint32_t far = 0x7fffffff;
  std::memcpy(outside.data() + kFirstRecipient + 16, &far, sizeof far);
  EXPECT_NE(damaged_message(outside, false).find("recipient 0: its display name lies outside"), std::string::npos);
  // Recipient 1's kind.
  std::string kind = good;
  kind[kFirstRecipient + 40 + 38] = 9;
  EXPECT_NE(damaged_message(kind, false).find("recipient 1: unknown kind 9"), std::string::npos);
  // Form 1 made to point at form 0's string: the same form twice.
  std::string twice = good;
  const std::size_t forms = kFirstRecipient + 2 * 40;
  std::memcpy(twice.data() + forms + 8, twice.data() + forms, 6);
  EXPECT_NE(damaged_message(twice, false).find("is also recipient 0's"), std::string::npos);
  // The hidden flag is 0 or 1.
  std::string hidden = good;
  hidden[kFirstRecipient + 39] = 7;
  EXPECT_NE(damaged_message(hidden, false).find("hidden flag is 7"), std::string::npos);
}

TEST(AddressBookFile, AnUnreadableFileIsATransientErrorNamingIt) {
  TempDir dir;
  const auto path = dir.path() / kAddressBookFileName;
  std::filesystem::create_directory(path);  // read(2) fails with EISDIR
  auto loaded = load_address_book(path);
  ASSERT_FALSE(loaded);
  EXPECT_TRUE(loaded.error().transient());
  EXPECT_NE(loaded.error().message.find(path.string()), std::string::npos) << loaded.error().message;
}

}  // namespace
}  // namespace bridgehead::directory
