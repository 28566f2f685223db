// directory/sync/members: a source group's member DNs turned into what a plan can write: the
// keys of the source objects they name (the plan gives each the DN of its object in the
// target), or, for the contacts Bridgehead made in the source for the target system's own
// objects, those objects' DNs in the target. DNs compare as a directory compares them.
#pragma once

#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace bridgehead::directory::sync {

class MemberIndex {
 public:
  /// A source object of the direction at `source_dn`.
  void add_object(std::string_view source_dn, std::string key);
  /// A contact Bridgehead wrote into the source at `contact_dn`, for the target's object at `target_dn`.
  void add_contact(std::string_view contact_dn, std::string target_dn);

  struct Resolved {
    std::vector<std::string> keys;  ///< source objects
    std::vector<std::string> dns;   ///< the target's own objects
    std::size_t unknown = 0;        ///< members that are neither (not synchronized, or gone)
  };
  /// `members`: the group's member values as the source holds them.
  Resolved resolve(const std::vector<std::string>& members) const;

 private:
  std::unordered_map<std::string, std::string> keys_;     // normalized source DN -> key
  std::unordered_map<std::string, std::string> natives_;  // normalized contact DN -> target DN
};

}  // namespace bridgehead::directory::sync
