// directory/addressbook: the address book as one immutable snapshot: every recipient of both
// directories with all its forms, found by any form (ASCII case ignored) in O(1). Compact:
// one arena holds every string, records refer to it by offset, and one open-addressing table
// of 32-bit form numbers is the index. It owns no I/O (address_book_file.hpp saves and loads
// it) and no publication (address_book_holder.hpp swaps snapshots while mail flows).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/expected.hpp"
#include "directory/addressbook/recipient.hpp"

namespace bridgehead::directory {

class AddressBook {
 public:
  /// A string of the arena.
  struct StrRef {
    std::uint32_t offset = 0;
    std::uint32_t length = 0;
  };
  struct RecipientRecord {
    StrRef id, system, display_name, routing_address;
    std::uint32_t first_form = 0;  ///< its forms are forms[first_form, first_form + form_count)
    std::uint16_t form_count = 0;
    RecipientKind kind = RecipientKind::kPerson;
    bool hidden = false;
  };
  struct FormRecord {
    std::uint32_t offset = 0;
    std::uint16_t length = 0;
    FormKind kind = FormKind::kSmtp;
    std::uint8_t reserved = 0;
    std::uint32_t recipient = 0;  ///< derived: the record whose range holds this form
    std::uint32_t hash = 0;       ///< derived: the case-folded hash the index uses
  };
  /// What a book is made of, as the builder lays it out and the file stores it.
  struct Storage {
    std::string arena;
    std::vector<RecipientRecord> recipients;  ///< in precedence order (see AddressBookBuilder)
    std::vector<FormRecord> forms;            ///< grouped by recipient, in the recipients' order
    std::int64_t built_at_ms = 0;             ///< unix milliseconds
  };

  struct FormView {
    FormKind kind = FormKind::kSmtp;
    std::string_view value;
  };
  /// One recipient; the views live as long as the book.
  struct RecipientView {
    std::uint32_t index = 0;
    std::string_view id, system, display_name, routing_address;
    RecipientKind kind = RecipientKind::kPerson;
    bool hidden = false;
  };
  struct Lookup {
    RecipientView recipient;
    FormView form;  ///< the form that matched, as the book spells it
  };

  /// An empty book (no file yet, no directory read yet).
  AddressBook() = default;

  /// Checks `storage` (every string inside the arena, the form ranges contiguous, the kinds
  /// known, no form twice) and indexes it: how a loaded file becomes a book. Fails
  /// (kCorrupt) saying which record is wrong and how.
  static Expected<std::shared_ptr<const AddressBook>> assemble(Storage storage);

  std::size_t size() const { return s_.recipients.size(); }
  std::size_t form_count() const { return s_.forms.size(); }
  std::chrono::system_clock::time_point built_at() const;
  const Storage& storage() const { return s_; }

  /// The recipient that `form` names, ASCII case ignored; nullopt when none does.
  std::optional<Lookup> find(std::string_view form) const;
  /// Recipient `i` (below size()), in precedence order.
  RecipientView recipient(std::size_t i) const;
  std::vector<FormView> forms(std::size_t i) const;
  /// Recipient `i` as a value, for tests and exports.
  Recipient to_recipient(std::size_t i) const;
  /// The octets this book holds on the heap (arena, records, index), capacities included.
  std::size_t memory_bytes() const;

 private:
  friend class AddressBookBuilder;
  static constexpr std::uint32_t kEmptySlot = 0xFFFFFFFFu;

  std::string_view text(StrRef r) const { return std::string_view(s_.arena).substr(r.offset, r.length); }
  void reserve_index(std::size_t forms);
  /// The slot that holds `value` (with hash `hash`), or the empty slot where it would go.
  std::size_t probe(std::string_view value, std::uint32_t hash) const;

  Storage s_;
  std::vector<std::uint32_t> slots_;  // form numbers; kEmptySlot where none; at most half full
  std::size_t mask_ = 0;
};

/// Two recipients claimed the same form: the winner keeps it, the loser is found by its other
/// forms only.
struct Collision {
  std::string form;  ///< as the winner spells it
  std::string winner_id, winner_system;
  std::string loser_id, loser_system;
  std::string rule;  ///< why the winner won
  /// "form F: kept for W (system), not L (system): RULE".
  std::string describe() const;
};

struct BuildResult {
  std::shared_ptr<const AddressBook> book;
  std::vector<Collision> collisions;
};

/// Collects recipients and builds a book. The winner of a form claimed twice does not depend
/// on the order of add(): a person, group or mail-in database beats a contact (a contact
/// only points at a mailbox elsewhere, often the very recipient of the other directory), and
/// otherwise the lower (system, id) wins. The same id twice in one system: the one added
/// first is kept, the other reported as a collision on its id and left out.
class AddressBookBuilder {
 public:
  /// Adds `r` (repeated forms dropped). Fails with validate_recipient's error.
  Expected<void> add(Recipient r);
  std::size_t size() const { return recipients_.size(); }
  /// The book, with every collision. Fails (kLimit) only when its strings pass 4 GiB.
  Expected<BuildResult> build(std::chrono::system_clock::time_point built_at = std::chrono::system_clock::now()) &&;

 private:
  std::vector<Recipient> recipients_;
};

}  // namespace bridgehead::directory
