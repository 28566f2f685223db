#include "directory/mapping/expression.hpp"

#include <algorithm>
#include <array>
#include <limits>

#include <fmt/format.h>

#include "core/text.hpp"

namespace bridgehead::directory::mapping {
namespace {

constexpr std::size_t kMaxText = 65536;  // offsets fit Node's 32 bits with room; a rule is one line
constexpr int kMaxDepth = 32;            // calls nested deeper are a mistake, and the stack stays small
constexpr std::uint32_t kMaxNumber = 1000000;
constexpr std::uint8_t kAnyCount = std::numeric_limits<std::uint8_t>::max();

struct FunctionInfo {
  Function function;
  std::string_view name;
  std::uint8_t min_args;
  std::uint8_t max_args;
  std::string_view usage;
};

constexpr std::array<FunctionInfo, 17> kFunctions = {{
    {Function::kConcat, "concat", 1, kAnyCount, "concat(value, ...)"},
    {Function::kList, "list", 1, kAnyCount, "list(values, ...)"},
    {Function::kLower, "lower", 1, 1, "lower(value)"},
    {Function::kUpper, "upper", 1, 1, "upper(value)"},
    {Function::kProper, "proper", 1, 1, "proper(value)"},
    {Function::kLeft, "left", 2, 2, "left(value, count)"},
    {Function::kSubstr, "substr", 2, 3, "substr(value, start[, count])"},
    {Function::kStrip, "strip", 1, 2, "strip(value[, characters])"},
    {Function::kReplace, "replace", 3, 3, "replace(value, from, to)"},
    {Function::kIfEmpty, "if_empty", 2, 2, "if_empty(value, otherwise)"},
    {Function::kIsEqual, "isequal", 4, 4, "isequal(a, b, then, else)"},
    {Function::kFirst, "first", 1, 1, "first(values)"},
    {Function::kNotesAbbrev, "notes_abbrev", 1, 1, "notes_abbrev(name)"},
    {Function::kNotesCanonical, "notes_canonical", 1, 1, "notes_canonical(name)"},
    {Function::kX500, "x500", 1, 1, "x500(name)"},
    {Function::kNameFirst, "name_first", 1, 1, "name_first(name)"},
    {Function::kNameLast, "name_last", 1, 1, "name_last(name)"},
}};

const FunctionInfo& info_of(Function f) { return kFunctions[static_cast<std::size_t>(f)]; }

const FunctionInfo* find_function(std::string_view name) {
  for (const auto& f : kFunctions) {
    if (iequals(f.name, name)) return &f;
  }
  return nullptr;
}

bool is_letter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_keychar(char c) { return is_letter(c) || is_digit(c) || c == '-'; }
bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

// " (did you mean 'x'?)" for the closest of `names` within two edits, else "".
template <typename Names, typename NameOf>
std::string suggestion(std::string_view wrong, const Names& names, NameOf name_of, std::string_view prefix = {}) {
  std::string_view best;
  std::size_t best_distance = 3;
  for (const auto& n : names) {
    const std::string_view candidate = name_of(n);
    const std::size_t d = edit_distance(wrong, candidate);
    if (d < best_distance && d < candidate.size()) {
      best = candidate;
      best_distance = d;
    }
  }
  return best.empty() ? std::string() : fmt::format(" (did you mean '{}{}'?)", prefix, best);
}

std::string quoted(std::string_view text, char quote) {
  std::string out(1, quote);
  for (char c : text) {
    if (c == '\\' || c == quote) {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else {
      out += c;
    }
  }
  out += quote;
  return out;
}

}  // namespace

std::string_view function_name(Function f) { return info_of(f).name; }

bool is_attribute_description(std::string_view text) {
  if (text.empty() || !is_letter(text.front())) return false;
  bool after_semicolon = false;
  for (char c : text) {
    if (c == ';') {
      if (after_semicolon) return false;
      after_semicolon = true;
    } else if (!is_keychar(c)) {
      return false;
    } else {
      after_semicolon = false;
    }
  }
  return !after_semicolon;
}

bool Known::has_attribute(std::string_view description) const {
  const auto type = description.substr(0, description.find(';'));
  return std::any_of(attributes_.begin(), attributes_.end(), [type](const std::string& a) { return iequals(a, type); });
}

bool Known::has_variable(std::string_view name) const {
  return std::any_of(variables_.begin(), variables_.end(), [name](const std::string& v) { return iequals(v, name); });
}

class Parser {
 public:
  Parser(std::string_view text, const Known& known) : t_(text), known_(known) {}

  tl::expected<Expression, ParseError> run() {
    if (t_.size() > kMaxText) return error(kMaxText, fmt::format("the rule is longer than {} octets", kMaxText));
    for (std::size_t i = 0; i < t_.size(); i += std::max<std::size_t>(1, utf8_sequence_length(t_, i))) {
      if (utf8_sequence_length(t_, i) == 0) return error(i, "the rule is not valid UTF-8 here");
    }
    e_.text_ = std::string(t_);
    skip_blanks();
    if (pos_ == t_.size()) return error(pos_, "the rule is empty: write an expression, e.g. first(mail)");
    auto root = expression(0);
    if (!root) return tl::unexpected(root.error());
    skip_blanks();
    if (pos_ != t_.size()) {
      return error(pos_, fmt::format("unexpected {} after the end of the expression", shown(pos_)));
    }
    e_.root_ = *root;
    return std::move(e_);
  }

 private:
  using Index = tl::expected<std::uint32_t, ParseError>;

  static tl::unexpected<ParseError> error(std::size_t offset, std::string message) {
    return tl::unexpected(ParseError{offset, std::move(message)});
  }

  // The character at `at` for a message: quoted, escaped when it is a control character.
  std::string shown(std::size_t at) const {
    const std::size_t len = std::max<std::size_t>(1, utf8_sequence_length(t_, at));
    return fmt::format("'{}'", escape_control(t_.substr(at, len)));
  }

  void skip_blanks() {
    while (pos_ < t_.size() && is_blank(t_[pos_])) ++pos_;
  }

  std::uint32_t add(Node n) {
    e_.nodes_.push_back(std::move(n));
    return static_cast<std::uint32_t>(e_.nodes_.size() - 1);
  }

  Node make(Node::Kind kind, std::size_t offset) {
    Node n;
    n.kind = kind;
    n.offset = static_cast<std::uint32_t>(offset);
    return n;
  }

  Index expression(int depth) {
    skip_blanks();
    if (pos_ == t_.size()) {
      return error(pos_,
                   "the rule ends where a value was expected (a 'text', a number, an attribute, a "
                   "$variable or a function call)");
    }
    const char c = t_[pos_];
    if (c == '\'' || c == '"') return literal();
    if (is_digit(c)) return number();
    if (c == '$') return variable();
    if (is_letter(c)) return word(depth);
    return error(pos_, fmt::format("unexpected {} where a value was expected (a 'text', a number, an attribute, a "
                                   "$variable or a function call)",
                                   shown(pos_)));
  }

  Index literal() {
    const std::size_t start = pos_;
    const char quote = t_[pos_++];
    Node n = make(Node::Kind::kText, start);
    while (true) {
      if (pos_ == t_.size()) return error(start, fmt::format("the text that starts here has no closing {}", quote));
      const char c = t_[pos_];
      if (c == quote) break;
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) {
        return error(pos_, fmt::format("{} inside a text: write a line break as \\n and a tab as \\t", shown(pos_)));
      }
      if (c == '\\') {
        if (pos_ + 1 == t_.size()) return error(pos_, "the text ends with a lone '\\'");
        const char e = t_[pos_ + 1];
        if (e == '\\' || e == '\'' || e == '"') {
          n.text += e;
        } else if (e == 'n') {
          n.text += '\n';
        } else if (e == 't') {
          n.text += '\t';
        } else {
          return error(pos_, fmt::format("unknown escape '\\{}': the escapes are \\\\ \\' \\\" \\n \\t",
                                         escape_control(t_.substr(
                                             pos_ + 1, std::max<std::size_t>(1, utf8_sequence_length(t_, pos_ + 1))))));
        }
        pos_ += 2;
        continue;
      }
      n.text += c;
      ++pos_;
    }
    ++pos_;
    return add(std::move(n));
  }

  Index number() {
    const std::size_t start = pos_;
    std::uint64_t value = 0;
    while (pos_ < t_.size() && is_digit(t_[pos_])) {
      value = std::min<std::uint64_t>(value * 10 + static_cast<std::uint64_t>(t_[pos_] - '0'), kMaxNumber + 1ULL);
      ++pos_;
    }
    if (value > kMaxNumber) {
      return error(start,
                   fmt::format("the number {} is too large (at most {})", t_.substr(start, pos_ - start), kMaxNumber));
    }
    Node n = make(Node::Kind::kNumber, start);
    n.number = static_cast<std::uint32_t>(value);
    n.text = std::to_string(n.number);
    return add(std::move(n));
  }

  Index variable() {
    const std::size_t start = pos_++;
    while (pos_ < t_.size() && (is_letter(t_[pos_]) || is_digit(t_[pos_]) || t_[pos_] == '_')) ++pos_;
    const auto name = t_.substr(start + 1, pos_ - start - 1);
    if (name.empty() || is_digit(name.front())) {
      return error(start, "'$' must be followed by a variable name (letters, digits, '_'), e.g. $routing_domain");
    }
    if (!known_.has_variable(name)) {
      if (known_.variables().empty()) {
        return error(start, fmt::format("unknown variable ${}: no variables are defined here", name));
      }
      std::string names;
      for (const auto& v : known_.variables()) names += (names.empty() ? "$" : ", $") + v;
      const auto hint = suggestion(
          name, known_.variables(), [](const std::string& v) { return std::string_view(v); }, "$");
      return error(start, fmt::format("unknown variable ${}{}; the variables are {}", name, hint, names));
    }
    Node n = make(Node::Kind::kVariable, start);
    n.text = std::string(name);
    return add(std::move(n));
  }

  // An attribute description or, when '(' follows, a function call.
  Index word(int depth) {
    const std::size_t start = pos_;
    while (pos_ < t_.size() && (is_keychar(t_[pos_]) || t_[pos_] == '_')) ++pos_;
    const auto name = t_.substr(start, pos_ - start);
    const std::size_t after_name = pos_;
    skip_blanks();
    if (pos_ < t_.size() && t_[pos_] == '(') return call(name, start, depth);
    pos_ = after_name;
    if (find_function(name) != nullptr) {
      return error(start, fmt::format("{} is a function: write {}", name, find_function(name)->usage));
    }
    if (name.find('_') != std::string_view::npos) {
      return error(start, fmt::format("'{}' is not an attribute name: LDAP attribute names have letters, digits and "
                                      "'-' only",
                                      name));
    }
    while (pos_ < t_.size() && t_[pos_] == ';') {
      const std::size_t option = ++pos_;
      while (pos_ < t_.size() && is_keychar(t_[pos_])) ++pos_;
      if (pos_ == option) return error(option - 1, "';' must be followed by an attribute option, e.g. cn;lang-de");
    }
    const auto description = t_.substr(start, pos_ - start);
    if (iequals(description, "dn")) return add(make(Node::Kind::kDn, start));
    if (!known_.has_attribute(description)) {
      return error(start, fmt::format("unknown attribute '{}'{}", name,
                                      suggestion(name, known_.attributes(),
                                                 [](const std::string& a) { return std::string_view(a); })));
    }
    Node n = make(Node::Kind::kAttribute, start);
    n.text = std::string(description);
    return add(std::move(n));
  }

  Index call(std::string_view name, std::size_t start, int depth) {
    const FunctionInfo* f = find_function(name);
    if (f == nullptr) {
      std::string names;
      for (const auto& fn : kFunctions) names += (names.empty() ? "" : ", ") + std::string(fn.name);
      const auto hint = suggestion(name, kFunctions, [](const FunctionInfo& fn) { return fn.name; });
      return error(start,
                   fmt::format("unknown function '{}'{}", name, hint.empty() ? "; the functions are " + names : hint));
    }
    if (depth >= kMaxDepth) return error(start, fmt::format("calls are nested more than {} deep here", kMaxDepth));
    const std::size_t open = pos_++;
    std::vector<std::uint32_t> args;
    skip_blanks();
    if (pos_ < t_.size() && t_[pos_] == ')') {
      ++pos_;
    } else {
      while (true) {
        auto arg = expression(depth + 1);
        if (!arg) return arg;
        args.push_back(*arg);
        skip_blanks();
        if (pos_ == t_.size()) {
          return error(pos_,
                       fmt::format("the rule ends inside {}( (opened at offset {}): ')' is missing", f->name, open));
        }
        if (t_[pos_] == ')') {
          ++pos_;
          break;
        }
        if (t_[pos_] != ',') {
          return error(pos_, fmt::format("unexpected {} after argument {} of {}: ',' or ')' expected", shown(pos_),
                                         args.size(), f->name));
        }
        ++pos_;
      }
    }
    if (args.size() < f->min_args || args.size() > f->max_args) {
      const auto wanted = f->min_args == f->max_args ? std::to_string(f->min_args)
                          : f->max_args == kAnyCount ? fmt::format("at least {}", f->min_args)
                                                     : fmt::format("{} or {}", f->min_args, f->max_args);
      return error(start, fmt::format("{} takes {} argument{} ({}), not {}", f->name, wanted,
                                      f->min_args == 1 && (f->max_args == 1 || f->max_args == kAnyCount) ? "" : "s",
                                      f->usage, args.size()));
    }
    Node n = make(Node::Kind::kCall, start);
    n.function = f->function;
    n.first_arg = static_cast<std::uint32_t>(e_.args_.size());
    n.arg_count = static_cast<std::uint32_t>(args.size());
    e_.args_.insert(e_.args_.end(), args.begin(), args.end());
    if (auto ok = check_parameters(*f, args); !ok) return tl::unexpected(ok.error());
    return add(std::move(n));
  }

  // Arguments that are counts or search texts: a literal of the wrong kind is a mistake known now.
  tl::expected<void, ParseError> check_parameters(const FunctionInfo& f, const std::vector<std::uint32_t>& args) {
    auto count = [&](std::size_t i, std::string_view what, std::uint32_t min) -> tl::expected<void, ParseError> {
      if (i >= args.size()) return {};
      Node& a = e_.nodes_[args[i]];
      if (a.kind == Node::Kind::kText) {
        const bool digits = !a.text.empty() && a.text.size() <= 7 &&
                            std::all_of(a.text.begin(), a.text.end(), [](char c) { return is_digit(c); });
        if (!digits || std::stoul(a.text) > kMaxNumber) {
          return error(a.offset, fmt::format("{}: the {} must be a whole number, not '{}'", f.name, what,
                                             escape_control(a.text)));
        }
        a.kind = Node::Kind::kNumber;
        a.number = static_cast<std::uint32_t>(std::stoul(a.text));
        a.text = std::to_string(a.number);
      }
      if (a.kind == Node::Kind::kNumber && a.number < min) {
        return error(a.offset, fmt::format("{}: the {} counts from {}, not {}", f.name, what, min, a.number));
      }
      return {};
    };
    switch (f.function) {
      case Function::kLeft:
        return count(1, "count", 0);
      case Function::kSubstr:
        if (auto ok = count(1, "start", 1); !ok) return ok;
        return count(2, "count", 0);
      case Function::kReplace:
        if (const Node& from = e_.nodes_[args[1]]; from.kind == Node::Kind::kText && from.text.empty()) {
          return error(from.offset, "replace: the text to replace is empty");
        }
        return {};
      default:
        return {};
    }
  }

  std::string_view t_;
  const Known& known_;
  std::size_t pos_ = 0;
  Expression e_;
};

tl::expected<Expression, ParseError> parse(std::string_view text, const Known& known) {
  return Parser(text, known).run();
}

namespace {

bool same_tree(const Expression& a, const Node& x, const Expression& b, const Node& y) {
  if (x.kind != y.kind || x.arg_count != y.arg_count) return false;
  switch (x.kind) {
    case Node::Kind::kText:
    case Node::Kind::kNumber:
      return x.text == y.text;
    case Node::Kind::kAttribute:
    case Node::Kind::kVariable:
      return iequals(x.text, y.text);
    case Node::Kind::kDn:
      return true;
    case Node::Kind::kCall:
      break;
  }
  if (x.function != y.function) return false;
  for (std::size_t i = 0; i < x.arg_count; ++i) {
    if (!same_tree(a, a.argument(x, i), b, b.argument(y, i))) return false;
  }
  return true;
}

void print(const Expression& e, const Node& n, std::string& out) {
  switch (n.kind) {
    case Node::Kind::kText:
      out += quoted(n.text, '\'');
      return;
    case Node::Kind::kNumber:
    case Node::Kind::kAttribute:
      out += n.text;
      return;
    case Node::Kind::kDn:
      out += "dn";
      return;
    case Node::Kind::kVariable:
      out += '$';
      out += n.text;
      return;
    case Node::Kind::kCall:
      break;
  }
  out += function_name(n.function);
  out += '(';
  for (std::size_t i = 0; i < n.arg_count; ++i) {
    if (i > 0) out += ", ";
    print(e, e.argument(n, i), out);
  }
  out += ')';
}

}  // namespace

bool Expression::operator==(const Expression& other) const { return same_tree(*this, root(), other, other.root()); }

std::string to_string(const Expression& e) {
  std::string out;
  print(e, e.root(), out);
  return out;
}

}  // namespace bridgehead::directory::mapping
