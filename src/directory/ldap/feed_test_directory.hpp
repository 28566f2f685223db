// A test's own slapd (tests/support/slapd.py) for the change-feed tests, with a connection
// as the rootdn (no limits) and the ou=People container, and a few write helpers.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "directory/ldap/connection.hpp"
#include "slapd_process.hpp"
#include "temp_dir.hpp"

namespace bridgehead::directory::ldap::feed_test {

class Directory {
 public:
  explicit Directory(test_support::SlapdOptions options) : dir_("ldap_feeds") {
    slapd_ = std::make_unique<test_support::SlapdProcess>(dir_.path() / "slapd", options);
    auto c = connect();
    Entry people("ou=People," + base());
    people.add("objectClass", "organizationalUnit");
    people.add("ou", "People");
    must(c.add(people), "add ou=People");
  }
  const test_support::SlapdInfo& info() const { return slapd_->info(); }
  const std::string& base() const { return info().base; }
  std::string person_dn(const std::string& cn) const { return "cn=" + cn + ",ou=People," + base(); }
  test_support::SlapdProcess& process() { return *slapd_; }

  Connection connect() const {
    Options o;
    o.uri = info().uri;
    o.bind = SimpleBind{info().root_dn, identity::SecretString(info().root_password)};
    o.timeouts.connect = std::chrono::seconds(5);
    o.timeouts.operation = std::chrono::seconds(30);
    auto c = Connection::open(std::move(o));
    if (!c) throw std::runtime_error(c.error().describe());
    return std::move(*c);
  }

  static void must(const Expected<void>& r, const std::string& what) {
    if (!r) throw std::runtime_error(what + ": " + r.error().describe());
  }

 private:
  test_support::TempDir dir_;
  std::unique_ptr<test_support::SlapdProcess> slapd_;
};

}  // namespace bridgehead::directory::ldap::feed_test
