// directory/addressbook: one recipient of the address book (a person, group, contact or
// mail-in database of Domino or Active Directory) with every form under which mail can
// name it, and the two profiles that derive one from a directory::Entry. Pure: no I/O; the
// book itself (address_book.hpp), its file and its publication live beside this.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/expected.hpp"
#include "directory/entry.hpp"

namespace bridgehead::directory {

enum class RecipientKind : std::uint8_t { kPerson, kGroup, kContact, kMailInDatabase };

/// The forms share one name space in the book: an SMTP address has an '@', an X.500 name
/// starts with '/', so only names of one kind can really collide.
enum class FormKind : std::uint8_t {
  kSmtp,              ///< alice@acme.example; a recipient's first SMTP form is its primary address
  kNotesCanonical,    ///< CN=John Doe/OU=Sales/O=Acme
  kNotesAbbreviated,  ///< John Doe/Sales/Acme
  kNotesAddress,      ///< John Doe/Sales/Acme@AcmeDomain (mailDomain, NOTES: proxies)
  kNotesAlias,        ///< further fullName values, flat group and mail-in database names
  kShortName,         ///< uid / shortName
  kX500,              ///< legacyExchangeDN and X500: proxies (/o=Acme/ou=.../cn=Recipients/cn=jdoe)
  kNickname,          ///< mailNickname
};

std::string_view to_string(RecipientKind kind);
std::string_view to_string(FormKind kind);
/// The inverses of to_string ("person", "mail-in-database", "smtp", "notes-canonical"...).
std::optional<RecipientKind> recipient_kind_from_string(std::string_view text);
std::optional<FormKind> form_kind_from_string(std::string_view text);

struct Form {
  FormKind kind = FormKind::kSmtp;
  std::string value;
  bool operator==(const Form&) const = default;
};

/// Forms longer than this are refused: no real address or name comes near it, and the book's
/// file stores a form's length in 16 bits.
inline constexpr std::size_t kMaxFormLength = 1024;

struct Recipient {
  std::string id;      ///< the object's immutable id: dominoUNID, objectGUID as GUID text, or entryUUID
  std::string system;  ///< its home system, as named in the config ("notes", "exchange")
  RecipientKind kind = RecipientKind::kPerson;
  std::string display_name;
  std::vector<Form> forms;      ///< every name that reaches it; no two equal but for ASCII case
  std::string routing_address;  ///< where mail for it goes in its home system (targetAddress, mailAddress, mail)
  bool hidden = false;          ///< hidden from address lists (still receives mail)
  bool operator==(const Recipient&) const = default;
};

/// Checks what the book relies on: an id and a system name (printable, at most 256 octets),
/// at least one form, each non-empty, at most kMaxFormLength octets, valid UTF-8 without
/// control characters, an SMTP form with a local part, '@' and a domain and no spaces. Fails
/// (kInvalidArgument) naming the recipient and the offending value.
Expected<void> validate_recipient(const Recipient& r);

/// `r` with forms that repeat an earlier one (ASCII case ignored) dropped, the first kept.
void drop_repeated_forms(Recipient& r);

/// The usual text of a binary objectGUID (16 octets, the first three groups little-endian):
/// "d1b7c6a5-3f2e-4d1c-9b8a-0123456789ab". nullopt when `octets` is not 16 long.
std::optional<std::string> guid_text(std::string_view octets);

/// Which directory an entry comes from, which decides the attributes read.
enum class Profile {
  kDomino,    ///< mail, fullName, uid/shortName, mailDomain, mailAddress, dominoUNID, availableForDirSync
  kExchange,  ///< mail, proxyAddresses, legacyExchangeDN, mailNickname, targetAddress, displayName,
              ///< msExchHideFromAddressLists, objectGUID
};

/// What became of one entry: a recipient, an entry that is rightly not one (a server
/// document, not mail-enabled, excluded from directory synchronization), or a bad entry.
struct EntryOutcome {
  enum class Status { kRecipient, kSkipped, kRefused };
  Status status = Status::kRefused;
  Recipient recipient;  ///< when kRecipient
  std::string reason;   ///< kSkipped: why; kRefused: the problem, naming the DN, attribute and value
};

/// Derives the recipient of `entry` whose home system is `system`, by `profile`. The id is
/// dominoUNID (Domino) or objectGUID (Exchange: 16 octets, or already GUID text), else
/// entryUUID. Never throws; a bad entry is kRefused with the reason.
EntryOutcome derive_recipient(const Entry& entry, Profile profile, std::string_view system);

}  // namespace bridgehead::directory
