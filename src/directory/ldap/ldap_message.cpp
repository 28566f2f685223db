#include "directory/ldap/ldap_message.hpp"

#include <string>

namespace bridgehead::directory::ldap {

timeval to_timeval(std::chrono::milliseconds ms) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
  return tv;
}

Entry to_entry(LDAP* ld, LDAPMessage* msg) {
  Entry entry;
  if (char* dn = ldap_get_dn(ld, msg); dn != nullptr) {
    entry.set_dn(dn);
    ldap_memfree(dn);
  }
  BerElement* ber = nullptr;
  for (char* name = ldap_first_attribute(ld, msg, &ber); name != nullptr; name = ldap_next_attribute(ld, msg, ber)) {
    if (berval** values = ldap_get_values_len(ld, msg, name); values != nullptr) {
      for (berval** v = values; *v != nullptr; ++v) entry.add(name, std::string((*v)->bv_val, (*v)->bv_len));
      ldap_value_free_len(values);
    }
    ldap_memfree(name);
  }
  if (ber != nullptr) ber_free(ber, 0);
  return entry;
}

}  // namespace bridgehead::directory::ldap
