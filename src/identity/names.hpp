// Notes hierarchical names and the X.500 subjects of the connector ID's certificates, both
// ways: `Exchange Connector/Sales/Acme` ↔ `CN=Exchange Connector,OU=Sales,O=Acme`. A
// certifier's name has no common name (`/Sales/Acme`). Pure: parses, validates and prints
// names; knows nothing of files, keys or signatures.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <openssl/types.h>

#include "core/expected.hpp"

namespace bridgehead::identity {

/// The rules (those of Notes, so a name made here is one Domino would accept):
/// - a common name (CN), absent for a certifier; 0 to 4 organizational units (OU), the
///   innermost first as in the abbreviated form; one organization (O) of 3 to 64
///   characters; optionally a country (C), two letters.
/// - each part is UTF-8 without control characters and without `/`, at most 64 characters,
///   with no spaces at either end (spaces around `/` are dropped when parsing).
struct NotesName {
  std::string common_name;             ///< empty for a certifier
  std::vector<std::string> org_units;  ///< innermost first: `A/Dev/Sales/Acme` → {"Dev", "Sales"}
  std::string organization;
  std::string country;  ///< empty or two upper-case letters

  bool is_certifier() const { return common_name.empty(); }
  /// `Exchange Connector/Sales/Acme`, `/Sales/Acme`, `X/Acme/US`.
  std::string abbreviated() const;
  /// `CN=Exchange Connector/OU=Sales/O=Acme`, `OU=Sales/O=Acme`.
  std::string canonical() const;
  /// The RFC 4514 string, most specific first, special characters escaped:
  /// `CN=Exchange Connector,OU=Sales,O=Acme`.
  std::string x500() const;
  /// The name one level up: `/Sales/Acme` for `X/Sales/Acme`, `/Acme` for `/Sales/Acme`;
  /// the name itself for a top-level certifier (`/Acme`, `/Acme/US`).
  NotesName parent() const;
  /// Same parts, compared the way Notes and X.500 do (ASCII case-insensitive).
  bool same_as(const NotesName& other) const;
};

/// Parses a Notes name, abbreviated (`Exchange Connector/Sales/Acme`, `/Sales/Acme`; a last
/// part of exactly two letters is the country: `/Acme/US`) or canonical
/// (`CN=Exchange Connector/OU=Sales/O=Acme/C=US`). Fails with kInvalidArgument naming the
/// offending part and the rule it breaks.
Expected<NotesName> parse_notes_name(std::string_view text);

/// Parses an RFC 4514 string (`CN=Exchange Connector,OU=Sales,O=Acme`, escapes allowed;
/// attribute types CN, OU, O, C or their OIDs). Fails with kInvalidArgument on bad syntax,
/// other attribute types, multi-valued RDNs, or a name that breaks the Notes rules.
Expected<NotesName> parse_x500_name(std::string_view text);

/// Reads a certificate subject or issuer. Fails (kInvalidArgument) when it is not a Notes
/// hierarchical name: other attributes, a multi-valued RDN, or the parts out of order.
Expected<NotesName> from_x509_name(const X509_NAME* name);

/// Adds the parts to an empty OpenSSL X509_NAME in DER order (C, O, OU outermost first,
/// CN), as UTF8String (PrintableString for C). Fails (kInternal) only when OpenSSL does.
Expected<void> to_x509_name(const NotesName& name, X509_NAME* out);

/// The RFC 4514 form of any X509_NAME, for names that are not Notes names.
std::string x509_name_text(const X509_NAME* name);

}  // namespace bridgehead::identity
