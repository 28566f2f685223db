// The mapping-rule parser on arbitrary text (a rule an administrator typed): it fails with
// an offset inside the text and a message, or gives a tree that prints as text which parses
// to the same tree and prints the same again; evaluating it on a fixed entry never crashes
// and reports problems at offsets inside the rule.
#include <cstdint>
#include <string>

#include "directory/entry.hpp"
#include "directory/mapping/evaluate.hpp"
#include "directory/mapping/expression.hpp"
#include "fuzz_check.hpp"

namespace mapping = bridgehead::directory::mapping;

namespace {

const mapping::Known& known() {
  static const mapping::Known k({"cn", "sn", "givenName", "mail", "uid", "objectClass", "description", "member"},
                                {"routing_domain", "notes_domain", "system"});
  return k;
}

const bridgehead::directory::Entry& entry() {
  static const bridgehead::directory::Entry e = [] {
    bridgehead::directory::Entry x("cn=John Doe,ou=Sales,o=Acme");
    x.add("cn", "John Doe");
    x.add("cn", "Doe, John");
    x.add("cn", "Doe,");
    x.add("sn",
          "D\xc3\xb6"
          "e");
    x.add("givenName", "J\xff");
    x.add("mail", "jdoe@acme.com");
    x.add("mail", "john.doe@acme.com");
    x.add("uid", "3");
    x.add("objectClass", "top");
    x.add("description", "");
    for (int i = 0; i < 20; ++i) x.add("member", "cn=m" + std::to_string(i % 7) + ",o=Acme");
    return x;
  }();
  return e;
}

const mapping::Context& context() {
  static const mapping::Context c = [] {
    mapping::Context x;
    x.set("routing_domain", "notes.acme.com");
    x.set("notes_domain", "AcmeMail");
    return x;  // $system has no value: a problem, never a crash
  }();
  return c;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto e = mapping::parse(text, known());
  if (!e) {
    FUZZ_CHECK(e.error().offset <= text.size());
    FUZZ_CHECK(!e.error().message.empty());
    return 0;
  }
  const std::string printed = mapping::to_string(*e);
  auto again = mapping::parse(printed, known());
  FUZZ_CHECK(again.has_value());
  FUZZ_CHECK(*again == *e);
  FUZZ_CHECK(mapping::to_string(*again) == printed);
  const auto r = mapping::evaluate(*e, entry(), context());
  for (const auto& p : r.problems) {
    FUZZ_CHECK(p.offset < text.size());
    FUZZ_CHECK(!p.message.empty());
  }
  return 0;
}
