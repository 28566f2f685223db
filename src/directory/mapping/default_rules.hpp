// directory/mapping/default_rules: the mapping tables a new installation starts from, written
// in the mapping language (so they parse like an administrator's rules and the tests check
// them), and the attributes each source kind has. Variables, given per direction by the
// caller: $routing_domain, the domain whose mail reaches the other system through Bridgehead;
// $notes_domain, the Notes domain; $system, the name of the source system in the config.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "directory/mapping/expression.hpp"
#include "directory/mapping/rule_set.hpp"

namespace bridgehead::directory::mapping {

/// routing_domain, notes_domain, system.
std::vector<std::string> context_variables();

/// A Domino person as Domino's LDAP service shows it (dominoPerson, inetOrgPerson), with the
/// context variables.
Known domino_person_known();

/// An Active Directory user with an Exchange mailbox, with the context variables.
Known exchange_user_known();

/// Domino person → AD contact: targetAddress SMTP:<short name>@$routing_domain,
/// proxyAddresses NOTES:<abbreviated name>@$notes_domain and smtp:<each mail>, mailNickname
/// from the short name, displayName, givenName, sn, mail.
std::vector<RuleSource> domino_person_to_ad_contact();

/// One way to make a Notes full name for an Exchange user (the old connector's "address
/// generator"): `expression` gives fullName and cn.
struct FullNameGenerator {
  std::string_view name;        ///< "given-surname"
  std::string_view expression;  ///< in the mapping language
  std::string_view example;     ///< "John Doe"
};

/// given-surname (the default), given-initials-surname, surname-given, display-name, alias.
std::span<const FullNameGenerator> full_name_generators();

/// The generator called `name`, or null.
const FullNameGenerator* find_full_name_generator(std::string_view name);

/// Exchange user → Domino person: mailAddress (where Domino forwards to)
/// <mailNickname>@$routing_domain, fullName and cn from `generator`, sn, givenName, mail.
std::vector<RuleSource> exchange_user_to_domino_person(const FullNameGenerator& generator = full_name_generators()[0]);

/// Domino group → AD contact (name and address: the group is expanded in Notes, where the
/// contact routes its mail): targetAddress SMTP:<mail>, proxyAddresses NOTES:<name>@$notes_domain
/// and smtp:<each mail>, mailNickname the name without spaces, displayName, sn and mail.
std::vector<RuleSource> domino_group_to_ad_contact();

/// Exchange group → Domino person (name and address, expanded in Exchange): mailAddress
/// <mailNickname>@$routing_domain, fullName and cn the display name, sn, mail.
std::vector<RuleSource> exchange_group_to_domino_person();

/// With membership sync ([dirsync] group_members): Domino group → AD group, expanded in
/// Exchange (its members are the contacts of the group's members): mail, proxyAddresses
/// NOTES:<name>@$notes_domain and smtp:<each mail>, mailNickname, displayName. No
/// targetAddress: mail to it is delivered to its members, not routed back to Notes.
std::vector<RuleSource> domino_group_to_ad_group();

/// With membership sync: Exchange group → Domino group, expanded in Notes: cn, listName and
/// fullName the display name, displayName, mail.
std::vector<RuleSource> exchange_group_to_domino_group();

}  // namespace bridgehead::directory::mapping
