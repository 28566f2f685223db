// directory/mapping/text_functions: what the mapping functions do to one value: case,
// Proper Case, cutting by characters, stripping, replacing, splitting a person's name, and
// reading a Notes name or an LDAP DN. UTF-8 aware (lengths count characters, never cut a
// sequence). Each writes into a caller's string so a caller can reuse its capacity; none
// throws. The language, its lists of values and its problems are evaluate.hpp's.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace bridgehead::directory::mapping {

/// Upper/lower case of ASCII, Latin-1, Latin Extended-A, Greek and Cyrillic letters; other
/// characters stay as they are (ß stays ß: no mapping changes a value's length in letters).
/// False (and `out` unspecified) when `in` is not valid UTF-8.
bool lower_text(std::string_view in, std::string& out);
bool upper_text(std::string_view in, std::string& out);
/// "mary-jane o'neil" → "Mary-Jane O'Neil": a letter or digit after any other character
/// starts a word and is upper-cased, the rest of the word lower-cased. False on bad UTF-8.
bool proper_text(std::string_view in, std::string& out);

/// The first `count` characters. False on bad UTF-8.
bool left_text(std::string_view in, std::size_t count, std::string& out);
/// `count` characters from character `start` (1 is the first; npos: to the end). A start past
/// the end gives "". False on bad UTF-8.
bool substr_text(std::string_view in, std::size_t start, std::size_t count, std::string& out);
/// Without `chars` (empty): `in` without spaces and tabs at either end. With `chars`: `in`
/// without any occurrence of any character of `chars`. False when either is bad UTF-8.
bool strip_text(std::string_view in, std::string_view chars, std::string& out);
/// Every occurrence of `from` (non-empty, exact) replaced by `to`, left to right.
void replace_text(std::string_view in, std::string_view from, std::string_view to, std::string& out);

/// What a name function made of one value.
enum class Outcome {
  kValue,    ///< `out` holds the result
  kNoValue,  ///< nothing to give, and nothing wrong (a blank value; "Madonna" has no given name)
  kBad,      ///< the value cannot be read: `why` says how
};

enum class NamePart { kFirst, kLast };

/// The given name or the surname of a display or full name: "Doe, John" (surname first when
/// there is a comma), "John Doe", "John Q. Doe" (middle names and initials are neither),
/// "Ludwig van Beethoven" (lower-case particles belong to the surname), "John Doe Jr."
/// (a generational suffix is dropped), "John Doe/Sales/Acme" (a Notes name: its common name).
Outcome name_part(std::string_view value, NamePart part, std::string& out, std::string& why);

enum class NameForm {
  kAbbreviated,  ///< John Doe/Sales/Acme
  kCanonical,    ///< CN=John Doe/OU=Sales/O=Acme
  kX500,         ///< CN=John Doe,OU=Sales,O=Acme (RFC 4514)
};

/// A Notes name in any form (abbreviated, canonical) or an LDAP DN (`cn=John Doe,ou=Sales,
/// o=Acme`) written in `form`. kBad (with identity's reason) when it is neither, e.g. an
/// Active Directory DN with DC= parts; kNoValue for a blank value.
Outcome notes_name(std::string_view value, NameForm form, std::string& out, std::string& why);

}  // namespace bridgehead::directory::mapping
