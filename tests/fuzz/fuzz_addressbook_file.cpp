// The address book file loader on arbitrary bytes: it either refuses them with a damaged-file
// error that names the input, or returns a book in which every form of every recipient
// finds that recipient, and which is written back to the very same bytes. Each input is
// parsed twice, the second time without the checksum, so that mutated records reach the
// record checks instead of all failing at the checksum.
#include <cstdint>
#include <string>
#include <string_view>

#include "directory/addressbook/address_book_file.hpp"
#include "fuzz_check.hpp"

namespace directory = bridgehead::directory;

namespace {

void check(std::string_view bytes, bool verify_checksum) {
  auto book = directory::parse_address_book(bytes, "input", verify_checksum);
  if (!book) {
    FUZZ_CHECK(book.error().code == bridgehead::ErrorCode::kCorrupt);
    FUZZ_CHECK(book.error().message.rfind("address book input is damaged: ", 0) == 0);
    return;
  }
  const auto& b = **book;
  std::size_t forms = 0;
  for (std::size_t i = 0; i < b.size(); ++i) {
    for (const auto& f : b.forms(i)) {
      auto hit = b.find(f.value);
      FUZZ_CHECK(hit && hit->recipient.index == i);
      ++forms;
    }
    FUZZ_CHECK(!b.recipient(i).id.empty());
  }
  FUZZ_CHECK(forms == b.form_count());
  const std::string again = directory::serialize_address_book(b);
  if (verify_checksum) FUZZ_CHECK(again == bytes);
  FUZZ_CHECK(directory::parse_address_book(again, "again"));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  check(bytes, true);
  check(bytes, false);
  return 0;
}
