// Which recipients an ingress listener accepts: only addresses of the OTHER systems — an
// SMTP address of the current address book whose home is another system, or one on that
// system's static recipient list (kept for small sites without a directory). Unknown user:
// 550 5.1.1, so the sending system writes the NDR and we make no backscatter; an address of
// the ingress's own system, or a domain that is not another system's: 554 5.7.1 — no open
// relay, ever.
#pragma once

#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "directory/addressbook/address_book_holder.hpp"
#include "smtp/protocol/session.hpp"

namespace bridgehead::smtp {

struct SystemRecipients {
  std::string system;
  std::vector<std::string> domains;
  std::vector<std::string> recipients;
};

class StaticRecipientPolicy {
 public:
  /// `book` (optional, outliving the policy) is consulted first at every RCPT, as it is
  /// then: a book recipient whose system is not one of `systems` counts as not in the book.
  explicit StaticRecipientPolicy(const std::vector<SystemRecipients>& systems,
                                 const directory::AddressBookHolder* book = nullptr);
  /// The check used by the listener of `ingress_system` (mail from that system).
  RecipientCheck for_ingress(const std::string& ingress_system) const;
  /// The system an address belongs to, or empty.
  std::string system_of(const std::string& address) const;

 private:
  std::unordered_map<std::string, std::string> domain_to_system_;
  std::unordered_set<std::string> recipients_;
  std::unordered_set<std::string> systems_;
  const directory::AddressBookHolder* book_ = nullptr;
};

}  // namespace bridgehead::smtp
