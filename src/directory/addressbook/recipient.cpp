#include "directory/addressbook/recipient.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <unordered_set>

#include <fmt/format.h>

#include "core/text.hpp"
#include "identity/names.hpp"

namespace bridgehead::directory {
namespace {

constexpr std::size_t kMaxIdLength = 256;
constexpr std::size_t kMaxFormsPerRecipient = 4096;

constexpr std::array<std::string_view, 4> kRecipientKinds = {"person", "group", "contact", "mail-in-database"};
constexpr std::array<std::string_view, 8> kFormKinds = {
    "smtp", "notes-canonical", "notes-abbreviated", "notes-address", "notes-alias", "short-name", "x500", "nickname"};

template <typename Enum, std::size_t N>
std::optional<Enum> enum_from(const std::array<std::string_view, N>& names, std::string_view text) {
  for (std::size_t i = 0; i < N; ++i) {
    if (iequals(names[i], text)) return static_cast<Enum>(i);
  }
  return std::nullopt;
}

Error invalid(const Recipient& r, std::string what) {
  return Error::permanent(ErrorCode::kInvalidArgument,
                          fmt::format("recipient '{}' of {}: {}", escape_control(r.id), escape_control(r.system), what),
                          "correct it in the directory (or the list it came from)");
}

bool has_control(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char ch) {
    const auto c = static_cast<unsigned char>(ch);
    return c < 0x20 || c == 0x7F;
  });
}

bool printable_token(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c > 0x20 && c < 0x7F; });
}

// Why `value` cannot be a form, or empty when it can.
std::string form_problem(FormKind kind, std::string_view value) {
  if (value.empty()) return "is empty";
  if (value.size() > kMaxFormLength)
    return fmt::format("has {} octets; at most {} are allowed", value.size(), kMaxFormLength);
  if (!is_valid_utf8(value)) return "is not valid UTF-8";
  if (has_control(value)) return "contains a control character";
  if (kind == FormKind::kSmtp) {
    const auto at = value.rfind('@');
    if (at == std::string_view::npos || at == 0 || at + 1 == value.size()) {
      return "is not an SMTP address (local-part@domain)";
    }
    if (value.find(' ') != std::string_view::npos) return "contains a space";
  }
  return {};
}

std::string text_problem(std::string_view value) {
  if (value.size() > kMaxFormLength)
    return fmt::format("has {} octets; at most {} are allowed", value.size(), kMaxFormLength);
  if (!is_valid_utf8(value)) return "is not valid UTF-8";
  if (has_control(value)) return "contains a control character";
  return {};
}

// ---------------------------------------------------------------- the profiles

bool has_class(const Entry& e, std::string_view name) {
  const auto* classes = e.find("objectClass");
  return classes != nullptr &&
         std::any_of(classes->begin(), classes->end(), [name](const std::string& c) { return iequals(c, name); });
}

bool has_class_containing(const Entry& e, std::string_view part) {
  const auto* classes = e.find("objectClass");
  return classes != nullptr && std::any_of(classes->begin(), classes->end(), [part](const std::string& c) {
           return to_lower(c).find(part) != std::string::npos;
         });
}

std::string class_list(const Entry& e) {
  const auto* classes = e.find("objectClass");
  return classes == nullptr ? std::string() : fmt::format("{}", fmt::join(*classes, ", "));
}

EntryOutcome skipped(const Entry& e, std::string why) {
  EntryOutcome out;
  out.status = EntryOutcome::Status::kSkipped;
  out.reason = fmt::format("{}: {}", escape_control(e.dn()), why);
  return out;
}

EntryOutcome refused(const Entry& e, std::string why) {
  EntryOutcome out;
  out.status = EntryOutcome::Status::kRefused;
  out.reason = fmt::format("{}: {}", escape_control(e.dn()), why);
  return out;
}

void add_values(Recipient& r, const Entry& e, std::string_view attribute, FormKind kind) {
  if (const auto* values = e.find(attribute)) {
    for (const auto& v : *values) r.forms.push_back({kind, std::string(trim(v))});
  }
}

std::string_view first_of(const Entry& e, std::initializer_list<std::string_view> attributes) {
  for (auto a : attributes) {
    if (auto v = trim(e.first(a)); !v.empty()) return v;
  }
  return {};
}

// Common to both profiles: duplicates out, the rules checked, the outcome.
EntryOutcome finish(const Entry& e, Recipient r) {
  drop_repeated_forms(r);
  if (r.forms.empty()) return skipped(e, "it has no name or address to reach it by");
  if (auto ok = validate_recipient(r); !ok) return refused(e, ok.error().message);
  EntryOutcome out;
  out.status = EntryOutcome::Status::kRecipient;
  out.recipient = std::move(r);
  return out;
}

bool is_guid_text(std::string_view s) {
  if (s.size() != 36) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash != (s[i] == '-')) return false;
    if (!dash && !std::isxdigit(static_cast<unsigned char>(s[i]))) return false;
  }
  return true;
}

EntryOutcome derive_domino(const Entry& e, std::string_view system) {
  if (const auto a = trim(e.first("availableForDirSync")); iequals(a, "false") || a == "0") {
    return skipped(e, "availableForDirSync is false: excluded from directory synchronization");
  }
  if (has_class(e, "dominoServer")) return skipped(e, "a server document (objectClass dominoServer), not a recipient");
  Recipient r;
  r.system = std::string(system);
  if (!e.has("objectClass") || has_class(e, "dominoPerson") || has_class(e, "inetOrgPerson") ||
      has_class(e, "person")) {
    r.kind = RecipientKind::kPerson;
  } else if (has_class(e, "dominoGroup") || has_class(e, "groupOfNames") || has_class(e, "groupOfUniqueNames")) {
    r.kind = RecipientKind::kGroup;
  } else if (has_class_containing(e, "mailindatabase")) {
    r.kind = RecipientKind::kMailInDatabase;
  } else {
    return skipped(e, fmt::format("objectClass {} is not a person, group or mail-in database", class_list(e)));
  }
  r.id = std::string(first_of(e, {"dominoUNID", "entryUUID"}));
  if (r.id.empty())
    return refused(e, "it has no dominoUNID (nor entryUUID): the book needs an id that survives renames");

  // Groups are flat in Notes (a DN of `cn=Sales,o=Acme` is not a hierarchical name there);
  // people and mail-in databases have a hierarchical name, in fullName or in the DN.
  const auto* full = e.find("fullName");
  std::optional<identity::NotesName> name;
  std::size_t aliases_from = 0;
  std::string why_not;
  if (r.kind != RecipientKind::kGroup) {
    if (full != nullptr && !full->empty()) {
      if (auto parsed = identity::parse_notes_name(full->front()); parsed && !parsed->is_certifier()) {
        name = std::move(*parsed);
        aliases_from = 1;
      } else {
        why_not = parsed ? "fullName is a certifier's name" : "fullName: " + parsed.error().message;
      }
    }
    if (auto from_dn = identity::parse_x500_name(e.dn()); from_dn && !from_dn->is_certifier()) {
      if (!name) name = *from_dn;
      if (!from_dn->same_as(*name)) {
        r.forms.push_back({FormKind::kNotesCanonical, from_dn->canonical()});
        r.forms.push_back({FormKind::kNotesAbbreviated, from_dn->abbreviated()});
      }
    } else if (!name && r.kind == RecipientKind::kPerson) {
      if (why_not.empty()) why_not = "it has no fullName";
      return refused(e, fmt::format("{}, and the DN is not a Notes hierarchical name ({})", why_not,
                                    from_dn ? "a certifier's name" : from_dn.error().message));
    }
  }
  if (name) {
    r.forms.insert(r.forms.begin(), {{FormKind::kNotesCanonical, name->canonical()},
                                     {FormKind::kNotesAbbreviated, name->abbreviated()}});
  }
  if (full != nullptr) {
    for (std::size_t i = aliases_from; i < full->size(); ++i) r.forms.push_back({FormKind::kNotesAlias, (*full)[i]});
  }
  if (r.forms.empty()) add_values(r, e, "cn", FormKind::kNotesAlias);
  // SMTP first, so the first SMTP form (the primary) is mail's first value.
  std::vector<Form> names = std::move(r.forms);
  r.forms.clear();
  add_values(r, e, "mail", FormKind::kSmtp);
  r.forms.insert(r.forms.end(), names.begin(), names.end());
  add_values(r, e, "uid", FormKind::kShortName);
  add_values(r, e, "shortName", FormKind::kShortName);
  const auto domain = trim(e.first("mailDomain"));
  std::string notes_address;
  if (!domain.empty() && !names.empty()) {
    notes_address = fmt::format("{}@{}", name ? name->abbreviated() : names.front().value, domain);
    r.forms.push_back({FormKind::kNotesAddress, notes_address});
  }
  // mailAddress is the forwarding address: where Domino itself would send this person's mail.
  r.routing_address = std::string(first_of(e, {"mailAddress", "mail"}));
  if (r.routing_address.empty()) r.routing_address = notes_address;
  r.display_name = std::string(first_of(e, {"displayName"}));
  if (r.display_name.empty()) {
    r.display_name = name ? name->common_name : names.empty() ? std::string(first_of(e, {"cn"})) : names.front().value;
  }
  return finish(e, std::move(r));
}

EntryOutcome derive_exchange(const Entry& e, std::string_view system) {
  Recipient r;
  r.system = std::string(system);
  // A computer account is a `user` too in Active Directory.
  if (has_class(e, "computer")) return skipped(e, "a computer account, not a recipient");
  if (has_class(e, "group")) {
    r.kind = RecipientKind::kGroup;
  } else if (has_class(e, "contact")) {
    r.kind = RecipientKind::kContact;
  } else if (!e.has("objectClass") || has_class(e, "user") || has_class(e, "person") || has_class(e, "inetOrgPerson")) {
    r.kind = RecipientKind::kPerson;
  } else {
    return skipped(e, fmt::format("objectClass {} is not a user, contact or group", class_list(e)));
  }
  if (const auto* guid = e.find("objectGUID"); guid != nullptr && !guid->empty()) {
    const std::string& raw = guid->front();
    if (auto text = guid_text(raw)) {
      r.id = *text;
    } else if (is_guid_text(raw)) {
      r.id = to_lower(raw);
    } else {
      return refused(
          e, fmt::format("objectGUID has {} octets; a GUID has 16 (or is written as 36 characters)", raw.size()));
    }
  } else {
    r.id = std::string(trim(e.first("entryUUID")));
  }
  if (r.id.empty())
    return refused(e, "it has no objectGUID (nor entryUUID): the book needs an id that survives renames");

  std::optional<std::string> primary;
  std::vector<Form> secondary, x500, notes;
  if (const auto* proxies = e.find("proxyAddresses")) {
    for (const auto& p : *proxies) {
      const auto colon = p.find(':');
      if (colon == std::string::npos || colon == 0 || colon + 1 == p.size()) {
        return refused(e, fmt::format("proxyAddresses value '{}' is not TYPE:address", escape_control(p)));
      }
      const std::string_view type(p.data(), colon);
      std::string address(trim(std::string_view(p).substr(colon + 1)));
      if (type == "SMTP") {
        if (primary) {
          return refused(e, fmt::format("proxyAddresses has two primary addresses, SMTP:{} and {}",
                                        escape_control(*primary), escape_control(p)));
        }
        primary = std::move(address);
      } else if (iequals(type, "smtp")) {
        secondary.push_back({FormKind::kSmtp, std::move(address)});
      } else if (iequals(type, "X500")) {
        x500.push_back({FormKind::kX500, std::move(address)});
      } else if (iequals(type, "NOTES")) {
        notes.push_back({FormKind::kNotesAddress, std::move(address)});
      }
      // Other types (X400:, SIP:, EUM:) name no mail recipient the connector routes.
    }
  }
  if (primary) r.forms.push_back({FormKind::kSmtp, *primary});
  add_values(r, e, "mail", FormKind::kSmtp);
  r.forms.insert(r.forms.end(), secondary.begin(), secondary.end());
  add_values(r, e, "legacyExchangeDN", FormKind::kX500);
  r.forms.insert(r.forms.end(), x500.begin(), x500.end());
  r.forms.insert(r.forms.end(), notes.begin(), notes.end());
  add_values(r, e, "mailNickname", FormKind::kNickname);

  std::string_view target = trim(e.first("targetAddress"));
  const bool has_smtp =
      std::any_of(r.forms.begin(), r.forms.end(), [](const Form& f) { return f.kind == FormKind::kSmtp; });
  if (!has_smtp && target.empty()) return skipped(e, "not mail-enabled: no mail, SMTP proxy address or targetAddress");
  if (istarts_with(target, "smtp:")) target.remove_prefix(5);
  r.routing_address =
      !target.empty() ? std::string(target) : std::find_if(r.forms.begin(), r.forms.end(), [](const Form& f) {
                                                return f.kind == FormKind::kSmtp;
                                              })->value;
  r.display_name = std::string(first_of(e, {"displayName", "cn"}));
  if (const auto hide = trim(e.first("msExchHideFromAddressLists")); !hide.empty()) {
    if (iequals(hide, "TRUE")) {
      r.hidden = true;
    } else if (!iequals(hide, "FALSE")) {
      return refused(e, fmt::format("msExchHideFromAddressLists is '{}', not TRUE or FALSE", escape_control(hide)));
    }
  }
  return finish(e, std::move(r));
}

}  // namespace

std::string_view to_string(RecipientKind kind) { return kRecipientKinds.at(static_cast<std::size_t>(kind)); }
std::string_view to_string(FormKind kind) { return kFormKinds.at(static_cast<std::size_t>(kind)); }

std::optional<RecipientKind> recipient_kind_from_string(std::string_view text) {
  return enum_from<RecipientKind>(kRecipientKinds, text);
}

std::optional<FormKind> form_kind_from_string(std::string_view text) { return enum_from<FormKind>(kFormKinds, text); }

Expected<void> validate_recipient(const Recipient& r) {
  if (r.id.empty()) return fail(invalid(r, "the id is empty"));
  if (r.id.size() > kMaxIdLength || !printable_token(r.id)) {
    return fail(
        invalid(r, fmt::format("the id must be printable ASCII without spaces, at most {} octets", kMaxIdLength)));
  }
  if (r.system.empty() || r.system.size() > kMaxIdLength || !printable_token(r.system)) {
    return fail(invalid(r, "the system name must be printable ASCII without spaces, 1 to 256 octets"));
  }
  if (auto p = text_problem(r.display_name); !p.empty()) return fail(invalid(r, "the display name " + p));
  if (auto p = text_problem(r.routing_address); !p.empty()) return fail(invalid(r, "the routing address " + p));
  if (r.forms.empty()) return fail(invalid(r, "it has no form (address or name)"));
  if (r.forms.size() > kMaxFormsPerRecipient) {
    return fail(
        invalid(r, fmt::format("it has {} forms; at most {} are allowed", r.forms.size(), kMaxFormsPerRecipient)));
  }
  for (const auto& f : r.forms) {
    if (auto p = form_problem(f.kind, f.value); !p.empty()) {
      return fail(invalid(r, fmt::format("the {} form '{}' {}", to_string(f.kind), escape_control(f.value), p)));
    }
  }
  return {};
}

void drop_repeated_forms(Recipient& r) {
  std::unordered_set<std::string> seen;
  std::erase_if(r.forms, [&seen](const Form& f) { return !seen.insert(to_lower(f.value)).second; });
}

std::optional<std::string> guid_text(std::string_view octets) {
  if (octets.size() != 16) return std::nullopt;
  const auto b = [&octets](std::size_t i) { return static_cast<unsigned char>(octets[i]); };
  return fmt::format(
      "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}", b(3),
      b(2), b(1), b(0), b(5), b(4), b(7), b(6), b(8), b(9), b(10), b(11), b(12), b(13), b(14), b(15));
}

EntryOutcome derive_recipient(const Entry& entry, Profile profile, std::string_view system) {
  return profile == Profile::kDomino ? derive_domino(entry, system) : derive_exchange(entry, system);
}

}  // namespace bridgehead::directory
