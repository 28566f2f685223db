// directory/addressbook: the address book's file in the state directory, so that a restart
// routes mail before the directories answer. One binary file, written whole through the
// durable write (a crash leaves the old book or the new one, never half of either), with a
// format version and a checksum over everything; loading checks every record before the
// book is used. Owns the format only: when to save, and what to do with a damaged file, is
// the caller's.
//
// Layout, little-endian: "BHADBOOK", u32 version, u32 recipients, u32 forms, u32 octets of
// strings, i64 built-at (unix ms); per recipient 4 x (u32 offset, u32 length) for id, system,
// display name and routing address, u32 first form, u16 form count, u8 kind, u8 hidden; per
// form u32 offset, u16 length, u8 kind, u8 zero; the strings; u64 checksum of all before it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "core/expected.hpp"
#include "directory/addressbook/address_book.hpp"

namespace bridgehead::directory {

inline constexpr std::uint32_t kAddressBookFormatVersion = 1;
/// Its name in the state directory.
inline constexpr std::string_view kAddressBookFileName = "addressbook.bin";
/// Larger files are refused before they are read whole.
inline constexpr std::size_t kMaxAddressBookFileSize = std::size_t{1} << 30;

/// The file's contents for `book`.
std::string serialize_address_book(const AddressBook& book);

/// The book in `bytes` (named `name` in errors). Fails with kCorrupt naming `name` and what
/// is wrong (size, magic, version, checksum, which record), never by crashing.
/// `verify_checksum` false is for the fuzzer, so that mutated records reach the checks.
Expected<std::shared_ptr<const AddressBook>> parse_address_book(std::string_view bytes, std::string_view name,
                                                                bool verify_checksum = true);

/// Writes `book` to `path` durably (mode 0600). Fails with the errno error naming the file.
Expected<void> save_address_book(const AddressBook& book, const std::filesystem::path& path);

/// The book saved at `path`; an empty book when there is no such file (none saved yet).
/// Fails with parse_address_book's errors, kLimit beyond kMaxAddressBookFileSize, or the
/// errno error (transient) when it cannot be read.
Expected<std::shared_ptr<const AddressBook>> load_address_book(const std::filesystem::path& path);

}  // namespace bridgehead::directory
