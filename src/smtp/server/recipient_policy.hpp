// Which recipients an ingress listener accepts: only addresses of the OTHER systems, and
// for now only those on each system's static recipient list (the address book built by
// dirsync replaces the list later). Unknown user: 550 5.1.1, so the sending system writes
// the NDR and we make no backscatter; a domain that is not another system's: 554 5.7.1 —
// no open relay, ever.
#pragma once

#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "smtp/protocol/session.hpp"

namespace bridgehead::smtp {

struct SystemRecipients {
  std::string system;
  std::vector<std::string> domains;
  std::vector<std::string> recipients;
};

class StaticRecipientPolicy {
 public:
  explicit StaticRecipientPolicy(const std::vector<SystemRecipients>& systems);
  /// The check used by the listener of `ingress_system` (mail from that system).
  RecipientCheck for_ingress(const std::string& ingress_system) const;
  /// The system an address belongs to, or empty.
  std::string system_of(const std::string& address) const;

 private:
  std::unordered_map<std::string, std::string> domain_to_system_;
  std::unordered_set<std::string> recipients_;
};

}  // namespace bridgehead::smtp
