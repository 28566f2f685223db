// directory/addressbook: the current address book, published to the RCPT checks while mail
// flows. A sync builds a new snapshot aside and publishes it in one atomic store; a reader
// takes the snapshot it will use for a whole lookup in one atomic load and keeps it alive
// by its reference, so a publication never waits for readers nor they for it.
#pragma once

#include <atomic>
#include <memory>

#include "directory/addressbook/address_book.hpp"

namespace bridgehead::directory {

class AddressBookHolder {
 public:
  /// Starts with an empty book.
  AddressBookHolder() : current_(std::make_shared<const AddressBook>()) {}
  explicit AddressBookHolder(std::shared_ptr<const AddressBook> book) : current_(std::move(book)) {}

  /// The snapshot to use; never null.
  std::shared_ptr<const AddressBook> current() const { return current_.load(std::memory_order_acquire); }
  /// Makes `book` (not null) the one later current() calls return.
  void publish(std::shared_ptr<const AddressBook> book) { current_.store(std::move(book), std::memory_order_release); }

 private:
  std::atomic<std::shared_ptr<const AddressBook>> current_;
};

}  // namespace bridgehead::directory
