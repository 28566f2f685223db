#include "directory/addressbook/address_book_file.hpp"

#include <algorithm>
#include <bit>
#include <cstring>

#include <fmt/format.h>

#include "core/durable_file.hpp"
#include "core/read_file.hpp"

namespace bridgehead::directory {
namespace {

// The fields are copied in the machine's order: the format is little-endian, as every
// machine Bridgehead runs on.
static_assert(std::endian::native == std::endian::little, "the address book file is little-endian");

constexpr std::string_view kMagic = "BHADBOOK";
constexpr std::size_t kHeaderSize = 32;
constexpr std::size_t kRecipientSize = 40;
constexpr std::size_t kFormSize = 8;
constexpr std::size_t kChecksumSize = 8;

// Detects damage, not tampering: each step is a bijection of the running value for a fixed
// word, so any one changed word changes the result; the final mix spreads every bit.
std::uint64_t checksum(std::string_view data) {
  std::uint64_t h = 0x6a09e667f3bcc908ull ^ data.size();
  for (std::size_t i = 0; i < data.size(); i += 8) {
    std::uint64_t w = 0;
    std::memcpy(&w, data.data() + i, std::min<std::size_t>(8, data.size() - i));
    h = std::rotl(h + w * 0x9fb21c651e98df25ull, 31) * 0x87c37b91114253d5ull;
  }
  h ^= h >> 29;
  h *= 0xbf58476d1ce4e5b9ull;
  return h ^ (h >> 32);
}

template <typename T>
void put(std::string& out, T value) {
  char raw[sizeof(T)];
  std::memcpy(raw, &value, sizeof(T));
  out.append(raw, sizeof(T));
}

void put_ref(std::string& out, AddressBook::StrRef r) {
  put(out, r.offset);
  put(out, r.length);
}

class Reader {
 public:
  explicit Reader(std::string_view data) : data_(data) {}
  template <typename T>
  T get() {
    T value;
    std::memcpy(&value, data_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return value;
  }
  AddressBook::StrRef get_ref() {
    AddressBook::StrRef r;
    r.offset = get<std::uint32_t>();
    r.length = get<std::uint32_t>();
    return r;
  }
  std::size_t position() const { return pos_; }

 private:
  std::string_view data_;
  std::size_t pos_ = 0;
};

Error damaged(std::string_view name, std::string what) {
  return Error::permanent(ErrorCode::kCorrupt, fmt::format("address book {} is damaged: {}", name, what),
                          "the daemon uses the static recipient lists until the next directory sync writes a new "
                          "book; remove the file to start with an empty one");
}

}  // namespace

std::string serialize_address_book(const AddressBook& book) {
  const auto& s = book.storage();
  std::string out;
  out.reserve(kHeaderSize + s.recipients.size() * kRecipientSize + s.forms.size() * kFormSize + s.arena.size() +
              kChecksumSize);
  out.append(kMagic);
  put(out, kAddressBookFormatVersion);
  put(out, static_cast<std::uint32_t>(s.recipients.size()));
  put(out, static_cast<std::uint32_t>(s.forms.size()));
  put(out, static_cast<std::uint32_t>(s.arena.size()));
  put(out, s.built_at_ms);
  for (const auto& r : s.recipients) {
    put_ref(out, r.id);
    put_ref(out, r.system);
    put_ref(out, r.display_name);
    put_ref(out, r.routing_address);
    put(out, r.first_form);
    put(out, r.form_count);
    put(out, static_cast<std::uint8_t>(r.kind));
    put(out, static_cast<std::uint8_t>(r.hidden ? 1 : 0));
  }
  for (const auto& f : s.forms) {
    put(out, f.offset);
    put(out, f.length);
    put(out, static_cast<std::uint8_t>(f.kind));
    put(out, std::uint8_t{0});
  }
  out.append(s.arena);
  put(out, checksum(out));
  return out;
}

Expected<std::shared_ptr<const AddressBook>> parse_address_book(std::string_view bytes, std::string_view name,
                                                                bool verify_checksum) {
  if (bytes.size() < kHeaderSize + kChecksumSize) {
    return fail(damaged(name, fmt::format("it has {} octets; the smallest address book has {}", bytes.size(),
                                          kHeaderSize + kChecksumSize)));
  }
  if (bytes.substr(0, kMagic.size()) != kMagic) {
    return fail(damaged(name, fmt::format("it does not start with \"{}\": not an address book file", kMagic)));
  }
  Reader in(bytes.substr(kMagic.size()));
  const auto version = in.get<std::uint32_t>();
  if (version != kAddressBookFormatVersion) {
    Error e = damaged(name, fmt::format("its format version is {}; this Bridgehead reads version {}", version,
                                        kAddressBookFormatVersion));
    e.remedy = "it was written by another Bridgehead version: " + e.remedy;
    return fail(std::move(e));
  }
  const auto recipients = in.get<std::uint32_t>();
  const auto forms = in.get<std::uint32_t>();
  const auto arena = in.get<std::uint32_t>();
  AddressBook::Storage s;
  s.built_at_ms = in.get<std::int64_t>();
  const std::uint64_t expected = kHeaderSize + std::uint64_t{recipients} * kRecipientSize +
                                 std::uint64_t{forms} * kFormSize + arena + kChecksumSize;
  if (expected != bytes.size()) {
    return fail(damaged(name, fmt::format("it has {} octets; its header announces {} ({} recipients, {} forms, {} "
                                          "octets of strings): truncated or overwritten",
                                          bytes.size(), expected, recipients, forms, arena)));
  }
  const auto body = bytes.substr(0, bytes.size() - kChecksumSize);
  std::uint64_t stored = 0;
  std::memcpy(&stored, bytes.data() + body.size(), sizeof stored);
  if (const auto computed = checksum(body); verify_checksum && stored != computed) {
    return fail(damaged(name, fmt::format("its checksum is {:016x}, its contents give {:016x}", stored, computed)));
  }
  Reader records(bytes.substr(kHeaderSize));
  s.recipients.resize(recipients);
  for (std::uint32_t i = 0; i < recipients; ++i) {
    auto& r = s.recipients[i];
    r.id = records.get_ref();
    r.system = records.get_ref();
    r.display_name = records.get_ref();
    r.routing_address = records.get_ref();
    r.first_form = records.get<std::uint32_t>();
    r.form_count = records.get<std::uint16_t>();
    r.kind = static_cast<RecipientKind>(records.get<std::uint8_t>());
    const auto hidden = records.get<std::uint8_t>();
    if (hidden > 1) {
      return fail(damaged(name, fmt::format("recipient {} (at octet {}): its hidden flag is {}, not 0 or 1", i,
                                            kHeaderSize + i * kRecipientSize, hidden)));
    }
    r.hidden = hidden == 1;
  }
  s.forms.resize(forms);
  for (std::uint32_t i = 0; i < forms; ++i) {
    auto& f = s.forms[i];
    f.offset = records.get<std::uint32_t>();
    f.length = records.get<std::uint16_t>();
    f.kind = static_cast<FormKind>(records.get<std::uint8_t>());
    if (const auto zero = records.get<std::uint8_t>(); zero != 0) {
      return fail(damaged(name, fmt::format("form {} (at octet {}): its reserved octet is {}, not 0", i,
                                            kHeaderSize + recipients * kRecipientSize + i * kFormSize, zero)));
    }
  }
  s.arena.assign(bytes.substr(kHeaderSize + records.position(), arena));
  auto book = AddressBook::assemble(std::move(s));
  if (!book) return fail(damaged(name, book.error().message));
  return book;
}

Expected<void> save_address_book(const AddressBook& book, const std::filesystem::path& path) {
  durable::WriteOptions options;
  options.mode = 0600;
  auto written = durable::write_file_durably(path, serialize_address_book(book), options);
  if (!written) {
    written.error().message = "cannot save the address book: " + written.error().message;
  }
  return written;
}

Expected<std::shared_ptr<const AddressBook>> load_address_book(const std::filesystem::path& path) {
  const std::string name = path.string();
  auto bytes =
      read_whole_file(path, "address book " + name, Error::permanent(ErrorCode::kNotFound, "no address book " + name),
                      kMaxAddressBookFileSize);
  if (!bytes) {
    if (bytes.error().code == ErrorCode::kNotFound) return std::make_shared<const AddressBook>();
    return fail(std::move(bytes.error()));
  }
  if (bytes->size() > kMaxAddressBookFileSize) {
    return fail(Error::permanent(
        ErrorCode::kLimit, fmt::format("address book {} is larger than {} MiB", name, kMaxAddressBookFileSize >> 20),
        "remove it; the next directory sync writes a new one"));
  }
  return parse_address_book(*bytes, name);
}

}  // namespace bridgehead::directory
