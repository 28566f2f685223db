#include "directory/sync/members.hpp"

#include <gtest/gtest.h>

namespace bridgehead::directory::sync {
namespace {

TEST(MemberIndex, ResolvesMembersAsADirectoryComparesDns) {
  MemberIndex index;
  index.add_object("cn=John Doe,ou=Sales,o=Acme", "unid-1");
  index.add_object("cn=Jane Roe,o=Acme", "unid-2");
  index.add_contact("cn=Ann Other,ou=Exchange Contacts,o=Acme", "CN=Ann Other,OU=Users,DC=acme,DC=example");
  const auto r = index.resolve({"CN=john doe, OU=sales,O=ACME", "cn=Ann Other,ou=Exchange Contacts,o=Acme",
                                "cn=Gone,o=Acme", "not a dn", "cn=Jane Roe,o=Acme"});
  EXPECT_EQ(r.keys, (std::vector<std::string>{"unid-1", "unid-2"}));
  EXPECT_EQ(r.dns, std::vector<std::string>{"CN=Ann Other,OU=Users,DC=acme,DC=example"});
  EXPECT_EQ(r.unknown, 2u);
}

TEST(MemberIndex, ALaterEntryForTheSameDnWins) {
  MemberIndex index;
  index.add_object("cn=John Doe,o=Acme", "old");
  index.add_object("cn=john doe,o=acme", "new");
  EXPECT_EQ(index.resolve({"cn=John Doe,o=Acme"}).keys, std::vector<std::string>{"new"});
  EXPECT_TRUE(MemberIndex().resolve({}).keys.empty());
}

}  // namespace
}  // namespace bridgehead::directory::sync
