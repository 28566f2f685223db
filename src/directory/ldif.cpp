#include "directory/ldif.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <fstream>
#include <istream>
#include <ostream>
#include <sstream>
#include <system_error>
#include <utility>

#include <fmt/format.h>

#include "core/read_file.hpp"
#include "core/text.hpp"
#include "directory/dn.hpp"

namespace bridgehead::directory {

namespace {

// A line as the record sees it once folding is undone, and where each piece of it came from,
// so that a problem found in the unfolded text is reported at its physical line and column.
struct LogicalLine {
  struct Piece {
    std::size_t offset;  // in text
    std::size_t line;
    std::size_t column;  // of text[offset]
  };
  std::string text;
  std::vector<Piece> pieces;
};

}  // namespace

struct LdifReader::RecordText {
  std::vector<LogicalLine> lines;
  std::size_t size = 0;
  bool too_big = false;
  std::optional<LdifProblem> problem;
};

namespace {

constexpr std::size_t kChunkSize = 64 * 1024;
constexpr std::string_view kBase64Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_keychar(char c) { return is_alpha(c) || is_digit(c) || c == '-'; }

// The offset of the first octet that keeps `name` from being an AttributeDescription, or
// npos when it is one.
std::size_t bad_description_offset(std::string_view name) {
  std::size_t i = 0;
  if (name.empty()) return 0;
  if (is_alpha(name[0])) {
    while (i < name.size() && is_keychar(name[i])) ++i;
  } else if (is_digit(name[0])) {
    for (;;) {
      if (i >= name.size() || !is_digit(name[i])) return i;
      while (i < name.size() && is_digit(name[i])) ++i;
      if (i >= name.size() || name[i] != '.') break;
      ++i;
    }
  } else {
    return 0;
  }
  while (i < name.size()) {
    if (name[i] != ';') return i;
    ++i;
    const std::size_t option = i;
    while (i < name.size() && is_keychar(name[i])) ++i;
    if (i == option) return i;
  }
  return std::string_view::npos;
}

std::string_view op_name(ModOp op) {
  switch (op) {
    case ModOp::kAdd:
      return "add";
    case ModOp::kDelete:
      return "delete";
    case ModOp::kReplace:
      return "replace";
    case ModOp::kIncrement:
      return "increment";
  }
  return "replace";
}

std::optional<ModOp> op_from_name(std::string_view name) {
  for (ModOp op : {ModOp::kAdd, ModOp::kDelete, ModOp::kReplace, ModOp::kIncrement}) {
    if (iequals(name, op_name(op))) return op;
  }
  return std::nullopt;
}

int percent_digit(char c) {
  if (is_digit(c)) return c - '0';
  const char l = to_lower(c);
  return l >= 'a' && l <= 'f' ? l - 'a' + 10 : -1;
}

bool path_within(const std::filesystem::path& path, const std::filesystem::path& base) {
  auto p = path.begin();
  for (auto b = base.begin(); b != base.end(); ++b, ++p) {
    if (b->empty()) continue;  // the empty last element of "dir/"
    if (p == path.end() || *p != *b) return false;
  }
  return true;
}

// Reads the value a file URL names, confined to the base directory. Returns the message of
// what is wrong, or nullopt with `value` filled.
std::optional<std::string> load_url(std::string_view url, const LdifReaderOptions& options, std::string& value) {
  if (!istarts_with(url, "file:")) {
    return fmt::format(
        "the URL '{}' is not a file URL: only file:// URLs can be read; put the value in the record ('attr: "
        "value' or 'attr:: base64')",
        escape_control(url));
  }
  if (options.url_base_directory.empty()) {
    return fmt::format("the value is a URL ('{}'), and this input may not name files; put the value in the record",
                       escape_control(url));
  }
  std::string_view rest = url.substr(5);
  if (rest.substr(0, 2) == "//") {
    rest.remove_prefix(2);
    const std::size_t slash = rest.find('/');
    const std::string_view host = rest.substr(0, slash);
    if (slash == std::string_view::npos || (!host.empty() && !iequals(host, "localhost"))) {
      return fmt::format("the URL '{}' names host '{}': only local files can be read (file:///path)",
                         escape_control(url), escape_control(host));
    }
    rest.remove_prefix(slash);
  }
  std::string path;
  for (std::size_t i = 0; i < rest.size(); ++i) {
    if (rest[i] != '%') {
      path += rest[i];
      continue;
    }
    const int hi = i + 2 < rest.size() ? percent_digit(rest[i + 1]) : -1;
    const int lo = i + 2 < rest.size() ? percent_digit(rest[i + 2]) : -1;
    if (hi < 0 || lo < 0) {
      return fmt::format("the URL '{}' has a '%' not followed by two hex digits", escape_control(url));
    }
    path += static_cast<char>(hi << 4 | lo);
    i += 2;
  }
  if (path.empty() || path.find('\0') != std::string::npos) {
    return fmt::format("the URL '{}' names no file", escape_control(url));
  }
  std::error_code ec;
  const std::filesystem::path base = std::filesystem::weakly_canonical(options.url_base_directory, ec);
  std::filesystem::path target =
      std::filesystem::path(path).is_absolute() ? std::filesystem::path(path) : options.url_base_directory / path;
  if (!ec) target = std::filesystem::weakly_canonical(target, ec);
  if (ec || !path_within(target, base)) {
    return fmt::format("the URL '{}' names a file outside {}, the directory values may be read from",
                       escape_control(url), options.url_base_directory.string());
  }
  const std::string what = fmt::format("the file {} (named by a URL value)", target.string());
  auto content = read_whole_file(
      target, what,
      Error::permanent(ErrorCode::kNotFound,
                       fmt::format("the file {} named by the URL value does not exist", target.string())),
      options.max_url_file_size);
  if (!content) return content.error().describe();
  if (content->size() > options.max_url_file_size) {
    return fmt::format("{} is larger than {} octets, the limit for a URL value", what, options.max_url_file_size);
  }
  value = std::move(*content);
  return std::nullopt;
}

struct Field {
  std::string name;
  std::string value;
};

// Parses the lines of one record into an Entry, a Change or the problem that rejects it.
class RecordParser {
 public:
  RecordParser(const std::vector<LogicalLine>& lines, std::size_t first, const LdifReaderOptions& options)
      : lines_(lines), first_(first), k_(first), options_(options) {}

  // The kind of record (content or change) comes out in `is_change` when the DN line parses.
  LdifItem parse(std::optional<bool>& is_change) {
    if (istarts_with(text(), "dn:<")) return problem_at(3, "the DN must be written in the record, not as a URL");
    Field dn_field;
    if (!field(dn_field)) return take_problem();
    if (!iequals(dn_field.name, "dn")) {
      return problem_at(0,
                        fmt::format("a record must start with 'dn:', found '{}:'; separate records with an empty line",
                                    escape_control(dn_field.name)));
    }
    if (auto dn = Dn::parse(dn_field.value); !dn) {
      return problem_at(value_offset_, fmt::format("the DN is not valid: {}", dn.error().message));
    }
    dn_ = std::move(dn_field.value);
    ++k_;
    std::vector<Control> controls;
    while (!at_end() && istarts_with(text(), "control:")) {
      Control control;
      if (!parse_control(control)) return take_problem();
      controls.push_back(std::move(control));
      ++k_;
    }
    std::optional<ChangeType> type;
    if (!at_end() && istarts_with(text(), "changetype:")) {
      Field f;
      if (!field(f)) return take_problem();
      type = change_type(f.value);
      if (!type) {
        return problem_at(value_offset_,
                          fmt::format("unknown changetype '{}': write add, delete, modify, modrdn or moddn",
                                      escape_control(f.value)));
      }
      ++k_;
    } else if (!controls.empty()) {
      return problem_at(0, "control lines belong to change records: add a 'changetype:' line after them");
    }
    const bool change = type.has_value();
    if (is_change && *is_change != change) {
      return problem_here(0, change ? "a change record in a file of content records: put changes in a file of their own"
                                    : "a content record in a file of change records: add 'changetype: add' to it");
    }
    if (!change) {
      Entry entry(dn_);
      if (!attributes(entry)) return take_problem();
      is_change = false;  // only a record that reads decides what the file holds
      return entry;
    }
    Change c;
    c.type = *type;
    c.dn = dn_;
    c.controls = std::move(controls);
    bool ok = true;
    switch (c.type) {
      case ChangeType::kAdd:
        c.entry.set_dn(dn_);
        ok = attributes(c.entry);
        break;
      case ChangeType::kDelete:
        if (!at_end()) ok = fail_here(0, "a delete record ends after 'changetype: delete': remove the lines after it");
        break;
      case ChangeType::kModify:
        ok = modifications(c);
        break;
      case ChangeType::kModDn:
        ok = moddn(c);
        break;
    }
    if (!ok) return take_problem();
    is_change = true;
    return c;
  }

 private:
  bool at_end() const { return k_ >= lines_.size(); }
  const std::string& text() const { return lines_[k_].text; }
  const LogicalLine& line() const { return lines_[std::min(k_, lines_.size() - 1)]; }

  LdifProblem make_problem(const LogicalLine& l, std::size_t offset, std::string message) const {
    LdifProblem p;
    auto piece = l.pieces.begin();
    for (auto it = l.pieces.begin(); it != l.pieces.end() && it->offset <= offset; ++it) piece = it;
    p.line = piece->line;
    p.column = piece->column + (offset - piece->offset);
    p.message = std::move(message);
    p.dn = dn_;
    return p;
  }
  bool fail_here(std::size_t offset, std::string message) {
    problem_ = make_problem(line(), offset, std::move(message));
    return false;
  }
  LdifItem problem_at(std::size_t offset, std::string message) {
    fail_here(offset, std::move(message));
    return take_problem();
  }
  // A problem about the record as a whole: at its first line.
  LdifItem problem_here(std::size_t offset, std::string message) {
    return make_problem(lines_[first_], offset, std::move(message));
  }
  LdifItem take_problem() { return std::move(*problem_); }
  // The end of a record that should have had more: the last line, past its end.
  bool fail_at_end(std::string message) {
    const LogicalLine& last = lines_.back();
    problem_ = make_problem(last, last.text.size(), std::move(message));
    return false;
  }

  // attrval-spec: the current line as "name: value", "name:: base64" or "name:< URL".
  bool field(Field& f) {
    const std::string& t = text();
    const std::size_t colon = t.find(':');
    if (colon == std::string::npos) {
      return fail_here(t.size(), fmt::format("expected ':' after '{}': each line of a record is 'name: value'",
                                             escape_control(t.substr(0, 40))));
    }
    f.name = t.substr(0, colon);
    if (const std::size_t bad = bad_description_offset(f.name); bad != std::string_view::npos) {
      return fail_here(bad, fmt::format("'{}' is not an attribute name: a name is letters, digits and '-' (or an OID), "
                                        "options follow ';' (cn;lang-de)",
                                        escape_control(f.name)));
    }
    return value_spec(colon, f.value);
  }

  // value-spec = ":" ( FILL SAFE-STRING / ":" FILL BASE64-STRING / "<" FILL url ), starting at
  // the ':' at `at` of the current line.
  bool value_spec(std::size_t at, std::string& value) {
    const std::string& t = text();
    std::size_t i = at + 1;
    const char kind = i < t.size() && (t[i] == ':' || t[i] == '<') ? t[i++] : ' ';
    while (i < t.size() && t[i] == ' ') ++i;
    value_offset_ = i;
    const std::string_view raw = std::string_view(t).substr(i);
    if (kind == ':') {
      std::size_t bad = 0;
      auto octets = ldif_base64_decode(raw, &bad);
      if (!octets) {
        return fail_here(i + bad,
                         "the value after '::' is not valid base64 (RFC 4648: A-Z a-z 0-9 + /, padded "
                         "with '=' to a multiple of 4 characters)");
      }
      value = std::move(*octets);
      return true;
    }
    if (kind == '<') {
      if (auto wrong = load_url(raw, options_, value)) return fail_here(i, std::move(*wrong));
      return true;
    }
    if (const std::size_t bad = raw.find_first_of(std::string_view("\0\r", 2)); bad != std::string_view::npos) {
      return fail_here(i + bad, fmt::format("a value with a {} must be written in base64 ('name:: ...')",
                                            raw[bad] == '\r' ? "CR" : "NUL"));
    }
    value.assign(raw);
    return true;
  }

  // control: oid [true|false] [value-spec]
  bool parse_control(Control& control) {
    const std::string& t = text();
    std::size_t i = std::string_view("control:").size();
    while (i < t.size() && t[i] == ' ') ++i;
    const std::size_t start = i;
    while (i < t.size() && (is_digit(t[i]) || t[i] == '.')) ++i;
    control.oid = t.substr(start, i - start);
    if (control.oid.empty() || bad_description_offset(control.oid) != std::string_view::npos || !is_digit(t[start])) {
      return fail_here(start, "expected the OID of the control (such as 1.2.840.113556.1.4.805)");
    }
    std::size_t word = i;
    while (word < t.size() && t[word] == ' ') ++word;
    for (std::string_view crit : {"true", "false"}) {
      if (word > i && t.compare(word, crit.size(), crit) == 0) {
        control.critical = crit == "true";
        i = word + crit.size();
        word = i;
      }
    }
    if (i >= t.size()) return true;
    if (t[i] != ':') {
      return fail_here(word, "expected 'true', 'false' or ': value' after the control's OID");
    }
    std::string value;
    if (!value_spec(i, value)) return false;
    control.value = std::move(value);
    return true;
  }

  static std::optional<ChangeType> change_type(std::string_view name) {
    if (iequals(name, "add")) return ChangeType::kAdd;
    if (iequals(name, "delete")) return ChangeType::kDelete;
    if (iequals(name, "modify")) return ChangeType::kModify;
    if (iequals(name, "modrdn") || iequals(name, "moddn")) return ChangeType::kModDn;
    return std::nullopt;
  }

  bool attributes(Entry& entry) {
    if (at_end()) return fail_at_end("the record has no attributes: add 'name: value' lines after the DN");
    for (; !at_end(); ++k_) {
      Field f;
      if (!field(f)) return false;
      if (iequals(f.name, "dn")) return fail_here(0, "a second 'dn:' line: separate records with an empty line");
      entry.add(f.name, std::move(f.value));
    }
    return true;
  }

  bool modifications(Change& c) {
    while (!at_end()) {
      Field head;
      if (!field(head)) return false;
      Modification m;
      const auto op = op_from_name(head.name);
      if (!op) {
        return fail_here(0,
                         fmt::format("expected 'add:', 'delete:', 'replace:' or 'increment:' and an attribute, found "
                                     "'{}:'",
                                     escape_control(head.name)));
      }
      m.op = *op;
      if (bad_description_offset(head.value) != std::string_view::npos) {
        return fail_here(value_offset_, fmt::format("'{}' after '{}:' is not an attribute name",
                                                    escape_control(head.value), op_name(m.op)));
      }
      m.attribute = std::move(head.value);
      const LogicalLine& head_line = lines_[k_];
      for (++k_;; ++k_) {
        if (at_end()) {
          problem_ = make_problem(
              head_line, 0, fmt::format("the '{}: {}' section is not ended by a line '-'", op_name(m.op), m.attribute));
          return false;
        }
        if (trim(text()) == "-") break;
        Field f;
        if (!field(f)) return false;
        if (!iequals(f.name, m.attribute)) {
          return fail_here(0, fmt::format("a value of '{}' in the '{}: {}' section: end the section with a line '-' "
                                          "first",
                                          escape_control(f.name), op_name(m.op), m.attribute));
        }
        m.values.push_back(std::move(f.value));
      }
      if (m.op == ModOp::kAdd && m.values.empty()) {
        problem_ = make_problem(
            head_line, 0, fmt::format("'add: {}' has no values: add '{}: value' lines", m.attribute, m.attribute));
        return false;
      }
      if (m.op == ModOp::kIncrement && m.values.size() != 1) {
        problem_ = make_problem(head_line, 0,
                                fmt::format("'increment: {}' needs exactly one value (the amount), "
                                            "found {}",
                                            m.attribute, m.values.size()));
        return false;
      }
      c.modifications.push_back(std::move(m));
      ++k_;  // the '-'
    }
    if (c.modifications.empty()) {
      return fail_at_end("a modify record needs at least one 'add:', 'delete:', 'replace:' or 'increment:' section");
    }
    return true;
  }

  // The next line must be `name`; its value in `value`.
  bool expect(std::string_view name, std::string& value) {
    if (at_end()) return fail_at_end(fmt::format("expected a line '{}:' next", name));
    Field f;
    if (!field(f)) return false;
    if (!iequals(f.name, name)) {
      return fail_here(0, fmt::format("expected '{}:' here, found '{}:'", name, escape_control(f.name)));
    }
    value = std::move(f.value);
    return true;
  }

  bool moddn(Change& c) {
    if (!expect("newrdn", c.new_rdn)) return false;
    auto rdn = Dn::parse(c.new_rdn);
    if (!rdn || rdn->size() != 1) {
      return fail_here(value_offset_, rdn ? "the new RDN must be one RDN (cn=New Name), not a DN"
                                          : fmt::format("the new RDN is not valid: {}", rdn.error().message));
    }
    ++k_;
    std::string flag;
    if (!expect("deleteoldrdn", flag)) return false;
    if (flag != "0" && flag != "1") return fail_here(value_offset_, "deleteoldrdn must be 0 or 1");
    c.delete_old_rdn = flag == "1";
    ++k_;
    if (at_end()) return true;
    std::string superior;
    if (!expect("newsuperior", superior)) return false;
    if (auto dn = Dn::parse(superior); !dn) {
      return fail_here(value_offset_, fmt::format("the new superior is not a valid DN: {}", dn.error().message));
    }
    c.new_superior = std::move(superior);
    ++k_;
    if (!at_end()) return fail_here(0, "a modrdn record ends after 'newsuperior:': remove the lines after it");
    return true;
  }

  const std::vector<LogicalLine>& lines_;
  std::size_t first_;
  std::size_t k_;
  const LdifReaderOptions& options_;
  std::string dn_;
  std::optional<LdifProblem> problem_;
  std::size_t value_offset_ = 0;
};

// Appends `line` to `out` in physical lines of at most `width` octets, each continuation
// starting with the space that marks it.
void append_folded(std::string& out, std::string_view line, std::size_t width) {
  std::size_t take = width;
  while (line.size() > take) {
    out += line.substr(0, take);
    out += "\n ";
    line.remove_prefix(take);
    take = width - 1;
  }
  out += line;
  out += '\n';
}

// Appends "name: value" (or "name:: base64") to `out`, folded at `width`.
void append_line(std::string& out, std::string_view name, std::string_view value, std::size_t width) {
  std::string line(name);
  if (is_safe_string(value)) {
    line += ':';
    if (!value.empty()) {
      line += ' ';
      line += value;
    }
  } else {
    line += ":: ";
    line += ldif_base64_encode(value);
  }
  append_folded(out, line, width);
}

Expected<void> invalid(std::string message, std::string_view dn) {
  return fail(Error::permanent(ErrorCode::kInvalidArgument,
                               fmt::format("cannot write the LDIF record of '{}': {}", escape_control(dn), message)));
}

Expected<void> check_dn(std::string_view dn, std::string_view what, std::string_view record_dn) {
  if (auto parsed = Dn::parse(dn); !parsed)
    return invalid(fmt::format("the {} is not valid: {}", what, parsed.error().message), record_dn);
  return {};
}

Expected<void> check_name(std::string_view name, std::string_view dn) {
  if (bad_description_offset(name) != std::string_view::npos) {
    return invalid(fmt::format("'{}' is not an attribute description", escape_control(name)), dn);
  }
  if (iequals(name, "dn")) return invalid("an attribute named 'dn' would start a new record", dn);
  return {};
}

// The attribute lines of an entry, after its DN (and changetype).
Expected<void> append_attributes(std::string& out, const Entry& entry, std::string_view dn, bool content,
                                 std::size_t width) {
  if (entry.attributes().empty()) return invalid("the entry has no attributes", dn);
  const std::string_view first = entry.attributes().front().name;
  if (content && (iequals(first, "changetype") || iequals(first, "control"))) {
    return invalid(fmt::format("a first attribute named '{}' would make it a change record", first), dn);
  }
  for (const Attribute& a : entry.attributes()) {
    if (auto ok = check_name(a.name, dn); !ok) return ok;
    for (const std::string& v : a.values) append_line(out, a.name, v, width);
  }
  return {};
}

Expected<void> append_modifications(std::string& out, const Change& c, std::size_t width) {
  if (c.modifications.empty()) return invalid("a modify change needs at least one modification", c.dn);
  for (const Modification& m : c.modifications) {
    // Unlike in an entry, "dn" is just a name here: its lines sit inside a section.
    if (!is_attribute_description(m.attribute)) {
      return invalid(fmt::format("'{}' is not an attribute description", escape_control(m.attribute)), c.dn);
    }
    if (m.op == ModOp::kAdd && m.values.empty())
      return invalid(fmt::format("'add: {}' has no values", m.attribute), c.dn);
    if (m.op == ModOp::kIncrement && m.values.size() != 1) {
      return invalid(fmt::format("'increment: {}' needs exactly one value", m.attribute), c.dn);
    }
    append_line(out, op_name(m.op), m.attribute, width);
    for (const std::string& v : m.values) append_line(out, m.attribute, v, width);
    out += "-\n";
  }
  return {};
}

Expected<void> append_moddn(std::string& out, const Change& c, std::size_t width) {
  auto rdn = Dn::parse(c.new_rdn);
  if (!rdn || rdn->size() != 1) return invalid("the new RDN must be exactly one valid RDN", c.dn);
  if (c.new_superior) {
    if (auto ok = check_dn(*c.new_superior, "new superior", c.dn); !ok) return ok;
  }
  append_line(out, "newrdn", c.new_rdn, width);
  append_line(out, "deleteoldrdn", c.delete_old_rdn ? "1" : "0", width);
  if (c.new_superior) append_line(out, "newsuperior", *c.new_superior, width);
  return {};
}

}  // namespace

std::string LdifProblem::describe() const {
  if (source.empty()) return fmt::format("line {}, column {}: {}", line, column, message);
  return fmt::format("{}:{}:{}: {}", source, line, column, message);
}

bool is_safe_string(std::string_view value) {
  if (value.empty()) return true;
  const char first = value.front();
  if (first == ' ' || first == ':' || first == '<' || value.back() == ' ') return false;
  return std::all_of(value.begin(), value.end(), [](char c) {
    const auto octet = static_cast<unsigned char>(c);
    return octet != 0 && octet < 0x80 && c != '\r' && c != '\n';
  });
}

bool is_attribute_description(std::string_view name) { return bad_description_offset(name) == std::string_view::npos; }

std::string ldif_base64_encode(std::string_view octets) {
  std::string out;
  out.reserve((octets.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= octets.size(); i += 3) {
    const auto group = static_cast<std::uint32_t>(static_cast<unsigned char>(octets[i])) << 16 |
                       static_cast<std::uint32_t>(static_cast<unsigned char>(octets[i + 1])) << 8 |
                       static_cast<unsigned char>(octets[i + 2]);
    for (int shift = 18; shift >= 0; shift -= 6) out += kBase64Alphabet[group >> shift & 0x3F];
  }
  if (i < octets.size()) {
    const std::size_t left = octets.size() - i;
    std::uint32_t group = static_cast<std::uint32_t>(static_cast<unsigned char>(octets[i])) << 16;
    if (left == 2) group |= static_cast<std::uint32_t>(static_cast<unsigned char>(octets[i + 1])) << 8;
    out += kBase64Alphabet[group >> 18 & 0x3F];
    out += kBase64Alphabet[group >> 12 & 0x3F];
    out += left == 2 ? kBase64Alphabet[group >> 6 & 0x3F] : '=';
    out += '=';
  }
  return out;
}

std::optional<std::string> ldif_base64_decode(std::string_view text, std::size_t* bad_at) {
  const auto bad = [bad_at](std::size_t at) -> std::optional<std::string> {
    if (bad_at != nullptr) *bad_at = at;
    return std::nullopt;
  };
  if (text.size() % 4 != 0) return bad(text.size());
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (std::size_t i = 0; i < text.size(); i += 4) {
    std::size_t padding = 0;  // '=' may end the last group only: "xx==" or "xxx="
    if (i + 4 == text.size() && text[i + 3] == '=') padding = text[i + 2] == '=' ? 2 : 1;
    std::uint32_t group = 0;
    for (std::size_t k = 0; k < 4; ++k) {
      const std::size_t v = k < 4 - padding ? kBase64Alphabet.find(text[i + k]) : 0;
      if (v == std::string_view::npos) return bad(i + k);
      group = group << 6 | static_cast<std::uint32_t>(v);
    }
    out += static_cast<char>(group >> 16 & 0xFF);
    if (padding < 2) out += static_cast<char>(group >> 8 & 0xFF);
    if (padding < 1) out += static_cast<char>(group & 0xFF);
  }
  return out;
}

LdifReader::LdifReader(std::istream& in, LdifReaderOptions options) : in_(in), options_(std::move(options)) {}

// Reads up to the next LF (stripping CR LF or LF). A line longer than the record limit is cut
// there and the rest of it skipped, so a hostile input cannot make the reader hold it.
bool LdifReader::read_physical_line(std::string& line, bool& too_long) {
  line.clear();
  too_long = false;
  bool any = false;
  for (;;) {
    if (chunk_pos_ >= chunk_.size()) {
      chunk_.resize(kChunkSize);
      in_.read(chunk_.data(), static_cast<std::streamsize>(kChunkSize));
      chunk_.resize(static_cast<std::size_t>(in_.gcount()));
      chunk_pos_ = 0;
      if (chunk_.empty()) break;
    }
    any = true;
    const std::size_t lf = chunk_.find('\n', chunk_pos_);
    const std::size_t end = lf == std::string::npos ? chunk_.size() : lf;
    const std::size_t room =
        options_.max_record_size + 1 > line.size() ? options_.max_record_size + 1 - line.size() : 0;
    const std::size_t take = std::min(end - chunk_pos_, room);
    if (take < end - chunk_pos_) too_long = true;
    line.append(chunk_, chunk_pos_, take);
    chunk_pos_ = lf == std::string::npos ? chunk_.size() : lf + 1;
    if (lf != std::string::npos) break;
  }
  if (!any) return false;
  ++line_number_;
  if (!line.empty() && line.back() == '\r') line.pop_back();
  peak_buffered_ = std::max(peak_buffered_, chunk_.capacity() + line.capacity());
  return true;
}

bool LdifReader::read_record(RecordText& record) {
  std::string line;
  bool too_long = false;
  bool in_comment = false;
  bool started = false;
  while (read_physical_line(line, too_long)) {
    if (line.empty()) {
      if (started) break;
      in_comment = false;
      continue;
    }
    if (line[0] == '#') {
      in_comment = true;
      continue;
    }
    if (line[0] == ' ' && in_comment) continue;
    in_comment = false;
    if (!started) {
      started = true;
      record_line_ = line_number_;
    }
    record.size += line.size();
    if (too_long || record.size > options_.max_record_size) record.too_big = true;
    if (record.too_big || record.problem) continue;  // skip to the record's end
    if (line[0] == ' ') {
      if (record.lines.empty()) {
        LdifProblem p;
        p.line = line_number_;
        p.column = 1;
        p.message = "a line starting with a space continues the line before it, and there is none: remove the space";
        record.problem = std::move(p);
        continue;
      }
      LogicalLine& last = record.lines.back();
      last.pieces.push_back(LogicalLine::Piece{last.text.size(), line_number_, 2});
      last.text.append(line, 1);
    } else {
      LogicalLine l;
      l.text = line;
      l.pieces.push_back(LogicalLine::Piece{0, line_number_, 1});
      record.lines.push_back(std::move(l));
    }
    peak_buffered_ = std::max(peak_buffered_, chunk_.capacity() + record.size);
  }
  return started;
}

std::optional<LdifItem> LdifReader::next() {
  // A problem about a whole line or record: at its first column.
  const auto problem = [this](std::size_t line, std::string message) {
    LdifProblem p;
    p.line = line;
    p.column = 1;
    p.message = std::move(message);
    pending_.push_back(std::move(p));
  };
  while (pending_.empty()) {
    RecordText record;
    if (!read_record(record)) {
      if (!in_.bad() || failure_reported_) return std::nullopt;
      failure_reported_ = true;
      problem(line_number_ + 1,
              "the input could not be read any further (a read error); the records after this "
              "line are missing");
    } else if (record.too_big) {
      problem(record_line_,
              fmt::format("the record is larger than {} octets, the limit; it was skipped", options_.max_record_size));
    } else if (record.problem) {
      pending_.push_back(std::move(*record.problem));
    } else {
      std::size_t first = 0;
      if (first_record_ && istarts_with(record.lines.front().text, "version:")) {
        const std::string_view version = trim(std::string_view(record.lines.front().text).substr(8), " ");
        if (version != "1") {
          problem(record_line_, fmt::format("LDIF version '{}' is not known: this reader reads version 1 (RFC "
                                            "2849); it reads on as version 1",
                                            escape_control(version)));
        }
        first = 1;
        if (record.lines.size() > 1) record_line_ = record.lines[1].pieces.front().line;
      }
      first_record_ = false;
      if (first < record.lines.size()) pending_.push_back(RecordParser(record.lines, first, options_).parse(changes_));
    }
  }
  LdifItem item = std::move(pending_.front());
  pending_.pop_front();
  if (auto* p = std::get_if<LdifProblem>(&item)) p->source = options_.source_name;
  return item;
}

namespace {

// An istream over text the caller holds, so that reading a string does not copy it.
class ViewBuffer : public std::streambuf {
 public:
  explicit ViewBuffer(std::string_view text) {
    char* p = const_cast<char*>(text.data());  // only read: a get area is never written
    setg(p, p, p + text.size());
  }
};

LdifDocument read_all(LdifReader& reader) {
  LdifDocument doc;
  while (auto item = reader.next()) {
    if (auto* e = std::get_if<Entry>(&*item)) {
      doc.entries.push_back(std::move(*e));
    } else if (auto* c = std::get_if<Change>(&*item)) {
      doc.changes.push_back(std::move(*c));
    } else {
      doc.problems.push_back(std::get<LdifProblem>(std::move(*item)));
    }
  }
  return doc;
}

}  // namespace

LdifDocument read_ldif(std::string_view text, const LdifReaderOptions& options) {
  ViewBuffer buffer(text);
  std::istream in(&buffer);
  LdifReader reader(in, options);
  return read_all(reader);
}

Expected<LdifDocument> read_ldif_file(const std::filesystem::path& path, LdifReaderOptions options) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int err = errno;
    std::error_code ec;
    if (err == ENOENT || !std::filesystem::exists(path, ec)) {
      return fail(Error::permanent(ErrorCode::kNotFound, fmt::format("the LDIF file {} does not exist", path.string()),
                                   "check the path"));
    }
    return fail(Error::from_errno(err, fmt::format("cannot open the LDIF file {}", path.string())));
  }
  if (options.source_name.empty()) options.source_name = path.string();
  LdifReader reader(in, options);
  return read_all(reader);
}

LdifWriter::LdifWriter(std::ostream& out, LdifWriterOptions options) : out_(out), options_(options) {
  options_.line_width = std::max<std::size_t>(options_.line_width, 2);
}

Expected<void> LdifWriter::emit(const std::string& record) {
  if (first_ && options_.write_version)
    out_ << "version: 1\n\n";
  else if (!first_)
    out_ << '\n';
  first_ = false;
  out_ << record;
  if (!out_) return fail(Error::transient_error(ErrorCode::kIo, "cannot write the LDIF output: the stream failed"));
  return {};
}

Expected<void> LdifWriter::write(const Entry& entry) {
  if (auto ok = check_dn(entry.dn(), "DN", entry.dn()); !ok) return ok;
  std::string record;
  append_line(record, "dn", entry.dn(), options_.line_width);
  if (auto ok = append_attributes(record, entry, entry.dn(), true, options_.line_width); !ok) return ok;
  return emit(record);
}

Expected<void> LdifWriter::write(const Change& change) {
  if (auto ok = check_dn(change.dn, "DN", change.dn); !ok) return ok;
  const std::size_t width = options_.line_width;
  std::string record;
  append_line(record, "dn", change.dn, width);
  for (const Control& c : change.controls) {
    if (c.oid.empty() || !is_digit(c.oid[0]) || !is_attribute_description(c.oid) ||
        c.oid.find(';') != std::string::npos) {
      return invalid(fmt::format("'{}' is not the OID of a control", escape_control(c.oid)), change.dn);
    }
    std::string line = "control: " + c.oid + (c.critical ? " true" : " false");
    if (c.value) {
      line +=
          is_safe_string(*c.value) ? (c.value->empty() ? ":" : ": ") + *c.value : ":: " + ldif_base64_encode(*c.value);
    }
    append_folded(record, line, width);
  }
  static constexpr std::array<std::string_view, 4> kTypes{"add", "delete", "modify", "modrdn"};
  append_line(record, "changetype", kTypes[static_cast<std::size_t>(change.type)], width);
  Expected<void> ok;
  switch (change.type) {
    case ChangeType::kAdd:
      ok = append_attributes(record, change.entry, change.dn, false, width);
      break;
    case ChangeType::kDelete:
      break;
    case ChangeType::kModify:
      ok = append_modifications(record, change, width);
      break;
    case ChangeType::kModDn:
      ok = append_moddn(record, change, width);
      break;
  }
  if (!ok) return ok;
  return emit(record);
}

Expected<std::string> to_ldif(const std::vector<Entry>& entries, const std::vector<Change>& changes,
                              LdifWriterOptions options) {
  std::ostringstream out;
  LdifWriter writer(out, options);
  for (const Entry& e : entries) {
    if (auto ok = writer.write(e); !ok) return fail(std::move(ok.error()));
  }
  for (const Change& c : changes) {
    if (auto ok = writer.write(c); !ok) return fail(std::move(ok.error()));
  }
  return std::move(out).str();
}

}  // namespace bridgehead::directory
