#include "directory/entry.hpp"

#include <gtest/gtest.h>

namespace bridgehead::directory {
namespace {

TEST(Entry, NamesCompareWithoutCaseAndKeepTheirFirstSpelling) {
  Entry e("cn=John Doe,ou=Sales,o=Acme");
  e.add("proxyAddresses", "SMTP:jdoe@acme.example");
  e.add("PROXYADDRESSES", "smtp:john.doe@acme.example");
  ASSERT_EQ(e.attributes().size(), 1u);
  EXPECT_EQ(e.attributes()[0].name, "proxyAddresses");
  ASSERT_NE(e.find("proxyaddresses"), nullptr);
  EXPECT_EQ(*e.find("proxyaddresses"),
            (std::vector<std::string>{"SMTP:jdoe@acme.example", "smtp:john.doe@acme.example"}));
  EXPECT_EQ(e.first("ProxyAddresses"), "SMTP:jdoe@acme.example");
  EXPECT_EQ(e.first("mail"), "");
  EXPECT_FALSE(e.has("mail"));
}

TEST(Entry, SetReplacesAndAnEmptyListRemoves) {
  Entry e("uid=a,o=x");
  e.add("mail", "a@x.example");
  e.add("cn", "A");
  e.set("MAIL", {"b@x.example", "c@x.example"});
  EXPECT_EQ(*e.find("mail"), (std::vector<std::string>{"b@x.example", "c@x.example"}));
  e.set("mail", {});
  EXPECT_FALSE(e.has("mail"));
  EXPECT_FALSE(e.remove("mail"));
  EXPECT_TRUE(e.remove("CN"));
  EXPECT_TRUE(e.attributes().empty());
}

TEST(Entry, EqualityIgnoresNameCaseButNotValueOrderOrDn) {
  Entry a("cn=x,o=y"), b("cn=x,o=y");
  a.add("mail", "1");
  a.add("mail", "2");
  b.add("MAIL", "1");
  b.add("MAIL", "2");
  EXPECT_EQ(a, b);
  Entry c("cn=x,o=y");
  c.add("mail", "2");
  c.add("mail", "1");
  EXPECT_NE(a, c);
  Entry d("CN=x,o=y");
  d.add("mail", "1");
  d.add("mail", "2");
  EXPECT_NE(a, d);
}

}  // namespace
}  // namespace bridgehead::directory
