#include "directory/addressbook/recipient.hpp"

#include <gtest/gtest.h>

namespace bridgehead::directory {
namespace {

using Status = EntryOutcome::Status;

Entry domino_person() {
  Entry e("cn=John Doe,ou=Sales,o=Acme");
  e.add("objectClass", "dominoPerson");
  e.add("dominoUNID", "OF1A2B3C4D:5E6F7A8B-ON85257A5B:00471234");
  e.add("mail", "John.Doe@acme.example");
  e.add("fullName", "CN=John Doe/OU=Sales/O=Acme");
  e.add("fullName", "John Doe");
  e.add("fullName", "JD");
  e.add("uid", "jdoe");
  e.add("mailDomain", "AcmeDomain");
  return e;
}

Entry exchange_user() {
  Entry e("CN=Ann Lee,OU=Users,DC=acme,DC=example");
  for (const char* c : {"top", "person", "organizationalPerson", "user"}) e.add("objectClass", c);
  // objectGUID as AD stores it: the first three groups little-endian.
  e.add("objectGUID", std::string("\xa5\xc6\xb7\xd1\x2e\x3f\x1c\x4d\x9b\x8a\x01\x23\x45\x67\x89\xab", 16));
  e.add("mail", "ann.lee@acme.example");
  e.add("proxyAddresses", "smtp:ann@acme.example");
  e.add("proxyAddresses", "SMTP:Ann.Lee@acme.example");
  e.add("proxyAddresses", "X500:/o=Acme/ou=First Administrative Group/cn=Recipients/cn=alee");
  e.add("proxyAddresses", "NOTES:Ann Lee/Exchange@AcmeDomain");
  e.add("proxyAddresses", "x400:c=US;a= ;p=Acme;o=Exchange;s=Lee;g=Ann;");
  e.add("legacyExchangeDN", "/o=Acme/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/cn=ann");
  e.add("mailNickname", "ann");
  e.add("displayName", "Ann Lee");
  return e;
}

std::vector<Form> forms(std::initializer_list<std::pair<FormKind, const char*>> list) {
  std::vector<Form> out;
  for (const auto& [k, v] : list) out.push_back({k, v});
  return out;
}

TEST(DeriveDomino, PersonHasEveryFormPrimarySmtpFirst) {
  const auto out = derive_recipient(domino_person(), Profile::kDomino, "notes");
  ASSERT_EQ(out.status, Status::kRecipient) << out.reason;
  const Recipient& r = out.recipient;
  EXPECT_EQ(r.id, "OF1A2B3C4D:5E6F7A8B-ON85257A5B:00471234");
  EXPECT_EQ(r.system, "notes");
  EXPECT_EQ(r.kind, RecipientKind::kPerson);
  EXPECT_EQ(r.display_name, "John Doe");
  EXPECT_EQ(r.routing_address, "John.Doe@acme.example");
  EXPECT_FALSE(r.hidden);
  // "John Doe" (the second fullName value) is the common name, not a repeat of a form, so it
  // stays as an alias.
  EXPECT_EQ(r.forms, forms({{FormKind::kSmtp, "John.Doe@acme.example"},
                            {FormKind::kNotesCanonical, "CN=John Doe/OU=Sales/O=Acme"},
                            {FormKind::kNotesAbbreviated, "John Doe/Sales/Acme"},
                            {FormKind::kNotesAlias, "John Doe"},
                            {FormKind::kNotesAlias, "JD"},
                            {FormKind::kShortName, "jdoe"},
                            {FormKind::kNotesAddress, "John Doe/Sales/Acme@AcmeDomain"}}));
}

TEST(DeriveDomino, TheDnAloneGivesTheNotesNames) {
  Entry e("cn=Mary Major,ou=HR,o=Acme");
  e.add("dominoUNID", "UNID-2");
  e.add("mailAddress", "mary@elsewhere.example");
  const auto out = derive_recipient(e, Profile::kDomino, "notes");
  ASSERT_EQ(out.status, Status::kRecipient) << out.reason;
  EXPECT_EQ(out.recipient.forms, forms({{FormKind::kNotesCanonical, "CN=Mary Major/OU=HR/O=Acme"},
                                        {FormKind::kNotesAbbreviated, "Mary Major/HR/Acme"}}));
  // mailAddress is where Domino forwards her mail.
  EXPECT_EQ(out.recipient.routing_address, "mary@elsewhere.example");
  EXPECT_EQ(out.recipient.display_name, "Mary Major");
}

TEST(DeriveDomino, GroupNamesAreFlat) {
  Entry e("cn=Sales Team");
  e.add("objectClass", "dominoGroup");
  e.add("dominoUNID", "UNID-G");
  e.add("cn", "Sales Team");
  e.add("mail", "sales@acme.example");
  e.add("mailDomain", "AcmeDomain");
  const auto out = derive_recipient(e, Profile::kDomino, "notes");
  ASSERT_EQ(out.status, Status::kRecipient) << out.reason;
  EXPECT_EQ(out.recipient.kind, RecipientKind::kGroup);
  EXPECT_EQ(out.recipient.forms, forms({{FormKind::kSmtp, "sales@acme.example"},
                                        {FormKind::kNotesAlias, "Sales Team"},
                                        {FormKind::kNotesAddress, "Sales Team@AcmeDomain"}}));
}

TEST(DeriveDomino, SkipsExcludedEntriesAndServerDocumentsWithTheReason) {
  Entry excluded = domino_person();
  excluded.add("availableForDirSync", "FALSE");
  auto out = derive_recipient(excluded, Profile::kDomino, "notes");
  EXPECT_EQ(out.status, Status::kSkipped);
  EXPECT_NE(out.reason.find("availableForDirSync"), std::string::npos) << out.reason;
  EXPECT_NE(out.reason.find("cn=John Doe,ou=Sales,o=Acme"), std::string::npos) << out.reason;

  Entry server("cn=Mail1,ou=Servers,o=Acme");
  server.add("objectClass", "dominoServer");
  server.add("dominoUNID", "UNID-S");
  out = derive_recipient(server, Profile::kDomino, "notes");
  EXPECT_EQ(out.status, Status::kSkipped);
  EXPECT_NE(out.reason.find("server document"), std::string::npos) << out.reason;
}

TEST(DeriveDomino, BadEntriesAreRefusedNamingTheProblem) {
  Entry no_id = domino_person();
  no_id.remove("dominoUNID");
  auto out = derive_recipient(no_id, Profile::kDomino, "notes");
  EXPECT_EQ(out.status, Status::kRefused);
  EXPECT_NE(out.reason.find("dominoUNID"), std::string::npos) << out.reason;

  Entry flat("cn=Nobody");
  flat.add("dominoUNID", "UNID-3");
  flat.add("fullName", "Nobody");
  out = derive_recipient(flat, Profile::kDomino, "notes");
  EXPECT_EQ(out.status, Status::kRefused);
  EXPECT_NE(out.reason.find("not a Notes hierarchical name"), std::string::npos) << out.reason;

  Entry bad_mail = domino_person();
  bad_mail.set("mail", {"not an address"});
  out = derive_recipient(bad_mail, Profile::kDomino, "notes");
  EXPECT_EQ(out.status, Status::kRefused);
  EXPECT_NE(out.reason.find("'not an address'"), std::string::npos) << out.reason;
}

TEST(DeriveExchange, UserHasEveryFormAndItsGuid) {
  const auto out = derive_recipient(exchange_user(), Profile::kExchange, "exchange");
  ASSERT_EQ(out.status, Status::kRecipient) << out.reason;
  const Recipient& r = out.recipient;
  EXPECT_EQ(r.id, "d1b7c6a5-3f2e-4d1c-9b8a-0123456789ab");
  EXPECT_EQ(r.kind, RecipientKind::kPerson);
  EXPECT_EQ(r.display_name, "Ann Lee");
  EXPECT_EQ(r.routing_address, "Ann.Lee@acme.example");  // the primary, without targetAddress
  EXPECT_EQ(r.forms,
            forms({{FormKind::kSmtp, "Ann.Lee@acme.example"},  // mail repeats it but for case: dropped
                   {FormKind::kSmtp, "ann@acme.example"},
                   {FormKind::kX500, "/o=Acme/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/cn=ann"},
                   {FormKind::kX500, "/o=Acme/ou=First Administrative Group/cn=Recipients/cn=alee"},
                   {FormKind::kNotesAddress, "Ann Lee/Exchange@AcmeDomain"},
                   {FormKind::kNickname, "ann"}}));
}

TEST(DeriveExchange, ContactRoutesToItsTargetAddressAndMayBeHidden) {
  Entry e("CN=Carol (Notes),OU=Contacts,DC=acme,DC=example");
  e.add("objectClass", "contact");
  e.add("objectGUID", "00112233-4455-6677-8899-AABBCCDDEEFF");  // already text (an LDIF export)
  e.add("mail", "carol@acme.example");
  e.add("targetAddress", "SMTP:carol@notes.acme.example");
  e.add("msExchHideFromAddressLists", "TRUE");
  e.add("cn", "Carol (Notes)");
  const auto out = derive_recipient(e, Profile::kExchange, "exchange");
  ASSERT_EQ(out.status, Status::kRecipient) << out.reason;
  EXPECT_EQ(out.recipient.id, "00112233-4455-6677-8899-aabbccddeeff");
  EXPECT_EQ(out.recipient.kind, RecipientKind::kContact);
  EXPECT_EQ(out.recipient.routing_address, "carol@notes.acme.example");
  EXPECT_TRUE(out.recipient.hidden);
  EXPECT_EQ(out.recipient.display_name, "Carol (Notes)");  // no displayName: its cn
}

TEST(DeriveExchange, EntryUuidIsTheIdWithoutObjectGuid) {
  Entry e("cn=x,dc=acme");
  e.add("entryUUID", "5b4c2a1e-0000-1000-8000-000000000001");
  e.add("mail", "x@acme.example");
  const auto out = derive_recipient(e, Profile::kExchange, "exchange");
  ASSERT_EQ(out.status, Status::kRecipient) << out.reason;
  EXPECT_EQ(out.recipient.id, "5b4c2a1e-0000-1000-8000-000000000001");
}

TEST(DeriveExchange, NotMailEnabledAndComputersAreSkipped) {
  Entry plain("CN=Svc,DC=acme");
  plain.add("objectClass", "user");
  plain.add("objectGUID", std::string(16, '\x01'));
  EXPECT_EQ(derive_recipient(plain, Profile::kExchange, "exchange").status, Status::kSkipped);
  Entry computer = exchange_user();
  computer.add("objectClass", "computer");
  const auto out = derive_recipient(computer, Profile::kExchange, "exchange");
  EXPECT_EQ(out.status, Status::kSkipped);
  EXPECT_NE(out.reason.find("computer"), std::string::npos) << out.reason;
}

TEST(DeriveExchange, BadEntriesAreRefusedNamingTheProblem) {
  struct Case {
    const char* attribute;
    std::string value;
    const char* said;
  };
  for (const Case& c : {Case{"objectGUID", std::string(15, 'x'), "15 octets"},
                        Case{"proxyAddresses", "nocolon", "'nocolon' is not TYPE:address"},
                        Case{"proxyAddresses", "SMTP:second@acme.example", "two primary"},
                        Case{"msExchHideFromAddressLists", "maybe", "'maybe'"},
                        Case{"mail", "bad\r\n@acme.example", "control character"}}) {
    Entry e = exchange_user();
    if (std::string_view(c.attribute) == "proxyAddresses") {
      e.add(c.attribute, c.value);
    } else {
      e.set(c.attribute, {c.value});
    }
    const auto out = derive_recipient(e, Profile::kExchange, "exchange");
    EXPECT_EQ(out.status, Status::kRefused) << c.attribute;
    EXPECT_NE(out.reason.find(c.said), std::string::npos) << out.reason;
    EXPECT_NE(out.reason.find("CN=Ann Lee"), std::string::npos) << out.reason;
  }
}

TEST(GuidText, SixteenOctetsOnly) {
  EXPECT_EQ(guid_text(std::string(16, '\0')), "00000000-0000-0000-0000-000000000000");
  EXPECT_EQ(guid_text("short"), std::nullopt);
}

TEST(ValidateRecipient, NamesTheOffendingValue) {
  Recipient r;
  r.id = "u1";
  r.system = "notes";
  EXPECT_FALSE(validate_recipient(r));  // no form
  r.forms.push_back({FormKind::kSmtp, "a@b.example"});
  EXPECT_TRUE(validate_recipient(r));
  r.forms.push_back({FormKind::kNickname, std::string(kMaxFormLength + 1, 'n')});
  auto bad = validate_recipient(r);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("1025 octets"), std::string::npos) << bad.error().message;
  r.forms.pop_back();
  r.id = "has space";
  EXPECT_FALSE(validate_recipient(r));
}

TEST(Kinds, NamesRoundTrip) {
  for (auto k :
       {RecipientKind::kPerson, RecipientKind::kGroup, RecipientKind::kContact, RecipientKind::kMailInDatabase}) {
    EXPECT_EQ(recipient_kind_from_string(to_string(k)), k);
  }
  for (int k = 0; k <= static_cast<int>(FormKind::kNickname); ++k) {
    EXPECT_EQ(form_kind_from_string(to_string(static_cast<FormKind>(k))), static_cast<FormKind>(k));
  }
  EXPECT_EQ(form_kind_from_string("fax"), std::nullopt);
}

}  // namespace
}  // namespace bridgehead::directory
