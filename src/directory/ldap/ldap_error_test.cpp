#include "directory/ldap/ldap_error.hpp"

#include <gtest/gtest.h>

namespace bridgehead::directory::ldap {
namespace {

// Result codes by their RFC 4511 numbers; the negative ones are libldap's (ldap.h).
constexpr int kSizeLimitExceeded = 4;
constexpr int kNoSuchObject = 32;
constexpr int kInvalidCredentials = 49;
constexpr int kInsufficientAccess = 50;
constexpr int kBusy = 51;
constexpr int kAlreadyExists = 68;
constexpr int kServerDown = -1;
constexpr int kFilterError = -7;

TEST(LdapError, InvalidCredentialsIsAWrongPasswordWithTheRemedy) {
  Error e = result_error(kInvalidCredentials, "bind as cn=svc,o=Acme", "ldap://127.0.0.1:389", "");
  EXPECT_EQ(e.code, ErrorCode::kWrongPassword);
  EXPECT_FALSE(e.transient());
  EXPECT_EQ(e.message, "bind as cn=svc,o=Acme to ldap://127.0.0.1:389 failed: invalid credentials (LDAP result 49)");
  EXPECT_NE(e.remedy.find("bind password file"), std::string::npos);
}

TEST(LdapError, DiagnosticTextIsKeptAndEscaped) {
  Error e = result_error(kInsufficientAccess, "add of cn=x", "ldaps://dc1:636", "no write access\r\nforged");
  EXPECT_EQ(e.code, ErrorCode::kPermission);
  EXPECT_NE(e.message.find("the server said: no write access\\r\\nforged"), std::string::npos) << e.message;
  EXPECT_EQ(e.message.find('\n'), std::string::npos);
}

TEST(LdapError, CodesMapToErrorCodesAndSeverities) {
  EXPECT_EQ(result_error(kNoSuchObject, "search", "u", "").code, ErrorCode::kNotFound);
  EXPECT_EQ(result_error(kSizeLimitExceeded, "search", "u", "").code, ErrorCode::kLimit);
  EXPECT_NE(result_error(kSizeLimitExceeded, "search", "u", "").remedy.find("paged"), std::string::npos);
  EXPECT_EQ(result_error(kFilterError, "search", "u", "").code, ErrorCode::kParse);
  EXPECT_EQ(result_error(kAlreadyExists, "add", "u", "").code, ErrorCode::kInvalidArgument);
  EXPECT_TRUE(result_error(kBusy, "x", "u", "").transient());
  EXPECT_TRUE(result_error(kServerDown, "x", "u", "").transient());
  EXPECT_EQ(result_error(kServerDown, "x", "u", "").code, ErrorCode::kUnavailable);
  EXPECT_TRUE(is_transient_result(kServerDown));
  EXPECT_FALSE(is_transient_result(kInvalidCredentials));
}

TEST(LdapError, UnknownCodesAreNamedByNumber) {
  EXPECT_EQ(result_code_meaning(4242), "result code 4242");
  Error e = result_error(4242, "modify of cn=x", "ldap://h", "");
  EXPECT_EQ(e.code, ErrorCode::kInternal);
  EXPECT_NE(e.message.find("result code 4242"), std::string::npos);
  EXPECT_EQ(result_code_meaning(kAlreadyExists), "entry already exists");
}

}  // namespace
}  // namespace bridgehead::directory::ldap
