#include "directory/mapping/rule_set.hpp"

#include <fmt/format.h>

#include "core/text.hpp"

namespace bridgehead::directory::mapping {
namespace {

// Columns count characters, as editors show them, not octets.
SourcePosition advance(SourcePosition start, std::string_view text, std::size_t offset) {
  if (start.line == 0) return start;
  SourcePosition p = start;
  const auto before = text.substr(0, offset);
  for (char c : before) {
    if (c == '\n') {
      ++p.line;
      p.column = 1;
    } else if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) {
      ++p.column;
    }
  }
  return p;
}

RuleProblem problem_at(const std::string& target, SourcePosition start, std::string_view text, std::size_t offset,
                       std::string message) {
  RuleProblem p;
  p.target = target;
  p.position = advance(start, text, offset);
  p.offset = offset;
  p.message = std::move(message);
  return p;
}

}  // namespace

std::string RuleProblem::describe() const {
  const auto where = position.line == 0 ? fmt::format("offset {}", offset)
                                        : fmt::format("line {}, column {}", position.line, position.column);
  return fmt::format("{}: rule for {}: {}", where, escape_control(target), message);
}

tl::expected<RuleSet, std::vector<RuleProblem>> RuleSet::parse(std::span<const RuleSource> rules, const Known& known) {
  RuleSet set;
  std::vector<RuleProblem> problems;
  for (std::size_t i = 0; i < rules.size(); ++i) {
    const RuleSource& r = rules[i];
    if (!is_attribute_description(r.target)) {
      problems.push_back(problem_at(r.target, r.position, r.text, 0,
                                    fmt::format("the target '{}' is not an attribute name (a letter, then letters, "
                                                "digits and '-', options after ';')",
                                                escape_control(r.target))));
    }
    for (std::size_t j = 0; j < i; ++j) {
      if (iequals(rules[j].target, r.target)) {
        const auto first = rules[j].position.line == 0 ? fmt::format("rule {}", j + 1)
                                                       : fmt::format("line {}", rules[j].position.line);
        problems.push_back(problem_at(r.target, r.position, r.text, 0,
                                      fmt::format("{} has a rule already ({})", escape_control(r.target), first)));
        break;
      }
    }
    auto e = mapping::parse(r.text, known);
    if (!e) {
      problems.push_back(problem_at(r.target, r.position, r.text, e.error().offset, std::move(e.error().message)));
      continue;
    }
    set.rules_.push_back(Rule{r.target, std::move(*e), r.position});
  }
  if (!problems.empty()) return tl::unexpected(std::move(problems));
  return set;
}

MappedEntry RuleSet::apply(const directory::Entry& source, const Context& context) const {
  MappedEntry mapped;
  Evaluation evaluation;
  for (const Rule& rule : rules_) {
    evaluate(rule.expression, source, context, evaluation);
    std::vector<std::string> values;
    for (auto& v : evaluation.values) {
      if (!v.empty()) values.push_back(std::move(v));
    }
    mapped.entry.set(rule.target, std::move(values));
    for (auto& p : evaluation.problems) {
      mapped.problems.push_back(
          problem_at(rule.target, rule.position, rule.expression.text(), p.offset, std::move(p.message)));
    }
  }
  return mapped;
}

}  // namespace bridgehead::directory::mapping
