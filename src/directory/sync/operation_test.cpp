#include "directory/sync/operation.hpp"

#include <gtest/gtest.h>

namespace bridgehead::directory::sync {
namespace {

Entry entry(std::vector<std::pair<std::string, std::vector<std::string>>> attributes) {
  Entry e;
  for (auto& [name, values] : attributes) e.set(name, std::move(values));
  return e;
}

TEST(OpKind, NamesRoundTripAndUnknownNamesAreRefused) {
  for (OpKind k : {OpKind::kAdd, OpKind::kModify, OpKind::kRename, OpKind::kDelete, OpKind::kHide, OpKind::kAdopt}) {
    EXPECT_EQ(op_kind_from_string(to_string(k)), k) << to_string(k);
  }
  EXPECT_EQ(to_string(OpKind::kAdopt), "adopt");
  EXPECT_EQ(to_string(OpKind::kHide), "hide");
  EXPECT_EQ(op_kind_from_string("Add"), std::nullopt);
  EXPECT_EQ(op_kind_from_string(""), std::nullopt);
  EXPECT_EQ(op_kind_from_string("modrdn"), std::nullopt);
}

TEST(WrittenHash, IsSha256HexAndNothingWrittenHashesLikeNoOctets) {
  // The empty entry feeds the digest nothing: SHA-256 of the empty string.
  EXPECT_EQ(written_hash(Entry()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  const std::string h = written_hash(entry({{"cn", {"John"}}}));
  EXPECT_EQ(h.size(), 64u);
  EXPECT_EQ(h.find_first_not_of("0123456789abcdef"), std::string::npos);
}

TEST(WrittenHash, AttributeOrderAndNameCaseDoNotMatterValueCaseAndOrderDo) {
  const Entry a = entry({{"cn", {"John Doe"}}, {"proxyAddresses", {"SMTP:j@x", "smtp:jd@x"}}});
  const Entry b = entry({{"PROXYADDRESSES", {"SMTP:j@x", "smtp:jd@x"}}, {"CN", {"John Doe"}}});
  EXPECT_EQ(written_hash(a), written_hash(b));
  EXPECT_NE(written_hash(a),
            written_hash(entry({{"cn", {"john doe"}}, {"proxyAddresses", {"SMTP:j@x", "smtp:jd@x"}}})));
  EXPECT_NE(written_hash(a),
            written_hash(entry({{"cn", {"John Doe"}}, {"proxyAddresses", {"smtp:jd@x", "SMTP:j@x"}}})));
  EXPECT_NE(written_hash(a), written_hash(entry({{"cn", {"John Doe"}}})));
}

TEST(WrittenHash, ValueBoundariesAreKept) {
  // One value "ab" is not two values "a" and "b", nor the attribute "c" + "nab".
  EXPECT_NE(written_hash(entry({{"x", {"ab"}}})), written_hash(entry({{"x", {"a", "b"}}})));
  EXPECT_NE(written_hash(entry({{"cn", {"ab"}}})), written_hash(entry({{"c", {"nab"}}})));
  EXPECT_NE(written_hash(entry({{"x", {std::string("a\0b", 3)}}})), written_hash(entry({{"x", {"a"}}})));
}

TEST(Operation, DescribeNamesTheKindTheDnAndTheChangedAttributes) {
  Operation add;
  add.kind = OpKind::kAdd;
  add.dn = "cn=John Doe,ou=Notes,dc=acme,dc=example";
  EXPECT_EQ(add.describe(), "add cn=John Doe,ou=Notes,dc=acme,dc=example");

  Operation rename;
  rename.kind = OpKind::kRename;
  rename.dn = "cn=John Doe,ou=Notes";
  rename.new_rdn = "cn=John Q. Doe";
  EXPECT_EQ(rename.describe(), "rename cn=John Doe,ou=Notes to cn=John Q. Doe");

  Operation modify;
  modify.kind = OpKind::kModify;
  modify.dn = "cn=A,ou=Notes";
  modify.changes.push_back(ldap::Modification{ldap::ModifyOp::kReplace, "displayName", {"A"}});
  modify.changes.push_back(ldap::Modification{ldap::ModifyOp::kDelete, "proxyAddresses", {"smtp:a@x"}});
  modify.changes.push_back(ldap::Modification{ldap::ModifyOp::kAdd, "proxyAddresses", {"smtp:b@x"}});
  EXPECT_EQ(modify.describe(), "modify cn=A,ou=Notes (replace displayName, delete proxyAddresses, add proxyAddresses)");
}

TEST(Operation, DescribeEscapesControlCharactersSoALineStaysOneLine) {
  Operation del;
  del.kind = OpKind::kDelete;
  del.dn = "cn=Evil\nadd cn=Forged";
  EXPECT_EQ(del.describe(), "delete cn=Evil\\nadd cn=Forged");
}

}  // namespace
}  // namespace bridgehead::directory::sync
