#include "directory/ldif.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <streambuf>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "temp_dir.hpp"

namespace bridgehead::directory {
namespace {

using test_support::TempDir;

std::string problems_of(const LdifDocument& doc) {
  std::string out;
  for (const LdifProblem& p : doc.problems) out += p.describe() + "\n";
  return out;
}

LdifDocument read_clean(std::string_view text, const LdifReaderOptions& options = {}) {
  LdifDocument doc = read_ldif(text, options);
  EXPECT_TRUE(doc.problems.empty()) << problems_of(doc);
  return doc;
}

TEST(LdifReader, ReadsContentRecordsWithVersionCommentsFoldingBase64AndOptions) {
  const std::string text =
      "version: 1\n"
      "# a comment\n"
      "#  that is folded\n"
      " over two lines\n"
      "dn: cn=Doe\\, John,ou=Sales,o=Acme\n"
      "objectClass: inetOrgPerson\n"
      "cn: Doe, John\n"
      "cn;lang-de: Johann\n"
      "description: a long line that is fol\n"
      " ded here\n"
      "# a comment inside a record\n"
      "sn:: RG/DqQ==\n"
      "userCertificate;binary:: AAEC\n"
      "mail:   jdoe@acme.example\n"
      "seeAlso:\n"
      "\n"
      "\n"
      "dn: o=Acme\r\n"
      "o: Acme \r\n";
  const LdifDocument doc = read_clean(text);
  ASSERT_EQ(doc.entries.size(), 2u);
  const Entry& e = doc.entries[0];
  EXPECT_EQ(e.dn(), "cn=Doe\\, John,ou=Sales,o=Acme");
  EXPECT_EQ(e.first("cn"), "Doe, John");
  EXPECT_EQ(e.first("cn;lang-de"), "Johann");
  EXPECT_EQ(e.first("description"), "a long line that is folded here");
  EXPECT_EQ(e.first("sn"), "Do\xC3\xA9");
  EXPECT_EQ(e.first("userCertificate;binary"), std::string("\0\1\2", 3));
  EXPECT_EQ(e.first("mail"), "jdoe@acme.example");
  ASSERT_TRUE(e.has("seeAlso"));
  EXPECT_EQ(e.first("seeAlso"), "");
  EXPECT_EQ(e.attributes().size(), 8u);
  EXPECT_EQ(doc.entries[1].dn(), "o=Acme");
  EXPECT_EQ(doc.entries[1].first("o"), "Acme ");  // a trailing space is part of a SAFE-STRING
  EXPECT_TRUE(doc.changes.empty());
}

TEST(LdifReader, ReadsEveryKindOfChangeRecord) {
  const std::string text =
      "version: 1\n"
      "dn: cn=New,o=Acme\n"
      "changetype: add\n"
      "objectClass: person\n"
      "cn: New\n"
      "sn: Person\n"
      "\n"
      "dn: cn=Old,o=Acme\n"
      "control: 1.2.840.113556.1.4.805 true\n"
      "changetype: delete\n"
      "\n"
      "dn: cn=John,o=Acme\n"
      "control: 1.2.3.4 false:: AAE=\n"
      "control: 1.2.3.5: plain\n"
      "changetype: modify\n"
      "add: mail\n"
      "mail: a@acme.example\n"
      "mail: b@acme.example\n"
      "-\n"
      "delete: telephoneNumber\n"
      "-\n"
      "replace: description;lang-de\n"
      "description;lang-de: neu\n"
      "-\n"
      "increment: uidNumber\n"
      "uidNumber: 5\n"
      "-\n"
      "\n"
      "dn: cn=John,o=Acme\n"
      "changetype: modrdn\n"
      "newrdn: cn=John Doe\n"
      "deleteoldrdn: 0\n"
      "newsuperior: ou=Sales,o=Acme\n"
      "\n"
      "dn: cn=Jane,o=Acme\n"
      "changetype: moddn\n"
      "newrdn:: Y249SmFuZSBE\n"
      "deleteoldrdn: 1\n";
  const LdifDocument doc = read_clean(text);
  ASSERT_EQ(doc.changes.size(), 5u);
  const Change& add = doc.changes[0];
  EXPECT_EQ(add.type, ChangeType::kAdd);
  EXPECT_EQ(add.dn, "cn=New,o=Acme");
  EXPECT_EQ(add.entry.dn(), "cn=New,o=Acme");
  EXPECT_EQ(add.entry.first("sn"), "Person");

  const Change& del = doc.changes[1];
  EXPECT_EQ(del.type, ChangeType::kDelete);
  ASSERT_EQ(del.controls.size(), 1u);
  EXPECT_EQ(del.controls[0].oid, "1.2.840.113556.1.4.805");
  EXPECT_TRUE(del.controls[0].critical);
  EXPECT_FALSE(del.controls[0].value);

  const Change& mod = doc.changes[2];
  EXPECT_EQ(mod.type, ChangeType::kModify);
  ASSERT_EQ(mod.controls.size(), 2u);
  EXPECT_FALSE(mod.controls[0].critical);
  EXPECT_EQ(mod.controls[0].value, std::string("\0\1", 2));
  EXPECT_EQ(mod.controls[1].value, "plain");
  ASSERT_EQ(mod.modifications.size(), 4u);
  EXPECT_EQ(mod.modifications[0].op, ModOp::kAdd);
  EXPECT_EQ(mod.modifications[0].values, (std::vector<std::string>{"a@acme.example", "b@acme.example"}));
  EXPECT_EQ(mod.modifications[1].op, ModOp::kDelete);
  EXPECT_EQ(mod.modifications[1].attribute, "telephoneNumber");
  EXPECT_TRUE(mod.modifications[1].values.empty());
  EXPECT_EQ(mod.modifications[2].op, ModOp::kReplace);
  EXPECT_EQ(mod.modifications[2].attribute, "description;lang-de");
  EXPECT_EQ(mod.modifications[3].op, ModOp::kIncrement);
  EXPECT_EQ(mod.modifications[3].values, (std::vector<std::string>{"5"}));

  const Change& rdn = doc.changes[3];
  EXPECT_EQ(rdn.type, ChangeType::kModDn);
  EXPECT_EQ(rdn.new_rdn, "cn=John Doe");
  EXPECT_FALSE(rdn.delete_old_rdn);
  EXPECT_EQ(rdn.new_superior, "ou=Sales,o=Acme");
  const Change& moddn = doc.changes[4];
  EXPECT_EQ(moddn.new_rdn, "cn=Jane D");
  EXPECT_TRUE(moddn.delete_old_rdn);
  EXPECT_FALSE(moddn.new_superior);
}

struct BadLdif {
  std::string text;
  std::size_t line;
  std::size_t column;
  std::string says;
};

// Each bad record is followed by a good one, which must still be read: a bad record costs
// only itself.
void expect_problem(const BadLdif& c, const LdifReaderOptions& options = {}) {
  const LdifDocument doc = read_ldif(c.text + "\n\ndn: o=Good\no: Good\n", options);
  ASSERT_EQ(doc.problems.size(), 1u) << c.text << "\n" << problems_of(doc);
  const LdifProblem& p = doc.problems[0];
  EXPECT_EQ(p.line, c.line) << c.text << "\n" << p.describe();
  EXPECT_EQ(p.column, c.column) << c.text << "\n" << p.describe();
  EXPECT_NE(p.message.find(c.says), std::string::npos) << c.text << "\n" << p.describe();
  ASSERT_EQ(doc.entries.size(), 1u) << c.text;
  EXPECT_EQ(doc.entries[0].dn(), "o=Good");
}

TEST(LdifReader, EveryBadRecordIsAProblemWithLineAndColumnAndReadingGoesOn) {
  const std::vector<BadLdif> cases = {
      {"dn cn=x\ncn: x", 1, 8, "expected ':' after 'dn cn=x'"},
      {"cn: x", 1, 1, "a record must start with 'dn:'"},
      {"dn: cn=x,\ncn: x", 1, 5, "the DN is not valid"},
      {"dn:< file:///x\ncn: x", 1, 4, "not as a URL"},
      {"dn: cn=x", 1, 9, "the record has no attributes"},
      {"dn: cn=x\nb@d: 1", 2, 2, "'b@d' is not an attribute name"},
      {"dn: cn=x\n;x: 1", 2, 1, "is not an attribute name"},
      {"dn: cn=x\ncn;: 1", 2, 4, "is not an attribute name"},
      {"dn: cn=x\ncn:: ab=c", 2, 8, "not valid base64"},
      {"dn: cn=x\ncn:: abc", 2, 9, "not valid base64"},
      {"dn: cn=x\ncn: a\rb", 2, 6, "a CR must be written in base64"},
      {std::string("dn: cn=x\ncn: a\0b", 16), 2, 6, "a NUL must be written in base64"},
      {"dn: cn=x\ncn:< http://host/y", 2, 6, "is not a file URL"},
      {"dn: cn=x\ncn:< file:///etc/hostname", 2, 6, "may not name files"},
      {"dn: cn=x\nchangetype: frob", 2, 13, "unknown changetype 'frob'"},
      {"dn: cn=x\ncontrol: 1.2.3\ncn: x", 3, 1, "control lines belong to change records"},
      {"dn: cn=x\ncontrol: abc\nchangetype: delete", 2, 10, "expected the OID of the control"},
      {"dn: cn=x\ncontrol: 1.2.3 maybe\nchangetype: delete", 2, 16, "expected 'true', 'false' or ': value'"},
      {"dn: cn=x\nchangetype: delete\ncn: x", 3, 1, "a delete record ends after 'changetype: delete'"},
      {"dn: cn=x\nchangetype: modify\nfrob: cn\n-", 3, 1, "expected 'add:', 'delete:', 'replace:' or 'increment:'"},
      {"dn: cn=x\nchangetype: modify\nreplace: c n\n-", 3, 10, "'c n' after 'replace:' is not an attribute name"},
      {"dn: cn=x\nchangetype: modify\nreplace: cn\ncn: y", 3, 1,
       "the 'replace: cn' section is not ended by a line '-'"},
      {"dn: cn=x\nchangetype: modify\nreplace: cn\nsn: y\n-", 4, 1, "a value of 'sn' in the 'replace: cn' section"},
      {"dn: cn=x\nchangetype: modify\nadd: cn\n-", 3, 1, "'add: cn' has no values"},
      {"dn: cn=x\nchangetype: modify\nincrement: n\nn: 1\nn: 2\n-", 3, 1, "needs exactly one value"},
      {"dn: cn=x\nchangetype: modify", 2, 19, "a modify record needs at least one"},
      {"dn: cn=x\nchangetype: modrdn", 2, 19, "expected a line 'newrdn:' next"},
      {"dn: cn=x\nchangetype: modrdn\ndeleteoldrdn: 1", 3, 1, "expected 'newrdn:' here, found 'deleteoldrdn:'"},
      {"dn: cn=x\nchangetype: modrdn\nnewrdn: cn\ndeleteoldrdn: 1", 3, 9, "the new RDN is not valid"},
      {"dn: cn=x\nchangetype: modrdn\nnewrdn: cn=a,o=b\ndeleteoldrdn: 1", 3, 9, "must be one RDN"},
      {"dn: cn=x\nchangetype: modrdn\nnewrdn: cn=a\ndeleteoldrdn: 2", 4, 15, "deleteoldrdn must be 0 or 1"},
      {"dn: cn=x\nchangetype: modrdn\nnewrdn: cn=a\ndeleteoldrdn: 1\nnewsuperior: o=a,", 5, 14, "not a valid DN"},
      {"dn: cn=x\nchangetype: modrdn\nnewrdn: cn=a\ndeleteoldrdn: 1\nnewsuperior: o=b\ncn: x", 6, 1,
       "ends after 'newsuperior:'"},
      {"dn: cn=x\ncn: x\ndn: cn=y", 3, 1, "a second 'dn:' line"},
      {" dn: cn=x\ncn: x", 1, 1, "continues the line before it"},
  };
  for (const BadLdif& c : cases) expect_problem(c);
}

TEST(LdifReader, ProblemsInsideFoldedLinesPointAtThePhysicalLine) {
  const LdifDocument doc = read_ldif("dn: cn=x\ndescription: abcdef\n gh\n b@d: 1\n");
  ASSERT_EQ(doc.problems.size(), 0u) << problems_of(doc);  // " b@d: 1" continues the description
  LdifReaderOptions options;
  options.source_name = "people.ldif";
  const LdifDocument bad = read_ldif("dn: cn=x\ncn:: QUJD\n RE\n !A\n", options);
  ASSERT_EQ(bad.problems.size(), 1u);
  EXPECT_EQ(bad.problems[0].line, 4u);
  EXPECT_EQ(bad.problems[0].column, 2u);
  EXPECT_EQ(bad.problems[0].dn, "cn=x");
  EXPECT_EQ(bad.problems[0].describe().substr(0, 16), "people.ldif:4:2:");
  const LdifDocument unnamed = read_ldif("dn: cn=x\ncn:: QUJD\n RE\n !A\n");
  ASSERT_EQ(unnamed.problems.size(), 1u);
  EXPECT_EQ(unnamed.problems[0].describe().substr(0, 19), "line 4, column 2: t");
}

TEST(LdifReader, AFileHoldsContentOrChangeRecordsNotBoth) {
  const LdifDocument doc = read_ldif("dn: cn=a\ncn: a\n\ndn: cn=b\nchangetype: delete\n\ndn: cn=c\ncn: c\n");
  EXPECT_EQ(doc.entries.size(), 2u);
  ASSERT_EQ(doc.problems.size(), 1u);
  EXPECT_EQ(doc.problems[0].line, 4u);
  EXPECT_NE(doc.problems[0].message.find("a change record in a file of content records"), std::string::npos);
  const LdifDocument changes = read_ldif("dn: cn=b\nchangetype: delete\n\ndn: cn=a\ncn: a\n");
  EXPECT_EQ(changes.changes.size(), 1u);
  ASSERT_EQ(changes.problems.size(), 1u);
  EXPECT_NE(changes.problems[0].message.find("add 'changetype: add'"), std::string::npos);
  // A record that does not read decides nothing.
  const LdifDocument after_bad = read_ldif("dn: cn=b\nchangetype: delete\ncn: x\n\ndn: cn=a\ncn: a\n");
  EXPECT_EQ(after_bad.entries.size(), 1u);
  EXPECT_EQ(after_bad.problems.size(), 1u);
}

TEST(LdifReader, AnUnknownVersionIsReportedAndTheFileReadAsVersionOne) {
  const LdifDocument doc = read_ldif("version: 2\ndn: o=x\no: x\n");
  ASSERT_EQ(doc.problems.size(), 1u);
  EXPECT_EQ(doc.problems[0].line, 1u);
  EXPECT_NE(doc.problems[0].message.find("version '2' is not known"), std::string::npos);
  EXPECT_EQ(doc.entries.size(), 1u);
  EXPECT_EQ(read_clean("version: 1\n\n\ndn: o=x\no: x\n").entries.size(), 1u);
}

TEST(LdifReader, ARecordOverTheSizeLimitIsSkipped) {
  LdifReaderOptions options;
  options.max_record_size = 100;
  const std::string big = "dn: cn=big\ndescription: " + std::string(200, 'x');
  expect_problem({big, 1, 1, "larger than 100 octets"}, options);
  const std::string folded =
      "dn: cn=big\n" + std::string("description: ") + std::string(60, 'x') + "\n " + std::string(60, 'y');
  expect_problem({folded, 1, 1, "larger than 100 octets"}, options);
}

TEST(LdifReader, FileUrlsAreReadInsideTheBaseDirectoryOnly) {
  TempDir dir;
  std::filesystem::create_directories(dir.path() / "photos");
  std::ofstream(dir.path() / "photos" / "j d.jpg", std::ios::binary) << std::string("\xFF\xD8\0x", 4);
  std::ofstream(dir.path() / "big.bin") << std::string(2000, 'b');
  LdifReaderOptions options;
  options.url_base_directory = dir.path();
  options.max_url_file_size = 1000;
  const std::string abs = (dir.path() / "photos" / "j%20d.jpg").string();
  const LdifDocument doc = read_clean("dn: cn=j,o=x\njpegPhoto:< file://" + abs + "\njpegPhoto:< file://localhost" +
                                          abs + "\njpegPhoto:< file:photos/j%20d.jpg\n",
                                      options);
  ASSERT_EQ(doc.entries.size(), 1u);
  EXPECT_EQ(*doc.entries[0].find("jpegPhoto"), std::vector<std::string>(3, std::string("\xFF\xD8\0x", 4)));

  expect_problem({"dn: cn=x\ncn:< file:///etc/hostname", 2, 6, "names a file outside"}, options);
  expect_problem({"dn: cn=x\ncn:< file:photos/../../x", 2, 6, "names a file outside"}, options);
  expect_problem({"dn: cn=x\ncn:< file:missing.jpg", 2, 6, "does not exist"}, options);
  expect_problem({"dn: cn=x\ncn:< file:big.bin", 2, 6, "larger than 1000 octets"}, options);
  expect_problem({"dn: cn=x\ncn:< file://server/share/x", 2, 6, "names host 'server'"}, options);
  expect_problem({"dn: cn=x\ncn:< file:a%2", 2, 6, "'%' not followed by two hex digits"}, options);
  expect_problem({"dn: cn=x\ncn:< file:", 2, 6, "names no file"}, options);
}

// Produces `count` entries without ever holding them: the reader must stream.
class GeneratedLdif : public std::streambuf {
 public:
  explicit GeneratedLdif(std::size_t count) : count_(count) {}
  std::size_t produced = 0;

 protected:
  int_type underflow() override {
    if (next_ >= count_) return traits_type::eof();
    record_ = fmt::format(
        "dn: uid=user{0},ou=People,dc=acme,dc=example\nobjectClass: inetOrgPerson\nuid: user{0}\ncn: User {0}\n"
        "sn: Number{0}\nmail: user{0}@acme.example\ndescription:: SsO8cmdlbiBNw7xsbGVy\n\n",
        next_++);
    produced += record_.size();
    setg(record_.data(), record_.data(), record_.data() + record_.size());
    return traits_type::to_int_type(record_[0]);
  }

 private:
  std::size_t count_;
  std::size_t next_ = 0;
  std::string record_;
};

TEST(LdifReader, StreamsAHundredThousandEntriesHoldingOneChunkAndOneRecord) {
  GeneratedLdif source(100000);
  std::istream in(&source);
  LdifReader reader(in);
  const auto start = std::chrono::steady_clock::now();
  std::size_t entries = 0;
  while (auto item = reader.next()) {
    const Entry* e = std::get_if<Entry>(&*item);
    ASSERT_NE(e, nullptr) << std::get<LdifProblem>(*item).describe();
    if (entries == 99999) {
      EXPECT_EQ(e->first("uid"), "user99999");
    }
    ++entries;
  }
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
  EXPECT_EQ(entries, 100000u);
  EXPECT_GT(source.produced, 15u << 20);
  EXPECT_LT(reader.peak_buffered(), 256u << 10);
  std::printf("read %zu entries (%zu octets) in %lld ms, at most %zu octets held\n", entries, source.produced,
              static_cast<long long>(ms.count()), reader.peak_buffered());
}

// Serves one full read (a record, then empty lines), then fails as a broken device would.
class FailingSource : public std::streambuf {
 protected:
  std::streamsize xsgetn(char_type* s, std::streamsize n) override {
    if (served_) throw std::runtime_error("disk went away");
    served_ = true;
    const std::string text = "dn: o=x\no: x\n";
    std::fill(s, s + n, '\n');
    std::copy(text.begin(), text.end(), s);
    return n;
  }

 private:
  bool served_ = false;
};

TEST(LdifReader, AStreamThatFailsEndsTheInputWithAProblem) {
  FailingSource source;
  std::istream in(&source);
  LdifReader reader(in);
  std::vector<LdifItem> items;
  while (auto item = reader.next()) items.push_back(std::move(*item));
  ASSERT_EQ(items.size(), 2u);
  EXPECT_TRUE(std::holds_alternative<Entry>(items[0]));
  const auto* p = std::get_if<LdifProblem>(&items.back());
  ASSERT_NE(p, nullptr);
  EXPECT_NE(p->message.find("could not be read"), std::string::npos);
}

TEST(LdifReader, ReadFileNamesAMissingFileAndTheSourceInProblems) {
  TempDir dir;
  auto missing = read_ldif_file(dir.path() / "none.ldif");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
  EXPECT_NE(missing.error().message.find("none.ldif"), std::string::npos);
  std::ofstream(dir.path() / "p.ldif") << "dn: o=x\no: x\n\ncn: y\n";
  auto doc = read_ldif_file(dir.path() / "p.ldif");
  ASSERT_TRUE(doc) << doc.error().describe();
  EXPECT_EQ(doc->entries.size(), 1u);
  ASSERT_EQ(doc->problems.size(), 1u);
  EXPECT_EQ(doc->problems[0].line, 4u);
  EXPECT_EQ(doc->problems[0].describe().rfind((dir.path() / "p.ldif").string() + ":4:1: a record must start", 0), 0u)
      << doc->problems[0].describe();
}

Entry sample_entry() {
  Entry e("cn=Doe\\, John,ou=Sales,o=Acme");
  e.add("objectClass", "inetOrgPerson");
  e.add("cn", "Doe, John");
  e.add("cn;lang-de", "J\xC3\xBCrgen");
  e.add("description", " leading space");
  e.add("description", "trailing space ");
  e.add("description", ":colon");
  e.add("description", "<angle");
  e.add("description", std::string("nul\0", 4));
  e.add("description", "cr\rlf\n");
  e.add("description", "");
  e.add("description", "inner: colon <and> spaces");
  return e;
}

TEST(LdifWriter, WritesSafeStringsPlainAndEverythingElseInBase64) {
  auto text = to_ldif({sample_entry()});
  ASSERT_TRUE(text) << text.error().describe();
  EXPECT_EQ(*text,
            "version: 1\n"
            "\n"
            "dn: cn=Doe\\, John,ou=Sales,o=Acme\n"
            "objectClass: inetOrgPerson\n"
            "cn: Doe, John\n"
            "cn;lang-de:: SsO8cmdlbg==\n"
            "description:: IGxlYWRpbmcgc3BhY2U=\n"
            "description:: dHJhaWxpbmcgc3BhY2Ug\n"
            "description:: OmNvbG9u\n"
            "description:: PGFuZ2xl\n"
            "description:: bnVsAA==\n"
            "description:: Y3INbGYK\n"
            "description:\n"
            "description: inner: colon <and> spaces\n");
  auto back = read_clean(*text);
  ASSERT_EQ(back.entries.size(), 1u);
  EXPECT_EQ(back.entries[0], sample_entry());
}

TEST(LdifWriter, FoldsLinesAt76Columns) {
  Entry e("o=Acme");
  const std::string long_value(200, 'v');
  e.add("description", long_value);
  e.add("jpegPhoto", std::string(150, '\xFF'));
  LdifWriterOptions options;
  options.write_version = false;
  auto text = to_ldif({e}, {}, options);
  ASSERT_TRUE(text);
  std::istringstream lines(*text);
  std::string line;
  std::size_t count = 0;
  while (std::getline(lines, line)) {
    EXPECT_LE(line.size(), 76u) << line;
    ++count;
  }
  EXPECT_EQ(count, 1u + 3u + 3u);  // dn, then 213 octets of description and 212 of jpegPhoto
  const std::string start = "dn: o=Acme\ndescription: " + std::string(63, 'v') + "\n " + std::string(75, 'v') + "\n v";
  EXPECT_EQ(text->substr(0, start.size()), start);
  auto back = read_clean(*text);
  ASSERT_EQ(back.entries.size(), 1u);
  EXPECT_EQ(back.entries[0], e);
}

Change modify_change() {
  Change c;
  c.type = ChangeType::kModify;
  c.dn = "cn=John,o=Acme";
  Control ctl;
  ctl.oid = "1.2.840.113556.1.4.805";
  ctl.critical = true;
  ctl.value = std::string("\x30\x00", 2);
  c.controls.push_back(ctl);
  Modification add;
  add.op = ModOp::kAdd;
  add.attribute = "mail";
  add.values = {"a@acme.example", "b@acme.example"};
  Modification del;
  del.op = ModOp::kDelete;
  del.attribute = "telephoneNumber";
  Modification rep;
  rep.op = ModOp::kReplace;
  rep.attribute = "description";
  rep.values = {" x"};
  Modification inc;
  inc.op = ModOp::kIncrement;
  inc.attribute = "uidNumber";
  inc.values = {"1"};
  c.modifications = {add, del, rep, inc};
  return c;
}

std::vector<Change> sample_changes() {
  Change add;
  add.type = ChangeType::kAdd;
  add.dn = "cn=New,o=Acme";
  add.entry.set_dn(add.dn);
  add.entry.add("objectClass", "person");
  add.entry.add("cn", "New");
  add.entry.add("sn", "Person");
  Change del;
  del.type = ChangeType::kDelete;
  del.dn = "cn=Old,o=Acme";
  Change moddn;
  moddn.type = ChangeType::kModDn;
  moddn.dn = "cn=John,o=Acme";
  moddn.new_rdn = "cn=John Doe";
  moddn.delete_old_rdn = false;
  moddn.new_superior = "ou=Sales,o=Acme";
  return {add, del, modify_change(), moddn};
}

TEST(LdifWriter, WritesChangeRecordsThatReadBackEqual) {
  auto text = to_ldif({}, sample_changes());
  ASSERT_TRUE(text) << text.error().describe();
  EXPECT_EQ(*text,
            "version: 1\n"
            "\n"
            "dn: cn=New,o=Acme\nchangetype: add\nobjectClass: person\ncn: New\nsn: Person\n"
            "\n"
            "dn: cn=Old,o=Acme\nchangetype: delete\n"
            "\n"
            "dn: cn=John,o=Acme\ncontrol: 1.2.840.113556.1.4.805 true:: MAA=\nchangetype: modify\n"
            "add: mail\nmail: a@acme.example\nmail: b@acme.example\n-\n"
            "delete: telephoneNumber\n-\n"
            "replace: description\ndescription:: IHg=\n-\n"
            "increment: uidNumber\nuidNumber: 1\n-\n"
            "\n"
            "dn: cn=John,o=Acme\nchangetype: modrdn\nnewrdn: cn=John Doe\ndeleteoldrdn: 0\n"
            "newsuperior: ou=Sales,o=Acme\n");
  auto back = read_clean(*text);
  EXPECT_EQ(back.changes, sample_changes());
}

TEST(LdifWriter, RefusesWhatItsReaderWouldRefuseAndWritesNothingThen) {
  const auto refused = [](const auto& record, std::string_view says) {
    std::ostringstream out;
    LdifWriter writer(out);
    auto ok = writer.write(record);
    ASSERT_FALSE(ok) << says;
    EXPECT_EQ(ok.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(ok.error().message.find(says), std::string::npos) << ok.error().message;
    EXPECT_EQ(out.str(), "");
  };
  Entry bad_dn("cn=a,");
  bad_dn.add("cn", "a");
  refused(bad_dn, "the DN is not valid");
  Entry no_attrs("cn=a");
  refused(no_attrs, "has no attributes");
  Entry bad_name("cn=a");
  bad_name.add("c n", "a");
  refused(bad_name, "'c n' is not an attribute description");
  Entry dn_attr("cn=a");
  dn_attr.add("DN", "a");
  refused(dn_attr, "would start a new record");
  Entry change_first("cn=a");
  change_first.add("changetype", "delete");
  refused(change_first, "would make it a change record");

  Change c = modify_change();
  c.modifications.clear();
  refused(c, "needs at least one modification");
  c = modify_change();
  c.modifications[0].values.clear();
  refused(c, "'add: mail' has no values");
  c = modify_change();
  c.modifications[3].values.push_back("2");
  refused(c, "'increment: uidNumber' needs exactly one value");
  c = modify_change();
  c.modifications[1].attribute = "tel number";
  refused(c, "is not an attribute description");
  c = modify_change();
  c.controls[0].oid = "abc";
  refused(c, "'abc' is not the OID of a control");
  Change moddn = sample_changes()[3];
  moddn.new_rdn = "cn=a,o=b";
  refused(moddn, "exactly one valid RDN");
  moddn = sample_changes()[3];
  moddn.new_superior = "o=a,";
  refused(moddn, "the new superior is not valid");
  Change add = sample_changes()[0];
  add.entry = Entry(add.dn);
  refused(add, "has no attributes");
}

TEST(Ldif, Base64FollowsRfc4648) {
  const std::vector<std::pair<std::string, std::string>> vectors = {{"", ""},
                                                                    {"f", "Zg=="},
                                                                    {"fo", "Zm8="},
                                                                    {"foo", "Zm9v"},
                                                                    {"foob", "Zm9vYg=="},
                                                                    {"foobar", "Zm9vYmFy"},
                                                                    {std::string("\0\xFF\xFE", 3), "AP/+"}};
  for (const auto& [octets, text] : vectors) {
    EXPECT_EQ(ldif_base64_encode(octets), text);
    EXPECT_EQ(ldif_base64_decode(text), octets) << text;
  }
  std::size_t bad = 99;
  EXPECT_FALSE(ldif_base64_decode("Zg=", &bad));
  EXPECT_EQ(bad, 3u);
  EXPECT_FALSE(ldif_base64_decode("Z=g=", &bad));
  EXPECT_EQ(bad, 1u);
  EXPECT_FALSE(ldif_base64_decode("Zg==Zg==", &bad));
  EXPECT_EQ(bad, 2u);
  EXPECT_FALSE(ldif_base64_decode("Zm 9", &bad));
  EXPECT_EQ(bad, 2u);
}

TEST(Ldif, SafeStringsAndAttributeDescriptions) {
  EXPECT_TRUE(is_safe_string("plain value: with <colon>"));
  EXPECT_TRUE(is_safe_string(""));
  for (std::string v : {" x", ":x", "<x", "x ", "x\n", "x\r", "\xC3\xA9"}) EXPECT_FALSE(is_safe_string(v)) << v;
  EXPECT_FALSE(is_safe_string(std::string("a\0", 2)));
  for (std::string n : {"cn", "cn;lang-de", "userCertificate;binary", "2.5.4.3", "x-1;a;b"}) {
    EXPECT_TRUE(is_attribute_description(n)) << n;
  }
  for (std::string n : {"", "1cn", "-a", "cn;", "c n", "2.5.", "2..5", "cn;x_y", ";a"}) {
    EXPECT_FALSE(is_attribute_description(n)) << n;
  }
}

}  // namespace
}  // namespace bridgehead::directory
