#include "directory/sync/members.hpp"

#include "core/text.hpp"
#include "directory/dn.hpp"

namespace bridgehead::directory::sync {
namespace {

// A member value that is not a DN is looked up as its lower-case text: it then matches nothing
// but the same text.
std::string normalized(std::string_view dn) {
  auto parsed = Dn::parse(dn);
  return parsed ? parsed->normalized() : to_lower(dn);
}

}  // namespace

void MemberIndex::add_object(std::string_view source_dn, std::string key) {
  keys_.insert_or_assign(normalized(source_dn), std::move(key));
}

void MemberIndex::add_contact(std::string_view contact_dn, std::string target_dn) {
  natives_.insert_or_assign(normalized(contact_dn), std::move(target_dn));
}

MemberIndex::Resolved MemberIndex::resolve(const std::vector<std::string>& members) const {
  Resolved out;
  for (const std::string& m : members) {
    const std::string k = normalized(m);
    if (const auto key = keys_.find(k); key != keys_.end()) {
      out.keys.push_back(key->second);
    } else if (const auto native = natives_.find(k); native != natives_.end()) {
      out.dns.push_back(native->second);
    } else {
      ++out.unknown;
    }
  }
  return out;
}

}  // namespace bridgehead::directory::sync
