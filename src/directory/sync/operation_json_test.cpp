#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "directory/sync/operation.hpp"

namespace bridgehead::directory::sync {
namespace {

using nlohmann::json;

// A binary objectGUID: a NUL, octets above 0x7f that are not UTF-8.
const std::string kGuid("\x00\xd1\xb7\xc6\xa5\x3f\x2e\x4d\x1c\x9b\x8a\x01\x23\x45\x67\xff", 16);

ObjectRecord sample_record() {
  ObjectRecord r;
  r.direction = "exchange->notes";
  r.key = "d1b7c6a5-3f2e-4d1c-9b8a-0123456789ab";
  r.source_dn = "CN=Jürgen Groß,OU=Users,DC=acme,DC=example";
  r.target_dn = "cn=Jürgen Groß,ou=Exchange,o=Acme";
  r.written.add("objectClass", "top");
  r.written.add("objectClass", "dominoPerson");
  r.written.add("cn", "Jürgen Groß");
  r.written.add("objectGUID", kGuid);
  r.written.add("mailAddress", "jgross@exchange.acme.example");
  r.hash = "0123abcd";
  r.hidden_since_ms = 1764806400000;
  return r;
}

Operation sample(OpKind kind) {
  Operation op;
  op.kind = kind;
  op.direction = "exchange->notes";
  op.key = "d1b7c6a5-3f2e-4d1c-9b8a-0123456789ab";
  op.source_dn = "CN=Jürgen Groß,OU=Users,DC=acme,DC=example";
  op.dn = "cn=Jürgen Groß,ou=Exchange,o=Acme";
  op.after = sample_record();
  switch (kind) {
    case OpKind::kAdd:
      op.entry = op.after.written;
      op.entry.set_dn(op.dn);
      break;
    case OpKind::kModify:
    case OpKind::kHide:
    case OpKind::kAdopt: {
      ldap::Modification add;
      add.op = ldap::ModifyOp::kAdd;
      add.attribute = "proxyAddresses";
      add.values = {"smtp:j@acme.example", "X500:/o=Acme/cn=jg"};
      ldap::Modification del;
      del.op = ldap::ModifyOp::kDelete;
      del.attribute = "objectGUID";
      del.values = {kGuid};
      ldap::Modification replace;
      replace.op = ldap::ModifyOp::kReplace;
      replace.attribute = "description";  // replace with nothing: remove the attribute
      op.changes = {add, del, replace};
      op.continues = kind == OpKind::kModify;  // a later request of a group's members
      break;
    }
    case OpKind::kRename:
      op.new_rdn = "cn=Jürgen Gross";
      break;
    case OpKind::kDelete:
      op.after = ObjectRecord{};
      op.after.direction = op.direction;
      op.after.key = op.key;
      break;
  }
  return op;
}

TEST(OperationJson, EveryKindRoundTripsThroughTextWithBinaryValuesExact) {
  for (OpKind kind : {OpKind::kAdd, OpKind::kModify, OpKind::kRename, OpKind::kDelete, OpKind::kHide, OpKind::kAdopt}) {
    const Operation op = sample(kind);
    const std::string text = to_json(op).dump();
    auto back = operation_from_json(json::parse(text));
    ASSERT_TRUE(back) << to_string(kind) << ": " << back.error().message;
    EXPECT_EQ(*back, op) << to_string(kind) << ": " << text;
  }
}

TEST(OperationJson, ObjectRecordRoundTrips) {
  const ObjectRecord r = sample_record();
  auto back = object_record_from_json(json::parse(to_json(r).dump()));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(*back, r);
  // An empty record (a delete's `after` carries only its direction and key) too.
  ObjectRecord minimal;
  minimal.direction = "notes->exchange";
  minimal.key = "k";
  auto min_back = object_record_from_json(to_json(minimal));
  ASSERT_TRUE(min_back);
  EXPECT_EQ(*min_back, minimal);
}

TEST(OperationJson, TextStaysTextAndOnlyInvalidUtf8BecomesBase64) {
  EXPECT_EQ(octets_to_json("Jürgen"), json("Jürgen"));
  EXPECT_EQ(octets_to_json(kGuid), json({{"base64", "ANG3xqU/Lk0cm4oBI0Vn/w=="}}));
  // A NUL alone is valid UTF-8: kept as text, escaped by JSON.
  EXPECT_EQ(octets_to_json(std::string("a\0b", 3)), json(std::string("a\0b", 3)));
  // Text that looks like the marker is still text: only an object is decoded.
  const std::string lookalike = R"({"base64": "QUJD"})";
  EXPECT_EQ(octets_from_json(octets_to_json(lookalike)), lookalike);
  EXPECT_EQ(octets_from_json(json{{"base64", "QUJD"}}), "ABC");
  EXPECT_EQ(octets_from_json(json{{"base64", "QUJ"}}), std::nullopt);
  EXPECT_EQ(octets_from_json(json{{"base64", "QUJD"}, {"other", 1}}), std::nullopt);
  EXPECT_EQ(octets_from_json(json(42)), std::nullopt);

  const json j = to_json(sample(OpKind::kAdd));
  EXPECT_TRUE(j["dn"].is_string());
  EXPECT_TRUE(j["after"]["written"]["attributes"][2][1][0].is_object()) << j.dump();
}

// Each damaged document fails with kCorrupt naming the member by its path.
TEST(OperationJson, DamagedJsonFailsNamingTheMember) {
  const json good = to_json(sample(OpKind::kModify));
  struct Case {
    const char* name;
    json doc;
    const char* member;
  };
  std::vector<Case> cases;
  cases.push_back({"not an object", json::array(), "must be a JSON object"});
  json no_kind = good;
  no_kind.erase("kind");
  cases.push_back({"no kind", no_kind, "\"kind\" is missing"});
  json bad_kind = good;
  bad_kind["kind"] = "move";
  cases.push_back({"unknown kind", bad_kind, "\"kind\" must be add, modify"});
  json bad_op = good;
  bad_op["changes"][1]["op"] = "increment";
  cases.push_back({"unknown change op", bad_op, "\"changes[1].op\""});
  json bad_value = good;
  bad_value["changes"][0]["values"][1] = 7;
  cases.push_back({"a number as a value", bad_value, "\"changes[0].values[1]\""});
  json bad_continues = good;
  bad_continues["continues"] = "yes";
  cases.push_back({"continues not a boolean", bad_continues, "\"continues\" must be true or false"});
  json bad_base64 = good;
  bad_base64["dn"] = json{{"base64", "not base64!"}};
  cases.push_back({"bad base64", bad_base64, "\"dn\""});
  json bad_attribute = good;
  bad_attribute["after"]["written"]["attributes"][2] = json::array({"cn"});
  cases.push_back({"attribute without values", bad_attribute, "\"after.written.attributes[2]\""});
  json bad_hidden = good;
  bad_hidden["after"]["hidden_since_ms"] = "yesterday";
  cases.push_back({"hidden_since_ms not an integer", bad_hidden, "\"after.hidden_since_ms\""});
  json no_after = good;
  no_after.erase("after");
  cases.push_back({"no after", no_after, "\"after\" is missing"});

  for (const auto& c : cases) {
    auto r = operation_from_json(c.doc);
    ASSERT_FALSE(r) << c.name;
    EXPECT_EQ(r.error().code, ErrorCode::kCorrupt) << c.name;
    EXPECT_NE(r.error().message.find(c.member), std::string::npos) << c.name << ": " << r.error().message;
    EXPECT_FALSE(r.error().remedy.empty()) << c.name;
  }
  auto r = object_record_from_json(json{{"direction", "x"}, {"key", 5}});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("\"key\""), std::string::npos) << r.error().message;
}

}  // namespace
}  // namespace bridgehead::directory::sync
