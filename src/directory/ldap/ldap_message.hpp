// directory/ldap/ldap_message: small helpers over libldap's own types that the Connection and
// the change feeds beside it (content_sync, change_feed) share. Internal to directory/ldap: it
// includes <ldap.h>, which the public headers keep out.
#pragma once

#include <ldap.h>
#include <sys/time.h>

#include <chrono>

#include "directory/entry.hpp"

namespace bridgehead::directory::ldap {

timeval to_timeval(std::chrono::milliseconds ms);

/// Owns what ldap_result returned.
struct MessageGuard {
  LDAPMessage* msg = nullptr;
  MessageGuard() = default;
  explicit MessageGuard(LDAPMessage* m) : msg(m) {}
  MessageGuard(const MessageGuard&) = delete;
  MessageGuard& operator=(const MessageGuard&) = delete;
  ~MessageGuard() {
    if (msg != nullptr) ldap_msgfree(msg);
  }
};

/// The DN and attributes of a search entry message, values as octets.
Entry to_entry(LDAP* ld, LDAPMessage* msg);

}  // namespace bridgehead::directory::ldap
