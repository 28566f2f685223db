// directory/mapping/evaluate: runs a parsed rule (expression.hpp, which also says what each
// function does with lists of values) against one directory entry. Bad data in an entry
// never stops a synchronization run: what a rule cannot compute gives no value and a
// problem for that entry. Pure: no I/O, no exceptions, no re-parsing.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "directory/entry.hpp"
#include "directory/mapping/expression.hpp"

namespace bridgehead::directory::mapping {

/// The values of the variables for a run: $routing_domain = "exchange.acme.com".
class Context {
 public:
  /// Sets `name` (without '$', case ignored) to `value`, replacing an earlier value.
  void set(std::string_view name, std::string value);
  /// The value of `name`, or null when it has none.
  const std::string* find(std::string_view name) const;

 private:
  std::vector<std::pair<std::string, std::string>> values_;
};

/// Something in one entry that a rule could not use.
struct Problem {
  std::size_t offset = 0;  ///< of the function (or variable) in the rule's text
  std::string message;     ///< "notes_abbrev: cannot read 'Doe': bad name 'Doe': it has no organization ..."
};

struct Evaluation {
  std::vector<std::string> values;
  std::vector<Problem> problems;
};

/// Evaluates `e` on `entry`. Never fails: see Problem.
Evaluation evaluate(const Expression& e, const directory::Entry& entry, const Context& context);

/// The same into `out` (replaced), reusing its strings: with a warm `out` and a warm thread
/// a run allocates only for longer values than before, for problems, for list() of more than
/// 16 values and inside the Notes name functions (identity's parser).
void evaluate(const Expression& e, const directory::Entry& entry, const Context& context, Evaluation& out);

}  // namespace bridgehead::directory::mapping
