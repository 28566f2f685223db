#include "smtp/server/recipient_policy.hpp"

#include <algorithm>
#include <memory>

#include <fmt/format.h>

#include "core/text.hpp"

namespace bridgehead::smtp {

namespace {
// Exchange and Domino both treat addresses case-insensitively (in ASCII); so do we.
std::string domain_of(const std::string& address) {
  auto at = address.rfind('@');
  return at == std::string::npos ? std::string() : to_lower(address.substr(at + 1));
}
}  // namespace

StaticRecipientPolicy::StaticRecipientPolicy(const std::vector<SystemRecipients>& systems,
                                             const directory::AddressBookHolder* book)
    : book_(book) {
  for (const auto& s : systems) {
    systems_.insert(s.system);
    for (const auto& d : s.domains) domain_to_system_[to_lower(d)] = s.system;
    for (const auto& r : s.recipients) recipients_.insert(to_lower(r));
  }
}

std::string StaticRecipientPolicy::system_of(const std::string& address) const {
  auto it = domain_to_system_.find(domain_of(address));
  return it == domain_to_system_.end() ? std::string() : it->second;
}

RecipientCheck StaticRecipientPolicy::for_ingress(const std::string& ingress_system) const {
  return [this, ingress_system](const std::string& address) -> std::optional<Reply> {
    // The book decides where it knows the address: with both systems sharing a domain
    // (acme.example on either side) the domain alone cannot tell.
    if (book_ != nullptr) {
      const auto book = book_->current();
      if (auto hit = book->find(address); hit && hit->form.kind == directory::FormKind::kSmtp &&
                                          systems_.contains(std::string(hit->recipient.system))) {
        if (hit->recipient.system != ingress_system) return std::nullopt;
        return Reply{554, "5.7.1",
                     fmt::format("<{}>: Relay access denied: a recipient of {}, where this message comes from", address,
                                 ingress_system)};
      }
    }
    std::string target = system_of(address);
    if (target.empty() || target == ingress_system) {
      return Reply{554, "5.7.1",
                   fmt::format("<{}>: Relay access denied: not an address of a system this connector serves",
                               address)};
    }
    if (!recipients_.contains(to_lower(address))) {
      return Reply{550, "5.1.1", fmt::format("<{}>: Recipient address rejected: user unknown in {}", address, target)};
    }
    return std::nullopt;
  };
}

}  // namespace bridgehead::smtp
