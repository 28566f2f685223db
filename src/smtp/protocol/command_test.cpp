#include "smtp/protocol/command.hpp"

#include <gtest/gtest.h>

namespace bridgehead::smtp {
namespace {

Command ok(std::string_view line) {
  auto c = parse_command(line);
  EXPECT_TRUE(c) << line << " -> " << (c ? "" : c.error().render());
  return c ? *c : Command{};
}

void expect_reject(std::string_view line, int code, const std::string& enhanced) {
  auto c = parse_command(line);
  ASSERT_FALSE(c) << "accepted: " << line;
  EXPECT_EQ(c.error().code, code) << line << " -> " << c.error().render();
  EXPECT_EQ(c.error().enhanced, enhanced) << line << " -> " << c.error().render();
}

TEST(ParseCommand, VerbsAreCaseInsensitive) {
  EXPECT_EQ(ok("ehlo client.example").verb, Verb::kEhlo);
  EXPECT_EQ(ok("HeLo client.example").verb, Verb::kHelo);
  EXPECT_EQ(ok("mail from:<a@b.example>").verb, Verb::kMail);
  EXPECT_EQ(ok("Rcpt To:<a@b.example>").verb, Verb::kRcpt);
  EXPECT_EQ(ok("data").verb, Verb::kData);
  EXPECT_EQ(ok("rset").verb, Verb::kRset);
  EXPECT_EQ(ok("NoOp").verb, Verb::kNoop);
  EXPECT_EQ(ok("quit").verb, Verb::kQuit);
  EXPECT_EQ(ok("starttls").verb, Verb::kStarttls);
  EXPECT_EQ(ok("help").verb, Verb::kHelp);
  EXPECT_EQ(ok("EXPN list").verb, Verb::kExpn);
  EXPECT_EQ(ok("AUTH PLAIN").verb, Verb::kAuth);
}

TEST(ParseCommand, UnknownVerbKeepsTheRawVerb) {
  auto c = ok("XYZZY magic words");
  EXPECT_EQ(c.verb, Verb::kUnknown);
  EXPECT_EQ(c.argument, "XYZZY");
  EXPECT_EQ(ok("DATAX").verb, Verb::kUnknown);
}

TEST(ParseCommand, EmptyLineIsSyntaxError) {
  expect_reject("", 500, "5.5.2");
  expect_reject("   ", 500, "5.5.2");
}

TEST(ParseCommand, ControlCharactersAnywhereAreRejected) {
  for (std::string line :
       {std::string("MAIL FROM:<a@b.example>\r"), std::string("MAIL FROM:<a\r@b.example>"),
        std::string("RCPT TO:<a@b.example\n>"),
        std::string("RCPT TO:<a@b.example> NOTIFY=\rSUCCESS"), std::string("EHLO a\nb"),
        std::string("NOOP \x01"), std::string("DA\tTA"), std::string("NOOP x\x7f"),
        std::string("HELO x\0y", 8),
        std::string("RCPT TO:<a@b.example>\r\nRCPT TO:<c@d.example>")}) {
    expect_reject(line, 500, "5.5.2");
  }
}

TEST(ParseCommand, EhloHeloNeedADomainOrAddressLiteral) {
  EXPECT_EQ(ok("EHLO mx.exchange.example").argument, "mx.exchange.example");
  EXPECT_EQ(ok("HELO [192.0.2.1]").argument, "[192.0.2.1]");
  EXPECT_EQ(ok("EHLO [IPv6:2001:db8::1]").argument, "[IPv6:2001:db8::1]");
  EXPECT_EQ(ok("EHLO my_pc").argument, "my_pc");  // Windows host names
  expect_reject("EHLO", 501, "5.5.4");
  expect_reject("HELO", 501, "5.5.4");
  expect_reject("EHLO two words", 501, "5.5.4");
  expect_reject("EHLO [300.1.1.1]", 501, "5.5.4");
  expect_reject("EHLO -bad.example", 501, "5.5.4");
  expect_reject("EHLO a..b", 501, "5.5.4");
  expect_reject("EHLO b\xc3\xa4r.example", 501, "5.5.4");
}

TEST(ParseCommand, CommandsWithoutArgumentsRefuseOne) {
  for (auto line : {"DATA x", "RSET now", "QUIT please", "STARTTLS x"}) {
    expect_reject(line, 501, "5.5.4");
  }
  EXPECT_EQ(ok("QUIT ").verb, Verb::kQuit);  // trailing blanks are not an argument
}

TEST(ParseCommand, NoopHelpVrfyMayHaveAnArgument) {
  EXPECT_EQ(ok("NOOP whatever").argument, "whatever");
  EXPECT_EQ(ok("HELP MAIL").argument, "MAIL");
  EXPECT_EQ(ok("VRFY postmaster").argument, "postmaster");
  EXPECT_EQ(ok("NOOP").verb, Verb::kNoop);
  expect_reject("VRFY", 501, "5.5.4");
}

TEST(ParseCommand, MailFrom) {
  auto c = ok("MAIL FROM:<alice@exchange.example>");
  EXPECT_EQ(c.path, "alice@exchange.example");
  EXPECT_FALSE(c.mail.size);
  EXPECT_EQ(c.mail.body, BodyType::kUnspecified);
}

TEST(ParseCommand, NullReversePathOnlyForMail) {
  auto c = ok("MAIL FROM:<>");
  EXPECT_EQ(c.verb, Verb::kMail);
  EXPECT_EQ(c.path, "");
  expect_reject("RCPT TO:<>", 553, "5.1.3");
}

TEST(ParseCommand, OneSpaceAfterColonToleratedNothingElse) {
  EXPECT_EQ(ok("MAIL FROM: <a@b.example>").path, "a@b.example");
  EXPECT_EQ(ok("RCPT TO: <a@b.example>").path, "a@b.example");
  expect_reject("MAIL FROM:  <a@b.example>", 501, "5.5.4");
  expect_reject("MAIL FROM :<a@b.example>", 501, "5.5.4");
  expect_reject("MAIL  FROM:<a@b.example>", 501, "5.5.4");
  expect_reject("MAIL FROM:a@b.example", 501, "5.5.4");
  expect_reject("MAIL FROM:<a@b.example", 501, "5.5.4");
  expect_reject("MAIL FROM:<a@b.example>SIZE=1", 501, "5.5.4");
  expect_reject("MAIL TO:<a@b.example>", 501, "5.5.4");
  expect_reject("RCPT FROM:<a@b.example>", 501, "5.5.4");
  expect_reject("MAIL", 501, "5.5.4");
}

TEST(ParseCommand, SourceRoutesAreStripped) {
  EXPECT_EQ(ok("RCPT TO:<@relay1.example,@relay2.example:user@d.example>").path, "user@d.example");
  EXPECT_EQ(ok("MAIL FROM:<@relay.example:user@d.example>").path, "user@d.example");
  expect_reject("RCPT TO:<@relay1.example,:user@d.example>", 553, "5.1.3");
  expect_reject("RCPT TO:<@:user@d.example>", 553, "5.1.3");
  expect_reject("RCPT TO:<@relay.example:>", 553, "5.1.3");
}

TEST(ParseCommand, PostmasterWithoutDomainIsARecipient) {
  EXPECT_EQ(ok("RCPT TO:<Postmaster>").path, "Postmaster");
  expect_reject("MAIL FROM:<postmaster>", 553, "5.1.3");
  expect_reject("RCPT TO:<someone>", 553, "5.1.3");
}

TEST(ParseCommand, AddressSyntax) {
  EXPECT_EQ(ok("RCPT TO:<\"john smith\"@d.example>").path, "\"john smith\"@d.example");
  EXPECT_EQ(ok("RCPT TO:<\"a>b\"@d.example>").path, "\"a>b\"@d.example");
  EXPECT_EQ(ok("RCPT TO:<user@[192.0.2.7]>").path, "user@[192.0.2.7]");
  EXPECT_EQ(ok("RCPT TO:<first.last+tag@d.example>").path, "first.last+tag@d.example");
  expect_reject("RCPT TO:<a..b@d.example>", 553, "5.1.3");
  expect_reject("RCPT TO:<.a@d.example>", 553, "5.1.3");
  expect_reject("RCPT TO:<a@d..example>", 553, "5.1.3");
  expect_reject("RCPT TO:<a b@d.example>", 553, "5.1.3");
  expect_reject("RCPT TO:<a@>", 553, "5.1.3");
  expect_reject("RCPT TO:<@d.example>", 553, "5.1.3");
  expect_reject("MAIL FROM:<a@b@c.example>", 553, "5.1.3");
}

TEST(ParseCommand, LengthLimits) {
  const std::string local64(64, 'a');
  EXPECT_EQ(ok("RCPT TO:<" + local64 + "@d.example>").path, local64 + "@d.example");
  expect_reject("RCPT TO:<" + local64 + "a@d.example>", 553, "5.1.3");
  // 254 octets of path + "<>" = 256 is the maximum.
  std::string domain =
      std::string(63, 'b') + "." + std::string(63, 'c') + "." + std::string(63, 'd') + ".";
  domain += std::string(254 - 2 - domain.size(), 'e');
  const std::string path254 = "a@" + domain;
  ASSERT_EQ(path254.size(), 254u);
  EXPECT_EQ(ok("RCPT TO:<" + path254 + ">").path, path254);
  expect_reject("RCPT TO:<a" + path254 + ">", 553, "5.1.3");
  expect_reject("MAIL FROM:<" + std::string(300, 'x') + "@d.example>", 553, "5.1.3");
}

TEST(ParseCommand, Utf8AddressesNeedSmtputf8OnMail) {
  const std::string utf8 = "j\xc3\xb8rn@b\xc3\xa4r.example";
  EXPECT_EQ(ok("MAIL FROM:<" + utf8 + "> SMTPUTF8").path, utf8);
  expect_reject("MAIL FROM:<" + utf8 + ">", 553, "5.6.7");
  // RCPT: syntax only; the session checks it against the transaction.
  EXPECT_EQ(ok("RCPT TO:<" + utf8 + ">").path, utf8);
  expect_reject("RCPT TO:<j\xc3@d.example>", 553, "5.1.3");          // truncated sequence
  expect_reject("RCPT TO:<j\xc0\xaf@d.example>", 553, "5.1.3");      // overlong
  expect_reject("RCPT TO:<j\xed\xa0\x80@d.example>", 553, "5.1.3");  // surrogate
}

TEST(ParseCommand, MailParameters) {
  auto c = ok("MAIL FROM:<a@b.example> SIZE=12345 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=QQ314159");
  ASSERT_TRUE(c.mail.size);
  EXPECT_EQ(*c.mail.size, 12345u);
  EXPECT_EQ(c.mail.body, BodyType::k8BitMime);
  EXPECT_TRUE(c.mail.smtputf8);
  EXPECT_EQ(c.mail.ret, DsnRet::kHeaders);
  EXPECT_EQ(c.mail.envid, "QQ314159");
  auto d = ok("mail from:<a@b.example> size=1 body=7bit ret=full envid=A+2BB");
  EXPECT_EQ(d.mail.body, BodyType::k7Bit);
  EXPECT_EQ(d.mail.ret, DsnRet::kFull);
  EXPECT_EQ(d.mail.envid, "A+B");
  EXPECT_EQ(*ok("MAIL FROM:<> SIZE=99999999999999999999999999").mail.size, UINT64_MAX);
}

TEST(ParseCommand, BadMailParameters) {
  for (auto line : {"MAIL FROM:<a@b.example> SIZE=",
                    "MAIL FROM:<a@b.example> SIZE=12k",
                    "MAIL FROM:<a@b.example> SIZE",
                    "MAIL FROM:<a@b.example> BODY=BINARYMIME",
                    "MAIL FROM:<a@b.example> BODY=9BIT",
                    "MAIL FROM:<a@b.example> SMTPUTF8=yes",
                    "MAIL FROM:<a@b.example> RET=ALL",
                    "MAIL FROM:<a@b.example> ENVID=a+2",
                    "MAIL FROM:<a@b.example> ENVID=a+2b",
                    "MAIL FROM:<a@b.example> ENVID=+0D+0A",
                    "MAIL FROM:<a@b.example> ENVID=",
                    "MAIL FROM:<a@b.example> SIZE=1 SIZE=2",
                    "MAIL FROM:<a@b.example> BODY=7BIT body=8BITMIME",
                    "MAIL FROM:<a@b.example> SMTPUTF8 SMTPUTF8",
                    "MAIL FROM:<a@b.example> RET=FULL RET=FULL",
                    "MAIL FROM:<a@b.example> ENVID=x ENVID=y",
                    "MAIL FROM:<a@b.example> AUTH=<>",
                    "MAIL FROM:<a@b.example> NOTIFY=NEVER",
                    "MAIL FROM:<a@b.example> X-FOO",
                    "MAIL FROM:<a@b.example> SIZE=1=2"}) {
    expect_reject(line, 555, "5.5.4");
  }
  expect_reject("MAIL FROM:<a@b.example> ENVID=" + std::string(101, 'x'), 555, "5.5.4");
}

TEST(ParseCommand, RcptParameters) {
  auto c = ok("RCPT TO:<b@d.example> NOTIFY=SUCCESS,FAILURE,DELAY ORCPT=RFC822;b+2Bx@d.example");
  EXPECT_EQ(c.rcpt.notify, kNotifySuccess | kNotifyFailure | kNotifyDelay);
  EXPECT_EQ(c.rcpt.orcpt, "rfc822;b+x@d.example");
  EXPECT_EQ(ok("RCPT TO:<b@d.example> notify=never").rcpt.notify, kNotifyNever);
  EXPECT_EQ(ok("RCPT TO:<b@d.example> NOTIFY=failure").rcpt.notify, kNotifyFailure);
  EXPECT_EQ(ok("RCPT TO:<b@d.example>").rcpt.notify, kNotifyNone);
}

TEST(ParseCommand, BadRcptParameters) {
  for (auto line :
       {"RCPT TO:<b@d.example> NOTIFY=NEVER,SUCCESS", "RCPT TO:<b@d.example> NOTIFY=FAILURE,NEVER",
        "RCPT TO:<b@d.example> NOTIFY=", "RCPT TO:<b@d.example> NOTIFY=SUCCESS,",
        "RCPT TO:<b@d.example> NOTIFY=SOMETIMES", "RCPT TO:<b@d.example> NOTIFY=DELAY NOTIFY=DELAY",
        "RCPT TO:<b@d.example> ORCPT=rfc822", "RCPT TO:<b@d.example> ORCPT=;b@d.example",
        "RCPT TO:<b@d.example> ORCPT=rfc822;", "RCPT TO:<b@d.example> ORCPT=rfc822;a+0Ab",
        "RCPT TO:<b@d.example> ORCPT=rfc822;a ORCPT=rfc822;b", "RCPT TO:<b@d.example> SIZE=10",
        "RCPT TO:<b@d.example> SMTPUTF8", "RCPT TO:<b@d.example> BODY=8BITMIME",
        "RCPT TO:<b@d.example> ORCPT=rfc822;b\xc3\xa4"}) {
    expect_reject(line, 555, "5.5.4");
  }
}

TEST(ParseCommand, Bdat) {
  auto c = ok("BDAT 1024");
  EXPECT_EQ(c.verb, Verb::kBdat);
  EXPECT_EQ(c.bdat_size, 1024u);
  EXPECT_FALSE(c.bdat_last);
  auto l = ok("bdat 0 last");
  EXPECT_EQ(l.bdat_size, 0u);
  EXPECT_TRUE(l.bdat_last);
  for (auto line : {"BDAT", "BDAT x", "BDAT -1", "BDAT 10 FIRST", "BDAT 10 LAST more",
                    "BDAT 99999999999999999999999"}) {
    expect_reject(line, 501, "5.5.4");
  }
}

TEST(Xtext, Decodes) {
  EXPECT_EQ(xtext_decode("abc"), "abc");
  EXPECT_EQ(xtext_decode("a+2Bb+3Dc"), "a+b=c");
  EXPECT_EQ(xtext_decode(""), "");
  EXPECT_FALSE(xtext_decode("a+"));
  EXPECT_FALSE(xtext_decode("a+4"));
  EXPECT_FALSE(xtext_decode("a+4g"));
  EXPECT_FALSE(xtext_decode("a+2b"));  // RFC 3461: upper-case hex only
  EXPECT_FALSE(xtext_decode("a=b"));
  EXPECT_FALSE(xtext_decode("a b"));
  EXPECT_FALSE(xtext_decode("a\xc3\xa4"));
}

TEST(Mailbox, Validity) {
  EXPECT_TRUE(is_valid_mailbox("user@example.com", false));
  EXPECT_TRUE(is_valid_mailbox("user@[IPv6:::1]", false));
  EXPECT_TRUE(is_valid_mailbox("\"a\\\"b\"@example.com", false));
  // An address literal with a NUL inside once passed as the IPv4 address before the NUL.
  EXPECT_FALSE(is_valid_mailbox(std::string_view("HELO@[192.0.2.2\0junk]", 21), false));
  EXPECT_FALSE(is_valid_mailbox("user@[192.0.2.2 x]", false));
  EXPECT_FALSE(is_valid_mailbox("user", false));
  EXPECT_FALSE(is_valid_mailbox("user@", false));
  EXPECT_FALSE(is_valid_mailbox("user@-x.example", false));
  EXPECT_FALSE(is_valid_mailbox("user@x-.example", false));
  EXPECT_FALSE(is_valid_mailbox("user@[1.2.3]", false));
  EXPECT_FALSE(is_valid_mailbox("us\ner@example.com", true));
  EXPECT_FALSE(is_valid_mailbox("user@exam\rple.com", true));
  EXPECT_FALSE(is_valid_mailbox(std::string_view("user@exa\0mple.com", 17), true));
  EXPECT_FALSE(is_valid_mailbox("\"us\rer\"@example.com", true));
  EXPECT_FALSE(is_valid_mailbox("j\xc3\xb8rn@example.com", false));
  EXPECT_TRUE(is_valid_mailbox("j\xc3\xb8rn@example.com", true));
  EXPECT_TRUE(is_valid_mailbox("user@b\xc3\xa4r.example", true));
  EXPECT_FALSE(is_valid_mailbox("user@" + std::string(64, 'a') + ".example", false));
}

TEST(Reply, RendersSingleAndMultiLine) {
  EXPECT_EQ((Reply{250, "2.1.5", "Ok"}).render(), "250 2.1.5 Ok\r\n");
  EXPECT_EQ((Reply{354, "", "Go ahead"}).render(), "354 Go ahead\r\n");
  EXPECT_EQ((Reply{250, "", "host\nPIPELINING\nSIZE 10"}).render(),
            "250-host\r\n250-PIPELINING\r\n250 SIZE 10\r\n");
  EXPECT_EQ((Reply{550, "5.1.1", "a\nb"}).render(), "550-5.1.1 a\r\n550 5.1.1 b\r\n");
  // A stray CR in the text cannot forge a second reply line.
  EXPECT_EQ((Reply{250, "2.0.0", "a\rb"}).render(), "250 2.0.0 a b\r\n");
  EXPECT_TRUE((Reply{354, "", ""}).positive());
  EXPECT_TRUE((Reply{452, "4.5.3", ""}).transient_failure());
  EXPECT_TRUE((Reply{554, "5.5.1", ""}).permanent_failure());
}

}  // namespace
}  // namespace bridgehead::smtp
