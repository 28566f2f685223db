#include "directory/mapping/default_rules.hpp"

#include <algorithm>
#include <array>

#include "core/text.hpp"

namespace bridgehead::directory::mapping {
namespace {

// Every generator falls back to the display name, so that a user without given name or
// surname still gets a full name.
constexpr std::array<FullNameGenerator, 5> kGenerators = {{
    {"given-surname", "if_empty(concat(givenName, ' ', sn), first(displayName))", "John Doe"},
    {"given-initials-surname",
     "if_empty(concat(givenName, ' ', left(initials, 1), '. ', sn), if_empty(concat(givenName, ' ', sn), "
     "first(displayName)))",
     "John Q. Doe"},
    {"surname-given", "if_empty(concat(sn, ', ', givenName), first(displayName))", "Doe, John"},
    {"display-name", "if_empty(first(displayName), concat(givenName, ' ', sn))", "John Doe (Sales)"},
    {"alias", "first(mailNickname)", "jdoe"},
}};

RuleSource rule(std::string target, std::string text) {
  RuleSource r;
  r.target = std::move(target);
  r.text = std::move(text);
  return r;
}

Known known_with_variables(std::vector<std::string> attributes) {
  return Known(std::move(attributes), context_variables());
}

}  // namespace

std::vector<std::string> context_variables() { return {"routing_domain", "notes_domain", "system"}; }

Known domino_person_known() {
  return known_with_variables({"objectClass", "cn",          "sn",         "givenName",  "initials",
                               "displayName", "fullName",    "uid",        "shortName",  "mail",
                               "mailAddress", "mailDomain",  "mailServer", "mailFile",   "title",
                               "ou",          "o",           "department", "employeeID", "telephoneNumber",
                               "mobile",      "description", "member",     "dominoUNID"});
}

Known exchange_user_known() {
  return known_with_variables({"objectClass",
                               "objectGUID",
                               "distinguishedName",
                               "name",
                               "cn",
                               "sn",
                               "givenName",
                               "initials",
                               "displayName",
                               "mail",
                               "mailNickname",
                               "proxyAddresses",
                               "targetAddress",
                               "legacyExchangeDN",
                               "userPrincipalName",
                               "sAMAccountName",
                               "title",
                               "department",
                               "company",
                               "employeeID",
                               "telephoneNumber",
                               "mobile",
                               "physicalDeliveryOfficeName",
                               "description",
                               "member",
                               "memberOf",
                               "msExchRecipientTypeDetails"});
}

// The short name (uid in Domino's LDAP schema, ShortName in the Person document) is what a
// Notes user is known by in SMTP routing, so it is the contact's alias and routing address.
std::vector<RuleSource> domino_person_to_ad_contact() {
  return {
      rule("targetAddress", "concat('SMTP:', first(if_empty(uid, shortName)), '@', $routing_domain)"),
      rule("proxyAddresses", "list(concat('NOTES:', notes_abbrev(dn), '@', $notes_domain), concat('smtp:', mail))"),
      rule("mailNickname", "strip(first(if_empty(uid, shortName)), ' ')"),
      rule("displayName", "first(if_empty(displayName, cn))"),
      rule("givenName", "if_empty(givenName, name_first(first(cn)))"),
      rule("sn", "if_empty(sn, name_last(first(cn)))"),
      rule("mail", "first(mail)"),
  };
}

std::span<const FullNameGenerator> full_name_generators() { return kGenerators; }

const FullNameGenerator* find_full_name_generator(std::string_view name) {
  const auto it =
      std::find_if(kGenerators.begin(), kGenerators.end(), [name](const auto& g) { return iequals(g.name, name); });
  return it == kGenerators.end() ? nullptr : &*it;
}

std::vector<RuleSource> exchange_user_to_domino_person(const FullNameGenerator& generator) {
  return {
      rule("mailAddress", "concat(first(mailNickname), '@', $routing_domain)"),
      rule("fullName", std::string(generator.expression)),
      rule("cn", std::string(generator.expression)),
      rule("sn", "if_empty(sn, name_last(first(displayName)))"),
      rule("givenName", "if_empty(givenName, name_first(first(displayName)))"),
      rule("mail", "first(mail)"),
  };
}

// A Notes group is flat: its name (cn, the ListName) is what Notes users address it by, and
// with the Notes domain what Exchange users reply to. Only a group with an Internet address is
// exported (the engine leaves the others out), so targetAddress is that address.
std::vector<RuleSource> domino_group_to_ad_contact() {
  return {
      rule("targetAddress", "concat('SMTP:', first(mail))"),
      rule("proxyAddresses", "list(concat('NOTES:', first(cn), '@', $notes_domain), concat('smtp:', mail))"),
      rule("mailNickname", "strip(first(cn), ' ')"),
      rule("displayName", "first(if_empty(displayName, cn))"),
      rule("sn", "first(cn)"),
      rule("mail", "first(mail)"),
  };
}

std::vector<RuleSource> exchange_group_to_domino_person() {
  return {
      rule("mailAddress", "concat(first(mailNickname), '@', $routing_domain)"),
      rule("fullName", "first(if_empty(displayName, cn))"),
      rule("cn", "first(if_empty(displayName, cn))"),
      rule("sn", "first(cn)"),
      rule("mail", "first(mail)"),
  };
}

std::vector<RuleSource> domino_group_to_ad_group() {
  return {
      rule("proxyAddresses", "list(concat('NOTES:', first(cn), '@', $notes_domain), concat('smtp:', mail))"),
      rule("mailNickname", "strip(first(cn), ' ')"),
      rule("displayName", "first(if_empty(displayName, cn))"),
      rule("mail", "first(mail)"),
  };
}

std::vector<RuleSource> exchange_group_to_domino_group() {
  return {
      rule("cn", "first(if_empty(displayName, cn))"),
      rule("listName", "first(if_empty(displayName, cn))"),
      rule("fullName", "first(if_empty(displayName, cn))"),
      rule("displayName", "first(if_empty(displayName, cn))"),
      rule("mail", "first(mail)"),
  };
}

}  // namespace bridgehead::directory::mapping
