// directory/ldap/ldap_error: turns an LDAP result code (RFC 4511 4.1.9, and libldap's own
// negative client codes) into the project's Error: what the code means in words, whether
// retrying can help, the server's diagnostic text, and what a person should do. Pure: no
// libldap calls, so every mapping is unit-tested.
#pragma once

#include <string>
#include <string_view>

#include "core/error.hpp"

namespace bridgehead::directory::ldap {

/// The meaning of `code` in words: "invalid credentials", "no such object", "server down";
/// "result code N" for one it does not know.
std::string result_code_meaning(int code);

/// Whether an operation that ended with `code` may succeed later unchanged (busy,
/// unavailable, server down, timeouts, connection errors).
bool is_transient_result(int code);

/// The Error for `code` ending `operation` ("bind as cn=x,o=y", "search of o=Acme", "add of
/// cn=..."), sent to `uri`: "bind as cn=x to ldap://h:389 failed: invalid credentials (LDAP
/// result 49); the server said: ...", with the code's ErrorCode, severity and remedy.
/// `diagnostic` is the server's text (escaped here), empty when it sent none.
Error result_error(int code, std::string_view operation, std::string_view uri, std::string_view diagnostic);

}  // namespace bridgehead::directory::ldap
