// directory/addressbook: a list of recipients written by hand or by a script, for sites that
// import their address book (`bridgehead addressbook import`) instead of, or before,
// synchronizing a directory. JSON Lines: one recipient object a line, e.g.
//
//   {"id": "u1", "system": "notes", "kind": "person", "display_name": "Carol",
//    "forms": {"smtp": ["carol@acme.example"], "notes-abbreviated": ["Carol/Acme"]},
//    "routing_address": "carol@notes.acme.example", "hidden": false}
//
// id, system and forms are required; kind defaults to person, routing_address to the first
// SMTP form. Form kinds and recipient kinds are the to_string names of recipient.hpp. Blank
// lines and lines starting with '#' are skipped. Parsing only: no I/O.
#pragma once

#include <string_view>
#include <vector>

#include "core/expected.hpp"
#include "directory/addressbook/recipient.hpp"

namespace bridgehead::directory {

/// The recipients of `text`. Fails (kParse) at the first bad line with "NAME:LINE:COLUMN:"
/// and the problem: bad JSON, a missing or unknown key, a value of the wrong type, an unknown
/// kind, or a recipient validate_recipient refuses.
Expected<std::vector<Recipient>> parse_recipient_list(std::string_view text, std::string_view name);

}  // namespace bridgehead::directory
