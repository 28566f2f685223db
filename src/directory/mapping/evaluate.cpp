#include "directory/mapping/evaluate.hpp"

#include <algorithm>
#include <deque>
#include <optional>
#include <span>
#include <unordered_set>

#include <fmt/format.h>

#include "core/text.hpp"
#include "directory/mapping/text_functions.hpp"

namespace bridgehead::directory::mapping {

void Context::set(std::string_view name, std::string value) {
  for (auto& [n, v] : values_) {
    if (iequals(n, name)) {
      v = std::move(value);
      return;
    }
  }
  values_.emplace_back(std::string(name), std::move(value));
}

const std::string* Context::find(std::string_view name) const {
  for (const auto& [n, v] : values_) {
    if (iequals(n, name)) return &v;
  }
  return nullptr;
}

namespace {

constexpr std::size_t kShownValue = 80;  // octets of a bad value quoted in a problem
constexpr std::size_t kListScan = 16;    // list() compares pairwise up to this many values

// Working memory of one thread's evaluations, kept between them so that a run over many
// entries stops allocating once it has seen its largest entry. Values are views: into the
// entry, the expression, the context, or `strings`, whose elements a deque never moves.
struct Scratch {
  std::vector<std::string_view> values;
  std::vector<std::pair<std::size_t, std::size_t>> ranges;  // concat's arguments, a stack
  std::deque<std::string> strings;
  std::size_t used = 0;

  std::string& fresh() {
    if (used == strings.size()) strings.emplace_back();
    std::string& s = strings[used++];
    s.clear();
    return s;
  }
  void reset() {
    values.clear();
    ranges.clear();
    used = 0;
  }
};

thread_local Scratch scratch;

struct CaseHash {
  std::size_t operator()(std::string_view s) const {
    std::size_t h = 1469598103934665603ULL;
    for (char c : s) h = (h ^ static_cast<unsigned char>(to_lower(c))) * 1099511628211ULL;
    return h;
  }
};
struct CaseEqual {
  bool operator()(std::string_view a, std::string_view b) const { return iequals(a, b); }
};

class Evaluator {
 public:
  Evaluator(const Expression& e, const directory::Entry& entry, const Context& context, Scratch& s,
            std::vector<Problem>& problems)
      : e_(e), entry_(entry), context_(context), s_(s), problems_(problems) {}

  // Pushes the values of `n` on s_.values and returns where they start; they end at the top.
  std::size_t eval(const Node& n) {
    const std::size_t base = s_.values.size();
    switch (n.kind) {
      case Node::Kind::kText:
      case Node::Kind::kNumber:
        s_.values.push_back(n.text);
        break;
      case Node::Kind::kDn:
        if (!entry_.dn().empty()) s_.values.push_back(entry_.dn());
        break;
      case Node::Kind::kAttribute:
        if (const auto* values = entry_.find(n.text)) {
          for (const auto& v : *values) s_.values.push_back(v);
        }
        break;
      case Node::Kind::kVariable:
        if (const auto* v = context_.find(n.text)) {
          s_.values.push_back(*v);
        } else {
          problem(n, fmt::format("${} has no value in this run", n.text));
        }
        break;
      case Node::Kind::kCall:
        call(n, base);
        break;
    }
    return base;
  }

 private:
  std::size_t top() const { return s_.values.size(); }
  void drop_to(std::size_t size) { s_.values.resize(size); }
  // Removes [from, to) and moves what is above it down.
  void remove(std::size_t from, std::size_t to) {
    s_.values.erase(s_.values.begin() + static_cast<std::ptrdiff_t>(from),
                    s_.values.begin() + static_cast<std::ptrdiff_t>(to));
  }

  void problem(const Node& n, std::string message) { problems_.push_back(Problem{n.offset, std::move(message)}); }

  static std::string shown(std::string_view v) {
    const bool cut = v.size() > kShownValue;
    return escape_control(v.substr(0, kShownValue)) + (cut ? "..." : "");
  }

  // A parameter's first value; nullopt (and a problem) when it has none.
  std::optional<std::string_view> text_arg(const Node& n, std::size_t i, std::string_view what) {
    const std::size_t at = eval(e_.argument(n, i));
    std::optional<std::string_view> v;
    if (top() > at) v = s_.values[at];
    drop_to(at);
    if (!v) problem(n, fmt::format("{}: the {} has no value", function_name(n.function), what));
    return v;
  }

  std::optional<std::size_t> number_arg(const Node& n, std::size_t i, std::string_view what, std::size_t min) {
    const Node& a = e_.argument(n, i);
    if (a.kind == Node::Kind::kNumber) return a.number;  // checked when parsed
    const auto v = text_arg(n, i, what);
    if (!v) return std::nullopt;
    const bool digits =
        !v->empty() && v->size() <= 7 && std::all_of(v->begin(), v->end(), [](char c) { return c >= '0' && c <= '9'; });
    const std::size_t number = digits ? std::stoul(std::string(*v)) : 0;
    if (!digits || number < min) {
      problem(n, fmt::format("{}: the {} '{}' is not a whole number{}", function_name(n.function), what, shown(*v),
                             min > 0 ? fmt::format(" from {}", min) : std::string()));
      return std::nullopt;
    }
    return number;
  }

  // Replaces the values of the first argument by f's result for each; f(in, out, why) -> Outcome.
  template <typename F>
  void map_values(const Node& n, std::size_t base, F f) {
    eval(e_.argument(n, 0));
    const std::size_t end = top();
    std::string why;
    for (std::size_t i = base; i < end; ++i) {
      const std::string_view in = s_.values[i];
      std::string& out = s_.fresh();
      switch (f(in, out, why)) {
        case Outcome::kValue:
          s_.values.push_back(out);
          break;
        case Outcome::kNoValue:
          break;
        case Outcome::kBad:
          problem(n, fmt::format("{}: cannot use '{}': {}", function_name(n.function), shown(in), why));
          break;
      }
    }
    remove(base, end);
  }

  // For the functions that fail only on bad UTF-8.
  template <typename F>
  void map_utf8(const Node& n, std::size_t base, F f) {
    map_values(n, base, [&f](std::string_view in, std::string& out, std::string& why) {
      if (f(in, out)) return Outcome::kValue;
      why = "it is not valid UTF-8";
      return Outcome::kBad;
    });
  }

  static auto notes_name_as(NameForm form) {
    return [form](std::string_view in, std::string& out, std::string& why) { return notes_name(in, form, out, why); };
  }
  static auto name_part_of(NamePart part) {
    return [part](std::string_view in, std::string& out, std::string& why) { return name_part(in, part, out, why); };
  }

  void call(const Node& n, std::size_t base) {
    switch (n.function) {
      case Function::kConcat:
        return concat(n, base);
      case Function::kList:
        return list(n, base);
      case Function::kLower:
        return map_utf8(n, base, lower_text);
      case Function::kUpper:
        return map_utf8(n, base, upper_text);
      case Function::kProper:
        return map_utf8(n, base, proper_text);
      case Function::kLeft: {
        const auto count = number_arg(n, 1, "count", 0);
        if (!count) return;
        return map_utf8(n, base, [c = *count](std::string_view in, std::string& out) { return left_text(in, c, out); });
      }
      case Function::kSubstr: {
        const auto start = number_arg(n, 1, "start", 1);
        if (!start) return;
        std::optional<std::size_t> count = std::string_view::npos;
        if (n.arg_count == 3) count = number_arg(n, 2, "count", 0);
        if (!count) return;
        return map_utf8(n, base, [s = *start, c = *count](std::string_view in, std::string& out) {
          return substr_text(in, s, c, out);
        });
      }
      case Function::kStrip: {
        std::optional<std::string_view> chars = std::string_view();
        if (n.arg_count == 2) chars = text_arg(n, 1, "set of characters");
        if (!chars) return;
        return map_utf8(n, base,
                        [c = *chars](std::string_view in, std::string& out) { return strip_text(in, c, out); });
      }
      case Function::kReplace: {
        const auto from = text_arg(n, 1, "text to replace");
        const auto to = text_arg(n, 2, "replacement");
        if (!from || !to) return;
        if (from->empty()) return problem(n, "replace: the text to replace is empty");
        return map_values(n, base, [f = *from, t = *to](std::string_view in, std::string& out, std::string&) {
          replace_text(in, f, t, out);
          return Outcome::kValue;
        });
      }
      case Function::kIfEmpty: {
        eval(e_.argument(n, 0));
        const bool has_value = std::any_of(s_.values.begin() + static_cast<std::ptrdiff_t>(base), s_.values.end(),
                                           [](std::string_view v) { return !v.empty(); });
        if (has_value) return;
        drop_to(base);
        eval(e_.argument(n, 1));
        return;
      }
      case Function::kIsEqual:
        return isequal(n, base);
      case Function::kFirst:
        eval(e_.argument(n, 0));
        drop_to(std::min(top(), base + 1));
        return;
      case Function::kNotesAbbrev:
        return map_values(n, base, notes_name_as(NameForm::kAbbreviated));
      case Function::kNotesCanonical:
        return map_values(n, base, notes_name_as(NameForm::kCanonical));
      case Function::kX500:
        return map_values(n, base, notes_name_as(NameForm::kX500));
      case Function::kNameFirst:
        return map_values(n, base, name_part_of(NamePart::kFirst));
      case Function::kNameLast:
        return map_values(n, base, name_part_of(NamePart::kLast));
    }
  }

  void concat(const Node& n, std::size_t base) {
    const std::size_t frame = s_.ranges.size();
    bool missing = false;
    std::size_t results = 1;
    std::size_t multi_min = 0;
    std::size_t multi_max = 0;
    for (std::size_t i = 0; i < n.arg_count; ++i) {
      const std::size_t at = eval(e_.argument(n, i));
      const std::size_t count = top() - at;
      s_.ranges.emplace_back(at, count);
      missing = missing || count == 0;
      if (count > 1) {
        multi_min = multi_min == 0 ? count : std::min(multi_min, count);
        multi_max = std::max(multi_max, count);
      }
    }
    const std::size_t end = top();
    if (multi_min > 0) results = multi_min;
    if (missing) results = 0;
    if (!missing && multi_min != multi_max) {
      problem(n, fmt::format("concat: its multi-valued arguments have {} and {} values; only the first {} are paired",
                             multi_min, multi_max, multi_min));
    }
    for (std::size_t k = 0; k < results; ++k) {
      std::string& out = s_.fresh();
      for (std::size_t r = frame; r < s_.ranges.size(); ++r) {
        const auto [at, count] = s_.ranges[r];
        out += s_.values[count == 1 ? at : at + k];
      }
      s_.values.push_back(out);
    }
    s_.ranges.resize(frame);
    remove(base, end);
  }

  void list(const Node& n, std::size_t base) {
    for (std::size_t i = 0; i < n.arg_count; ++i) eval(e_.argument(n, i));
    std::size_t kept = base;
    if (top() - base <= kListScan) {
      for (std::size_t i = base; i < top(); ++i) {
        const std::string_view v = s_.values[i];
        const bool seen = std::any_of(s_.values.begin() + static_cast<std::ptrdiff_t>(base),
                                      s_.values.begin() + static_cast<std::ptrdiff_t>(kept),
                                      [v](std::string_view k) { return iequals(k, v); });
        if (!seen) s_.values[kept++] = v;
      }
    } else {
      std::unordered_set<std::string_view, CaseHash, CaseEqual> seen;
      for (std::size_t i = base; i < top(); ++i) {
        if (seen.insert(s_.values[i]).second) s_.values[kept++] = s_.values[i];
      }
    }
    drop_to(kept);
  }

  void isequal(const Node& n, std::size_t base) {
    eval(e_.argument(n, 0));
    const std::size_t b_at = eval(e_.argument(n, 1));
    const std::size_t end = top();
    // No values count as the one value "", so isequal(x, '', ...) asks whether x is empty.
    auto values = [this](std::size_t from, std::size_t to) {
      return from == to ? std::span<const std::string_view>(&kEmpty, 1)
                        : std::span<const std::string_view>(s_.values.data() + from, to - from);
    };
    bool equal = false;
    for (std::string_view a : values(base, b_at)) {
      for (std::string_view b : values(b_at, end)) equal = equal || iequals(a, b);
    }
    drop_to(base);
    eval(e_.argument(n, equal ? 2 : 3));
  }

  static constexpr std::string_view kEmpty{};

  const Expression& e_;
  const directory::Entry& entry_;
  const Context& context_;
  Scratch& s_;
  std::vector<Problem>& problems_;
};

}  // namespace

void evaluate(const Expression& e, const directory::Entry& entry, const Context& context, Evaluation& out) {
  out.problems.clear();
  Scratch& s = scratch;
  s.reset();
  Evaluator(e, entry, context, s, out.problems).eval(e.root());
  out.values.resize(s.values.size());
  for (std::size_t i = 0; i < s.values.size(); ++i) out.values[i].assign(s.values[i]);
  s.reset();
}

Evaluation evaluate(const Expression& e, const directory::Entry& entry, const Context& context) {
  Evaluation out;
  evaluate(e, entry, context, out);
  return out;
}

}  // namespace bridgehead::directory::mapping
