// directory/mapping/rule_set: one direction's mapping table, `target attribute = expression`
// rule by rule, checked as a whole at `bridgehead check` time (every problem reported, not
// only the first) and applied to each source entry during a run. Reading the table from the
// config file is the config component's; naming and writing the target entry is dirsync's.
#pragma once

#include <span>
#include <string>
#include <vector>

#include <tl/expected.hpp>

#include "directory/entry.hpp"
#include "directory/mapping/evaluate.hpp"
#include "directory/mapping/expression.hpp"

namespace bridgehead::directory::mapping {

/// A place in the config file, 1-based; line 0 when the rule did not come from a file.
struct SourcePosition {
  std::size_t line = 0;
  std::size_t column = 0;
};

struct RuleSource {
  std::string target;       ///< the target attribute: "proxyAddresses"
  std::string text;         ///< the expression
  SourcePosition position;  ///< where `text` starts in the file
};

struct RuleProblem {
  std::string target;
  /// Of the problem itself: the rule's position moved on by `offset` (characters, and lines
  /// at line breaks in the text). Exact when the file holds the text unescaped.
  SourcePosition position;
  std::size_t offset = 0;  ///< in the rule's text, octets
  std::string message;
  /// "line 12, column 20: rule for proxyAddresses: unknown attribute 'mial' (did you mean 'mail'?)"
  std::string describe() const;
};

/// What a rule set made of one source entry.
struct MappedEntry {
  directory::Entry entry;  ///< the target attributes; no DN
  std::vector<RuleProblem> problems;
};

class RuleSet {
 public:
  struct Rule {
    std::string target;
    Expression expression;
    SourcePosition position;
  };

  /// Parses every rule. Fails with every problem, in rule order: a rule that does not parse,
  /// a target that is not an attribute name, a target given twice.
  static tl::expected<RuleSet, std::vector<RuleProblem>> parse(std::span<const RuleSource> rules, const Known& known);

  const std::vector<Rule>& rules() const { return rules_; }

  /// Evaluates every rule on `source`: one attribute per rule that gives a value, in rule
  /// order. Empty values are dropped (LDAP stores no empty directory string), so a rule whose
  /// values are all empty sets nothing. Never fails: problems are the entry's.
  MappedEntry apply(const directory::Entry& source, const Context& context) const;

 private:
  std::vector<Rule> rules_;
};

}  // namespace bridgehead::directory::mapping
