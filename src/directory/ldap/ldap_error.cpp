#include "directory/ldap/ldap_error.hpp"

#include "core/text.hpp"

namespace bridgehead::directory::ldap {

namespace {

struct CodeInfo {
  int code;
  const char* meaning;
  ErrorCode error;
  Severity severity;
  const char* remedy;
};

constexpr Severity kT = Severity::kTransient;
constexpr Severity kP = Severity::kPermanent;

// RFC 4511 4.1.9 and Appendix A; the negative codes are libldap's (ldap.h, LDAP_API_ERROR).
constexpr CodeInfo kCodes[] = {
    {1, "operations error", ErrorCode::kInternal, kP, "check the server's log"},
    {2, "protocol error", ErrorCode::kInternal, kP, "check that the server speaks LDAPv3"},
    {3, "time limit exceeded", ErrorCode::kTimeout, kT,
     "narrow the search or raise the server's time limit (AD: MaxQueryDuration)"},
    {4, "size limit exceeded", ErrorCode::kLimit, kP,
     "use a paged search (page size at most the server's limit, AD's MaxPageSize) or narrow the filter"},
    {7, "authentication method not supported", ErrorCode::kConfig, kP,
     "use a bind method the server offers (simple over TLS, or SASL EXTERNAL with a client certificate)"},
    {8, "stronger authentication required", ErrorCode::kConfig, kP,
     "use StartTLS or an ldaps:// URI, or SASL EXTERNAL"},
    {10, "referral", ErrorCode::kConfig, kP, "point the URI at a server that holds this part of the directory"},
    {11, "administrative limit exceeded", ErrorCode::kLimit, kP,
     "narrow the search or raise the server's administrative limit"},
    {12, "unavailable critical extension", ErrorCode::kUnavailable, kP,
     "the server does not support a control the request needs (paged results, RFC 2696)"},
    {13, "confidentiality required", ErrorCode::kConfig, kP, "use StartTLS or an ldaps:// URI"},
    {14, "SASL bind in progress", ErrorCode::kInternal, kP, ""},
    {16, "no such attribute", ErrorCode::kNotFound, kP, "check the attribute and value to delete"},
    {17, "undefined attribute type", ErrorCode::kInvalidArgument, kP,
     "the server's schema has no such attribute: check its name or extend the schema"},
    {18, "inappropriate matching", ErrorCode::kInvalidArgument, kP,
     "the attribute has no matching rule for this filter"},
    {19, "constraint violation", ErrorCode::kInvalidArgument, kP,
     "check the values against the server's constraints (single-valued, length, uniqueness)"},
    {20, "attribute or value exists", ErrorCode::kInvalidArgument, kP, "the value is already there"},
    {21, "invalid attribute syntax", ErrorCode::kInvalidArgument, kP, "check the value against the attribute's syntax"},
    {32, "no such object", ErrorCode::kNotFound, kP, "check the DN (and the base DN of searches)"},
    {33, "alias problem", ErrorCode::kInvalidArgument, kP, ""},
    {34, "invalid DN syntax", ErrorCode::kInvalidArgument, kP, "check the DN's syntax (RFC 4514)"},
    {36, "alias dereferencing problem", ErrorCode::kInvalidArgument, kP, ""},
    {48, "inappropriate authentication", ErrorCode::kPermission, kP,
     "this account may not bind this way (anonymous or without a password)"},
    {49, "invalid credentials", ErrorCode::kWrongPassword, kP,
     "check the bind DN and the bind password file (or the client certificate for SASL EXTERNAL)"},
    {50, "insufficient access rights", ErrorCode::kPermission, kP,
     "grant the bind account the rights this operation needs on the server"},
    {51, "server busy", ErrorCode::kUnavailable, kT, "try again later"},
    {52, "server unavailable", ErrorCode::kUnavailable, kT, "try again later, or use another server"},
    {53, "unwilling to perform", ErrorCode::kPermission, kP, "the server refuses this operation; its message says why"},
    {54, "loop detected", ErrorCode::kInternal, kP, ""},
    {64, "naming violation", ErrorCode::kInvalidArgument, kP, "check the RDN against the server's naming rules"},
    {65, "object class violation", ErrorCode::kInvalidArgument, kP,
     "check the entry's object classes and their mandatory and allowed attributes"},
    {66, "not allowed on non-leaf", ErrorCode::kInvalidArgument, kP, "delete or move the entries below first"},
    {67, "not allowed on RDN", ErrorCode::kInvalidArgument, kP, "rename the entry instead"},
    {68, "entry already exists", ErrorCode::kInvalidArgument, kP, "an entry with this DN exists already"},
    {69, "object class modifications prohibited", ErrorCode::kInvalidArgument, kP, ""},
    {71, "affects multiple DSAs", ErrorCode::kInvalidArgument, kP, ""},
    {80, "other error", ErrorCode::kInternal, kP, "check the server's log"},
    {-1, "server down", ErrorCode::kUnavailable, kT,
     "check that the directory server runs and listens there, and the network between"},
    {-2, "local error", ErrorCode::kInternal, kP, ""},
    {-3, "encoding error", ErrorCode::kInternal, kP, ""},
    {-4, "decoding error", ErrorCode::kInternal, kT, "the server sent a reply the client cannot decode"},
    {-5, "timeout", ErrorCode::kTimeout, kT, "the server did not answer in time: check its load and the network"},
    {-6, "unknown authentication method", ErrorCode::kConfig, kP, ""},
    {-7, "bad search filter", ErrorCode::kParse, kP, "check the filter's syntax (RFC 4515)"},
    {-8, "cancelled", ErrorCode::kInternal, kT, ""},
    {-9, "bad parameter", ErrorCode::kInvalidArgument, kP, ""},
    {-10, "out of memory", ErrorCode::kInternal, kT, ""},
    {-11, "connect error", ErrorCode::kUnavailable, kT, "check that the directory server runs and listens there"},
    {-12, "not supported", ErrorCode::kConfig, kP, ""},
    {-13, "control not found", ErrorCode::kInternal, kP, ""},
    {-14, "no results returned", ErrorCode::kInternal, kT, ""},
    {-15, "more results to return", ErrorCode::kInternal, kP, ""},
    {-16, "client loop", ErrorCode::kInternal, kP, ""},
    {-17, "referral limit exceeded", ErrorCode::kConfig, kP, ""},
};

const CodeInfo* find(int code) {
  for (const CodeInfo& c : kCodes) {
    if (c.code == code) return &c;
  }
  return nullptr;
}

}  // namespace

std::string result_code_meaning(int code) {
  const CodeInfo* c = find(code);
  return c != nullptr ? c->meaning : "result code " + std::to_string(code);
}

bool is_transient_result(int code) {
  const CodeInfo* c = find(code);
  return c != nullptr && c->severity == Severity::kTransient;
}

Error result_error(int code, std::string_view operation, std::string_view uri, std::string_view diagnostic) {
  const CodeInfo* c = find(code);
  std::string message = std::string(operation) + " to " + std::string(uri) + " failed: " + result_code_meaning(code) +
                        " (LDAP result " + std::to_string(code) + ")";
  if (!diagnostic.empty()) message += "; the server said: " + escape_control(diagnostic);
  Error e;
  e.code = c != nullptr ? c->error : ErrorCode::kInternal;
  e.severity = c != nullptr ? c->severity : Severity::kPermanent;
  e.message = std::move(message);
  e.remedy = c != nullptr ? c->remedy : "";
  return e;
}

}  // namespace bridgehead::directory::ldap
