// directory/mapping/expression: the language of directory synchronization's mapping rules
// (`target attribute = expression`), parsed once at `bridgehead check` time into a tree
// that evaluate.hpp runs against every entry. Every mistake a person can make in a rule
// (syntax, an unknown function, attribute or variable, the wrong number of arguments, a
// literal argument of the wrong kind) is found here, with its offset. Knows nothing of the
// config file (the config component turns offsets into lines and columns) or of LDAP.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <tl/expected.hpp>

namespace bridgehead::directory::mapping {

// The language:
//   expression := 'text' | "text"          a literal; escapes \\ \' \" \n \t
//               | 123                      a whole number (0 to 1000000), the value "123"
//               | attribute                an LDAP attribute description: a letter, then
//                                          letters, digits, '-'; options after ';'
//                                          (`cn;lang-de`); `dn` is the entry's DN
//               | $variable                a context variable ($routing_domain, ...)
//               | function(expression, ...)
// Names of functions, attributes and variables are case-insensitive. Blanks between tokens
// are ignored; nothing may follow the expression.
//
// Values: every expression yields a list of values. An attribute yields its values in source
// order (none when the entry lacks it); a literal, number or variable yields one.
//   lower(x) upper(x) proper(x) strip(x[, chars]) left(x, n) substr(x, start[, n])
//   replace(x, from, to) notes_abbrev(x) notes_canonical(x) x500(x) name_first(x)
//   name_last(x)           map over the values of x, one result per value (a value they
//                          cannot read gives no result and a problem). The other arguments
//                          are parameters: their first value is used; a parameter with no
//                          value, or a count that is not a whole number, gives no values and
//                          a problem. left/substr count characters; substr starts at 1.
//   concat(a, b, ...)      one value per value of its multi-valued argument, the others'
//                          single values repeated; several multi-valued arguments are paired
//                          by position (the 1st with the 1st ...), as many results as the
//                          shortest has values, and a problem when their counts differ. No
//                          values when any argument has none (wrap it in if_empty(x, '')).
//   list(a, b, ...)        every value of every argument in order, a value equal (ASCII case
//                          ignored) to an earlier one dropped: LDAP refuses duplicates.
//   first(x)               x's first value, or none.
//   if_empty(a, b)         b when a has no non-empty value, otherwise a.
//   isequal(a, b, then, else)  `then` when some value of a equals some value of b, ASCII case
//                          ignored (no values count as the one value ""), otherwise `else`.
//   notes_abbrev/notes_canonical/x500 read a Notes name in any form or an LDAP DN
//                          (`cn=John Doe,ou=Sales,o=Acme`) and write it abbreviated
//                          (`John Doe/Sales/Acme`), canonical (`CN=John Doe/OU=Sales/O=Acme`)
//                          or as RFC 4514 (`CN=John Doe,OU=Sales,O=Acme`).
//   name_first/name_last   the given name / surname of "Doe, John", "John Doe", "John Q. Doe".

enum class Function : std::uint8_t {
  kConcat,
  kList,
  kLower,
  kUpper,
  kProper,
  kLeft,
  kSubstr,
  kStrip,
  kReplace,
  kIfEmpty,
  kIsEqual,
  kFirst,
  kNotesAbbrev,
  kNotesCanonical,
  kX500,
  kNameFirst,
  kNameLast,
};

/// The name a rule writes: "notes_abbrev".
std::string_view function_name(Function f);

/// Which attributes the source side has and which variables the caller will give values
/// for: a rule naming anything else is refused. `dn` is always known.
class Known {
 public:
  Known() = default;
  Known(std::vector<std::string> attributes, std::vector<std::string> variables)
      : attributes_(std::move(attributes)), variables_(std::move(variables)) {}

  /// Whether the attribute type of `description` (before any ';') is known, case ignored.
  bool has_attribute(std::string_view description) const;
  /// Whether `name` (without '$') is a known variable, case ignored.
  bool has_variable(std::string_view name) const;
  const std::vector<std::string>& attributes() const { return attributes_; }
  const std::vector<std::string>& variables() const { return variables_; }

 private:
  std::vector<std::string> attributes_;
  std::vector<std::string> variables_;
};

/// Where and why a rule does not parse. `offset` counts octets from the start of the text.
struct ParseError {
  std::size_t offset = 0;
  std::string message;  ///< "unknown attribute 'mial' (did you mean 'mail'?)"
};

/// One node of a parsed expression.
struct Node {
  enum class Kind : std::uint8_t { kText, kNumber, kAttribute, kDn, kVariable, kCall };
  Kind kind = Kind::kText;
  Function function = Function::kConcat;  ///< kCall
  std::uint32_t offset = 0;               ///< of its first character in the text
  std::uint32_t first_arg = 0;            ///< kCall: its arguments in Expression::arguments()
  std::uint32_t arg_count = 0;
  std::uint32_t number = 0;  ///< kNumber
  std::string text;          ///< kText, kNumber: the value; kAttribute: as written; kVariable: without '$'
};

/// A parsed rule: immutable, evaluated any number of times.
class Expression {
 public:
  const Node& root() const { return nodes_[root_]; }
  /// The arguments of a kCall node, in order.
  std::span<const std::uint32_t> arguments(const Node& call) const {
    return {args_.data() + call.first_arg, call.arg_count};
  }
  const Node& node(std::uint32_t index) const { return nodes_[index]; }
  const Node& argument(const Node& call, std::size_t i) const { return nodes_[args_[call.first_arg + i]]; }
  /// The text it was parsed from.
  const std::string& text() const { return text_; }

  /// The same tree (offsets and blanks aside): what printing and parsing again must keep.
  bool operator==(const Expression& other) const;

 private:
  friend class Parser;
  Expression() = default;  // only parse() makes one, so root() always exists
  std::vector<Node> nodes_;
  std::vector<std::uint32_t> args_;
  std::uint32_t root_ = 0;
  std::string text_;
};

/// Whether `text` is an LDAP attribute description as the language writes one: a letter, then
/// letters, digits and '-', then options (`;lang-de`).
bool is_attribute_description(std::string_view text);

/// Parses one rule. Fails with the offset of the first problem and what it is.
tl::expected<Expression, ParseError> parse(std::string_view text, const Known& known);

/// The expression in the language, normalized (function names lower-case, literals in single
/// quotes, ", " between arguments): parse(to_string(e)) gives e's tree again.
std::string to_string(const Expression& e);

}  // namespace bridgehead::directory::mapping
