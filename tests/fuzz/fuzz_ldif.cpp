// LdifReader on arbitrary bytes: every problem has a line and column inside the input and
// a message, and every record it reads, written by LdifWriter, reads back as exactly that
// record with no problem (what the writer writes the reader reads back equal).
#include <cstdint>
#include <sstream>
#include <string>

#include "directory/ldif.hpp"
#include "fuzz_check.hpp"

namespace dir = bridgehead::directory;

namespace {

template <typename Record>
void check_round_trip(const Record& record, std::vector<Record> dir::LdifDocument::*records) {
  std::ostringstream out;
  dir::LdifWriter writer(out);
  auto ok = writer.write(record);
  FUZZ_CHECK(ok);
  const std::string text = out.str();
  std::size_t line_length = 0;
  for (char c : text) {
    line_length = c == '\n' ? 0 : line_length + 1;
    FUZZ_CHECK(line_length <= 76);
    FUZZ_CHECK(static_cast<unsigned char>(c) < 0x80 && c != '\r' && c != '\0');
  }
  const dir::LdifDocument back = dir::read_ldif(text);
  FUZZ_CHECK(back.problems.empty());
  FUZZ_CHECK((back.*records).size() == 1);
  FUZZ_CHECK((back.*records)[0] == record);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string in(reinterpret_cast<const char*>(data), size);
  std::size_t lines = 1;
  for (char c : in) lines += c == '\n' ? 1 : 0;
  std::istringstream stream(in);
  dir::LdifReaderOptions options;
  options.max_record_size = 4096;
  dir::LdifReader reader(stream, options);
  while (auto item = reader.next()) {
    if (const auto* problem = std::get_if<dir::LdifProblem>(&*item)) {
      FUZZ_CHECK(problem->line >= 1 && problem->line <= lines && problem->column >= 1);
      FUZZ_CHECK(!problem->message.empty());
    } else if (const auto* entry = std::get_if<dir::Entry>(&*item)) {
      check_round_trip(*entry, &dir::LdifDocument::entries);
    } else {
      check_round_trip(std::get<dir::Change>(*item), &dir::LdifDocument::changes);
    }
  }
  return 0;
}
