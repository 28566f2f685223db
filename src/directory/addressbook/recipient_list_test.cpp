#include "directory/addressbook/recipient_list.hpp"

#include <gtest/gtest.h>

namespace bridgehead::directory {
namespace {

TEST(RecipientList, ReadsEveryFieldPrimarySmtpFirst) {
  const auto list = parse_recipient_list(
      "# exported 2026-12-03\n"
      "\n"
      R"({"id": "u1", "system": "notes", "kind": "mail-in-database", "display_name": "Sales inbox",)"
      R"( "forms": {"x500": ["/o=Acme/cn=sales"], "smtp": ["sales@acme.example", "orders@acme.example"]},)"
      R"( "routing_address": "sales@notes.acme.example", "hidden": true})"
      "\r\n"
      R"({"id": "u2", "system": "exchange", "forms": {"smtp": ["ann@acme.example"]}})",
      "list.jsonl");
  ASSERT_TRUE(list) << list.error().describe();
  ASSERT_EQ(list->size(), 2u);
  const Recipient& a = (*list)[0];
  EXPECT_EQ(a.id, "u1");
  EXPECT_EQ(a.kind, RecipientKind::kMailInDatabase);
  EXPECT_EQ(a.display_name, "Sales inbox");
  EXPECT_TRUE(a.hidden);
  EXPECT_EQ(a.routing_address, "sales@notes.acme.example");
  ASSERT_EQ(a.forms.size(), 3u);
  EXPECT_EQ(a.forms[0], (Form{FormKind::kSmtp, "sales@acme.example"}));
  EXPECT_EQ(a.forms[2], (Form{FormKind::kX500, "/o=Acme/cn=sales"}));
  const Recipient& b = (*list)[1];
  EXPECT_EQ(b.kind, RecipientKind::kPerson);
  EXPECT_EQ(b.routing_address, "ann@acme.example");  // the primary by default
}

TEST(RecipientList, ErrorsNameTheLineAndColumn) {
  struct Case {
    const char* text;
    const char* said;
  };
  const std::string ok = R"({"id": "u1", "system": "notes", "forms": {"smtp": ["a@acme.example"]}})";
  for (const Case& c : {
           Case{R"({"id": "u2", "system": "notes", "forms": {"smtp": ["b@acme.example"]})",
                "list.jsonl:3:70: not JSON"},
           Case{R"({"id": "u2", "system": "notes", "kind": "robot", "forms": {"smtp": ["b@x"]}})",
                "list.jsonl:3:33: kind \"robot\" is not person"},
           Case{R"({"id": "u2", "system": "notes", "forms": {"fax": ["123"]}})",
                "list.jsonl:3:43: \"fax\" is not a form kind"},
           Case{R"({"id": "u2", "sytem": "notes", "forms": {"smtp": ["b@x"]}})",
                "list.jsonl:3:14: unknown key \"sytem\""},
           Case{R"({"id": 7, "system": "notes", "forms": {"smtp": ["b@x"]}})",
                "list.jsonl:3:2: \"id\" must be a string"},
           Case{R"({"system": "notes", "forms": {"smtp": ["b@x"]}})", "list.jsonl:3:1: the recipient has no \"id\""},
           Case{R"({"id": "u2", "system": "notes", "forms": {"smtp": ["no at sign"]}})",
                "list.jsonl:3:1: recipient 'u2'"},
           Case{R"({"id": "u2", "system": "notes", "forms": {"smtp": "b@x"}})",
                "list.jsonl:3:43: the smtp forms must be"},
           Case{R"(["u2"])", "list.jsonl:3:1: a line holds one recipient"},
       }) {
    const auto list = parse_recipient_list(ok + "\n\n" + c.text + "\n" + ok + "\n", "list.jsonl");
    ASSERT_FALSE(list) << c.text;
    EXPECT_EQ(list.error().code, ErrorCode::kParse);
    EXPECT_EQ(list.error().message.rfind(c.said, 0), 0u) << list.error().message;
  }
}

}  // namespace
}  // namespace bridgehead::directory
