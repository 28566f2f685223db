#include "dsn/dsn.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

namespace bridgehead::dsn {
namespace {

using nlohmann::json;

constexpr std::int64_t kNow = 1764000000;  // Mon, 24 Nov 2025 16:00:00 +0000
constexpr const char* kPython = "/usr/bin/python3";

const std::string kOriginal =
    "From: Alice <alice@example.com>\r\n"
    "To: bob@example.net, carol@example.net, dave@example.net\r\n"
    "Subject: Quarterly numbers\r\n"
    "Message-ID: <q3@example.com>\r\n"
    "Date: Mon, 24 Nov 2025 15:00:00 +0000\r\n"
    "\r\n"
    "Hello all,\r\n"
    "the numbers are attached.\r\n";

// Writes the DSN to a file and runs the independent parser (Python's email package) on it.
json parse_with_python(const std::string& dsn) {
  if (access(kPython, X_OK) != 0) {
    ADD_FAILURE() << kPython << " is missing: install the python3 package (scripts/install-deps)";
    return json::object();
  }
  const auto path =
      std::filesystem::temp_directory_path() / ("bridgehead-dsn-test-" + std::to_string(getpid()) + ".eml");
  {
    std::ofstream f(path, std::ios::binary);
    f << dsn;
  }
  const std::string cmd =
      std::string(kPython) + " " + BRIDGEHEAD_SOURCE_DIR + "/src/dsn/testdata/parse_dsn.py " + path.string();
  std::string output;
  if (FILE* p = popen(cmd.c_str(), "r")) {
    std::array<char, 4096> buf{};
    std::size_t n = 0;
    while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) output.append(buf.data(), n);
    const int rc = pclose(p);
    EXPECT_EQ(rc, 0) << "parse_dsn.py failed: " << output;
  } else {
    ADD_FAILURE() << "cannot run " << cmd;
  }
  std::filesystem::remove(path);
  json j = json::parse(output, nullptr, /*allow_exceptions=*/false);
  EXPECT_FALSE(j.is_discarded()) << "parse_dsn.py printed no JSON: " << output;
  if (j.is_discarded()) return json::object();
  // Every DSN must be structurally clean whatever the scenario.
  EXPECT_TRUE(j["defects"].empty()) << j["defects"].dump();
  EXPECT_FALSE(j.contains("error")) << j.dump();
  EXPECT_LE(j["max_line"].get<int>(), 998);
  EXPECT_FALSE(j["bare_lf"].get<bool>());
  EXPECT_FALSE(j["header_8bit"].get<bool>());
  EXPECT_EQ(j["part_types"], json({"text/plain", "message/delivery-status", j["third_type"]}));
  return j;
}

Envelope three_recipients() {
  Envelope e;
  e.mail_from = "alice@example.com";
  e.recipients = {{"bob@example.net", kNotifyNone, ""},
                  {"carol@example.net", kNotifyNone, ""},
                  {"dave@example.net", kNotifyNone, ""}};
  e.received_at = kNow - 3600;
  return e;
}

Report report_from(const Envelope& e) {
  Report r;
  r.reporting_mta = "bridge.example.com";
  r.envid = e.envid;
  r.arrival_date = e.received_at;
  r.original_sender = e.mail_from;
  r.ret = e.ret;
  return r;
}

TEST(NeedsDsn, NullSenderNeverGetsOne) {
  Envelope e = three_recipients();
  e.mail_from.clear();
  for (std::uint8_t notify : std::array<std::uint8_t, 5>{0, 1, 2, 4, 7}) {
    Recipient r{"bob@example.net", notify, ""};
    for (Action a : {Action::kFailed, Action::kDelayed, Action::kDelivered, Action::kRelayed, Action::kExpanded}) {
      EXPECT_FALSE(needs_dsn(e, r, a)) << int(notify) << " " << to_string(a);
    }
  }
}

TEST(NeedsDsn, EveryNotifyCombination) {
  const Envelope e = three_recipients();
  struct Row {
    std::uint8_t notify;
    bool failed, delayed, success;
  };
  const Row rows[] = {
      {kNotifyNone, true, true, false},  // absent NOTIFY = FAILURE,DELAY
      {kNotifyNever, false, false, false},
      {kNotifySuccess, false, false, true},
      {kNotifyFailure, true, false, false},
      {kNotifyDelay, false, true, false},
      {kNotifySuccess | kNotifyFailure, true, false, true},
      {kNotifySuccess | kNotifyDelay, false, true, true},
      {kNotifyFailure | kNotifyDelay, true, true, false},
      {kNotifySuccess | kNotifyFailure | kNotifyDelay, true, true, true},
      // NEVER with anything else is a syntax error upstream; if it slips through, NEVER wins.
      {kNotifyNever | kNotifyFailure, false, false, false},
  };
  for (const Row& row : rows) {
    Recipient r{"bob@example.net", row.notify, ""};
    SCOPED_TRACE(int(row.notify));
    EXPECT_EQ(needs_dsn(e, r, Action::kFailed), row.failed);
    EXPECT_EQ(needs_dsn(e, r, Action::kDelayed), row.delayed);
    EXPECT_EQ(needs_dsn(e, r, Action::kDelivered), row.success);
    EXPECT_EQ(needs_dsn(e, r, Action::kRelayed), row.success);
    EXPECT_EQ(needs_dsn(e, r, Action::kExpanded), row.success);
  }
}

TEST(Compose, FailureOfOneOfThreeListsOnlyThatOne) {
  const Envelope e = three_recipients();
  const Action outcomes[] = {Action::kDelivered, Action::kFailed, Action::kDelivered};
  Report report = report_from(e);
  for (std::size_t i = 0; i < e.recipients.size(); ++i) {
    if (!needs_dsn(e, e.recipients[i], outcomes[i])) continue;
    RecipientReport r = report_for(e.recipients[i], outcomes[i], "5.1.1");
    r.remote_mta = "dns; mx.example.net";
    r.diagnostic = "smtp; 550 5.1.1 <carol@example.net>: user unknown";
    r.last_attempt = kNow - 60;
    report.recipients.push_back(r);
  }
  ASSERT_EQ(report.recipients.size(), 1u);

  const json j = parse_with_python(compose(report, kOriginal, kNow));
  const json& h = j["headers"];
  EXPECT_EQ(h["From"], "Mail Delivery System <MAILER-DAEMON@bridge.example.com>");
  EXPECT_EQ(h["To"], "alice@example.com");
  EXPECT_EQ(h["Subject"], "Undelivered Mail Returned to Sender");
  EXPECT_EQ(h["Auto-Submitted"], "auto-replied");
  EXPECT_EQ(h["MIME-Version"], "1.0");
  EXPECT_EQ(h["Date"], "Mon, 24 Nov 2025 16:00:00 +0000");
  EXPECT_NE(h["Message-ID"].get<std::string>().find("@bridge.example.com>"), std::string::npos);
  EXPECT_EQ(j["content_type"], "multipart/report");
  EXPECT_EQ(j["report_type"], "delivery-status");

  EXPECT_EQ(j["per_message"]["Reporting-MTA"], "dns; bridge.example.com");
  EXPECT_EQ(j["per_message"]["Arrival-Date"], "Mon, 24 Nov 2025 15:00:00 +0000");
  EXPECT_FALSE(j["per_message"].contains("Original-Envelope-Id"));

  ASSERT_EQ(j["recipients"].size(), 1u);
  const json& r = j["recipients"][0];
  EXPECT_EQ(r["Final-Recipient"], "rfc822; carol@example.net");
  EXPECT_EQ(r["Action"], "failed");
  EXPECT_EQ(r["Status"], "5.1.1");
  EXPECT_EQ(r["Remote-MTA"], "dns; mx.example.net");
  EXPECT_EQ(r["Diagnostic-Code"], "smtp; 550 5.1.1 <carol@example.net>: user unknown");
  EXPECT_EQ(r["Last-Attempt-Date"], "Mon, 24 Nov 2025 15:59:00 +0000");
  EXPECT_FALSE(r.contains("Original-Recipient"));
  EXPECT_FALSE(r.contains("Will-Retry-Until"));

  const std::string text = j["human_text"];
  EXPECT_NE(text.find("<carol@example.net>"), std::string::npos) << text;
  EXPECT_NE(text.find("550 5.1.1"), std::string::npos) << text;
  EXPECT_NE(text.find("What you can do"), std::string::npos) << text;
  EXPECT_EQ(text.find("bob@example.net>:"), std::string::npos) << text;

  // No RET and a small message: returned whole.
  EXPECT_EQ(j["third_type"], "message/rfc822");
  EXPECT_EQ(j["returned_subject"], "Quarterly numbers");
  EXPECT_NE(j["returned_body"].get<std::string>().find("the numbers are attached."), std::string::npos);
}

TEST(Compose, DelayCarriesWillRetryUntilAndHeadersOnly) {
  Envelope e = three_recipients();
  e.ret = DsnRet::kFull;  // RET governs failure reports only (RFC 3461 4.3)
  Report report = report_from(e);
  RecipientReport r = report_for(e.recipients[0], Action::kDelayed, "4.4.1");
  r.remote_mta = "mx.example.net";             // bare host: "dns; " is added
  r.diagnostic = "421 4.4.1 try again later";  // bare text: "smtp; " is added
  r.last_attempt = kNow - 30;
  r.will_retry_until = kNow + 5 * 86400;
  report.recipients.push_back(r);
  ASSERT_TRUE(needs_dsn(e, e.recipients[0], Action::kDelayed));

  const json j = parse_with_python(compose(report, kOriginal, kNow));
  EXPECT_EQ(j["headers"]["Subject"], "Delayed Mail (still being retried)");
  ASSERT_EQ(j["recipients"].size(), 1u);
  const json& g = j["recipients"][0];
  EXPECT_EQ(g["Action"], "delayed");
  EXPECT_EQ(g["Status"], "4.4.1");
  EXPECT_EQ(g["Remote-MTA"], "dns; mx.example.net");
  EXPECT_EQ(g["Diagnostic-Code"], "smtp; 421 4.4.1 try again later");
  EXPECT_EQ(g["Will-Retry-Until"], "Sat, 29 Nov 2025 16:00:00 +0000");
  EXPECT_EQ(j["third_type"], "text/rfc822-headers");
  EXPECT_NE(j["returned_text"].get<std::string>().find("Subject: Quarterly numbers"), std::string::npos);
  EXPECT_EQ(j["returned_text"].get<std::string>().find("the numbers are attached"), std::string::npos);
  EXPECT_NE(j["human_text"].get<std::string>().find("do not need to send it again"), std::string::npos);
}

TEST(Compose, SuccessWhenAskedFor) {
  Envelope e = three_recipients();
  e.recipients[0].notify = kNotifySuccess;
  ASSERT_TRUE(needs_dsn(e, e.recipients[0], Action::kDelivered));
  ASSERT_FALSE(needs_dsn(e, e.recipients[1], Action::kDelivered));
  Report report = report_from(e);
  report.recipients.push_back(report_for(e.recipients[0], Action::kDelivered, "2.0.0"));
  report.recipients.push_back(report_for(e.recipients[0], Action::kRelayed, "bogus"));

  const json j = parse_with_python(compose(report, kOriginal, kNow));
  EXPECT_EQ(j["headers"]["Subject"], "Successful Mail Delivery Report");
  ASSERT_EQ(j["recipients"].size(), 2u);
  EXPECT_EQ(j["recipients"][0]["Action"], "delivered");
  EXPECT_EQ(j["recipients"][0]["Status"], "2.0.0");
  EXPECT_EQ(j["recipients"][1]["Action"], "relayed");
  EXPECT_EQ(j["recipients"][1]["Status"], "2.0.0");  // malformed status replaced by class default
  EXPECT_EQ(j["third_type"], "text/rfc822-headers");
}

TEST(Compose, RetHeadersVersusFull) {
  Envelope e = three_recipients();
  auto third_type = [&](DsnRet ret, const std::string& original) {
    e.ret = ret;
    Report report = report_from(e);
    report.recipients.push_back(report_for(e.recipients[0], Action::kFailed, "5.1.1"));
    return parse_with_python(compose(report, original, kNow))["third_type"].get<std::string>();
  };
  EXPECT_EQ(third_type(DsnRet::kHeaders, kOriginal), "text/rfc822-headers");
  EXPECT_EQ(third_type(DsnRet::kFull, kOriginal), "message/rfc822");
  EXPECT_EQ(third_type(DsnRet::kUnspecified, kOriginal), "message/rfc822");

  std::string big = kOriginal;
  while (big.size() <= kFullReturnLimit) big += std::string(70, 'x') + "\r\n";
  EXPECT_EQ(third_type(DsnRet::kUnspecified, big), "text/rfc822-headers");
  EXPECT_EQ(third_type(DsnRet::kFull, big), "message/rfc822");

  // A line over 998 octets cannot travel in message/rfc822: fall back to the headers.
  EXPECT_EQ(third_type(DsnRet::kFull, kOriginal + std::string(2000, 'y') + "\r\n"), "text/rfc822-headers");
}

TEST(Compose, EnvidAndOrcpt) {
  Envelope e = three_recipients();
  e.envid = "QQ314159";
  e.recipients[1].orcpt = "rfc822;Carol.Original@example.org";
  Report report = report_from(e);
  report.recipients.push_back(report_for(e.recipients[1], Action::kFailed, "5.2.2"));
  report.recipients.back().diagnostic = "smtp; 552 5.2.2 mailbox full";

  const json j = parse_with_python(compose(report, kOriginal, kNow));
  EXPECT_EQ(j["per_message"]["Original-Envelope-Id"], "QQ314159");
  ASSERT_EQ(j["recipients"].size(), 1u);
  EXPECT_EQ(j["recipients"][0]["Original-Recipient"], "rfc822; Carol.Original@example.org");
  EXPECT_EQ(j["recipients"][0]["Final-Recipient"], "rfc822; carol@example.net");
  EXPECT_EQ(j["recipients"][0]["Status"], "5.2.2");
}

TEST(Compose, Utf8AddressesStaySevenBitInTheReport) {
  Envelope e = three_recipients();
  e.mail_from = "j\xC3\xB6rg@example.de";                           // jörg: the To header cannot carry it in 7 bits
  e.recipients[0].address = "\xE5\xBC\xA0\xE4\xB8\x89@example.cn";  // 张三
  e.recipients[0].orcpt = "utf-8;\xE5\xBC\xA0\xE4\xB8\x89@example.cn";
  Report report = report_from(e);
  report.recipients.push_back(report_for(e.recipients[0], Action::kFailed, "5.1.1"));

  const json j = parse_with_python(compose(report, kOriginal, kNow));
  EXPECT_EQ(j["recipients"][0]["Final-Recipient"], "utf-8; \\x{5F20}\\x{4E09}@example.cn");
  EXPECT_EQ(j["recipients"][0]["Original-Recipient"], "utf-8; \\x{5F20}\\x{4E09}@example.cn");
  EXPECT_EQ(j["headers"]["To"], "undisclosed-recipients:;");
  // The human-readable part shows the address as written (quoted-printable UTF-8).
  EXPECT_NE(j["human_text"].get<std::string>().find("\xE5\xBC\xA0\xE4\xB8\x89@example.cn"), std::string::npos);
}

TEST(Compose, EightBitOriginalIsReturnedLabelled8bit) {
  Envelope e = three_recipients();
  e.ret = DsnRet::kFull;
  Report report = report_from(e);
  report.recipients.push_back(report_for(e.recipients[0], Action::kFailed, "5.1.1"));
  const std::string original =
      "Subject: caf\xC3\xA9\r\nContent-Type: text/plain; charset=utf-8\r\n"
      "Content-Transfer-Encoding: 8bit\r\n\r\nd\xC3\xA9j\xC3\xA0 vu\r\n";
  const std::string dsn = compose(report, original, kNow);
  EXPECT_NE(dsn.find("Content-Type: message/rfc822\r\nContent-Transfer-Encoding: 8bit\r\n"), std::string::npos);
  const json j = parse_with_python(dsn);
  EXPECT_EQ(j["third_type"], "message/rfc822");
}

TEST(Compose, HostileInputStaysWellFormed) {
  Envelope e = three_recipients();
  Report report = report_from(e);
  report.reporting_mta = "bridge.example.com\r\nBcc: victim@example.org";
  RecipientReport r = report_for(e.recipients[0], Action::kFailed, "5.0.0");
  r.diagnostic = "smtp; 550-first line\r\n550 second line " + std::string(3000, 'z') + " end\x01\xff";
  report.recipients.push_back(r);
  // Bare LF line ends, a line over 998 octets and a boundary-looking line in the original.
  const std::string original = "Subject: odd\nX-Long: " + std::string(1500, 'h') + "\n\n--=_bh_dsn_x\nbody\n";

  const std::string dsn = compose(report, original, kNow);
  const json j = parse_with_python(dsn);
  EXPECT_EQ(dsn.find("\r\nBcc:"), std::string::npos);
  ASSERT_EQ(j["recipients"].size(), 1u);
  const std::string diag = j["recipients"][0]["Diagnostic-Code"];
  EXPECT_EQ(diag.rfind("smtp; 550-first line 550 second line zzz", 0), 0u) << diag;
  EXPECT_NE(diag.find(" end??"), std::string::npos) << diag;
  EXPECT_EQ(j["third_type"], "text/rfc822-headers");
}

}  // namespace
}  // namespace bridgehead::dsn
