// Filter::parse and matches on arbitrary bytes: parse either fails with kInvalidArgument naming
// an offset inside the input, or gives a filter that keeps its text and evaluates without
// crashing, the same way twice, with "(!F)", "(&F)" and "(|F)" agreeing with F's own answer.
#include <cstdint>
#include <string>

#include "directory/sync/scope.hpp"
#include "fuzz_check.hpp"

namespace bh = bridgehead;
namespace dir = bridgehead::directory;
namespace dsync = bridgehead::directory::sync;

namespace {

std::vector<dir::Entry> entries(std::string_view in) {
  dir::Entry person("cn=John Doe,ou=Sales,o=Acme");
  person.set("objectClass", {"top", "dominoPerson"});
  person.set("cn", {"John Doe"});
  person.set("mail", {"John.Doe@Acme.example", "jd@acme.example"});
  person.set("uSNChanged", {"1500"});
  person.set("description", {"a*b(c)\\d"});
  dir::Entry echo("cn=echo");  // the input itself as values, so equality and substrings can hit
  echo.set("cn", {std::string(in)});
  if (in.size() > 4) echo.set("mail", {std::string(in.substr(in.size() / 2)), std::string(in.substr(0, 3))});
  return {person, echo, dir::Entry()};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  auto filter = dsync::Filter::parse(in);
  if (!filter) {
    FUZZ_CHECK(filter.error().code == bh::ErrorCode::kInvalidArgument);
    const std::string& m = filter.error().message;
    FUZZ_CHECK(m.rfind("filter at offset ", 0) == 0);
    const std::size_t offset = std::stoul(m.substr(17));
    FUZZ_CHECK(offset <= size);
    return 0;
  }
  FUZZ_CHECK(filter->text() == in);
  const bool parenthesized = !in.empty() && in.front() == '(';
  auto negated = dsync::Filter::parse("(!" + std::string(in) + ")");
  auto conjunction = dsync::Filter::parse("(&" + std::string(in) + ")");
  auto disjunction = dsync::Filter::parse("(|" + std::string(in) + ")");
  for (const dir::Entry& e : entries(in)) {
    const bool m = filter->matches(e);
    FUZZ_CHECK(filter->matches(e) == m);
    // One level deeper may pass the nesting limit; otherwise the wrapped forms parse too.
    if (parenthesized && negated) {
      FUZZ_CHECK(negated->matches(e) == !m);
      FUZZ_CHECK(conjunction && conjunction->matches(e) == m);
      FUZZ_CHECK(disjunction && disjunction->matches(e) == m);
    }
  }
  return 0;
}
