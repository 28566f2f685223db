#include "directory/sync/scope.hpp"

#include <algorithm>
#include <charconv>

#include "core/text.hpp"
#include "directory/dn.hpp"

namespace bridgehead::directory::sync {

struct Filter::Node {
  enum class Kind : std::uint8_t { kAnd, kOr, kNot, kEqual, kPresent, kSubstrings, kGreaterOrEqual, kLessOrEqual };
  Kind kind = Kind::kEqual;
  std::string attribute;
  std::string value;  // kEqual (and ~=), >=, <=: the assertion value, escapes undone
  // kSubstrings: initial, any..., final; initial and final may be empty.
  std::string initial, final_part;
  std::vector<std::string> any;
  std::vector<Node> children;  // kAnd, kOr: any number (RFC 4526); kNot: one
};

namespace {

using Node = Filter::Node;

// Deeper filters are refused, so a hostile or mistyped one cannot exhaust the stack.
constexpr std::size_t kMaxDepth = 64;

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool is_attribute_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
         c == ';' || c == '_';
}

class FilterParser {
 public:
  explicit FilterParser(std::string_view text) : s_(text) {}

  Expected<Node> parse() {
    if (s_.empty()) return error(0, "the filter is empty");
    // A bare item ("objectClass=person") is taken as if parenthesized, as ldapsearch does.
    auto parsed = s_.front() == '(' ? filter(0) : item(s_.size());
    if (!parsed) return fail(std::move(parsed.error()));
    if (i_ != s_.size()) return error(i_, "unexpected '" + shown(i_) + "' after the end of the filter");
    return parsed;
  }

 private:
  tl::unexpected<Error> error(std::size_t at, std::string what) const {
    return fail(Error::permanent(
        ErrorCode::kInvalidArgument, "filter at offset " + std::to_string(at) + ": " + what,
        "write the filter as RFC 4515 says, e.g. (&(objectClass=dominoPerson)(mail=*)); escape '(', ')', '*' "
        "and '\\' in a value as \\28, \\29, \\2a and \\5c"));
  }
  std::string shown(std::size_t at) const { return escape_control(s_.substr(at, 1)); }

  Expected<Node> filter(std::size_t depth) {
    if (depth >= kMaxDepth) return error(i_, "nested deeper than " + std::to_string(kMaxDepth) + " levels");
    if (i_ >= s_.size()) return error(i_, "expected '(' but the filter ends");
    if (s_[i_] != '(') return error(i_, "expected '(' but found '" + shown(i_) + "'");
    ++i_;
    if (i_ >= s_.size()) return error(i_, "expected a filter after '(' but the filter ends");
    Expected<Node> inner;
    const char c = s_[i_];
    if (c == '&' || c == '|') {
      ++i_;
      Node n;
      n.kind = c == '&' ? Node::Kind::kAnd : Node::Kind::kOr;
      while (i_ < s_.size() && s_[i_] == '(') {
        auto child = filter(depth + 1);
        if (!child) return child;
        n.children.push_back(std::move(*child));
      }
      inner = std::move(n);
    } else if (c == '!') {
      ++i_;
      auto child = filter(depth + 1);
      if (!child) return child;
      Node n;
      n.kind = Node::Kind::kNot;
      n.children.push_back(std::move(*child));
      inner = std::move(n);
    } else {
      const std::size_t close = find_close();
      inner = item(close);
    }
    if (!inner) return inner;
    if (i_ >= s_.size()) return error(i_, "expected ')' but the filter ends");
    if (s_[i_] != ')') return error(i_, "expected ')' but found '" + shown(i_) + "'");
    ++i_;
    return inner;
  }

  // The item ends at the first unescaped ')' (a value cannot hold one: it is written \29).
  std::size_t find_close() const {
    const std::size_t close = s_.find(')', i_);
    return close == std::string_view::npos ? s_.size() : close;
  }

  // attr filtertype value, ending at `end`.
  Expected<Node> item(std::size_t end) {
    const std::size_t start = i_;
    while (i_ < end && is_attribute_char(s_[i_])) ++i_;
    if (i_ == start) {
      if (i_ < end && s_[i_] == '(') return error(i_, "'(' where an attribute name was expected");
      return error(
          i_, i_ < end ? "expected an attribute name but found '" + shown(i_) + "'" : "expected an attribute name");
    }
    Node n;
    n.attribute = std::string(s_.substr(start, i_ - start));
    if (i_ >= end) return error(i_, "expected '=', '>=', '<=' or '~=' after " + escape_control(n.attribute));
    const char c = s_[i_];
    if (c == ':') return error(i_, "extensible matches (attr:rule:=value) are not supported");
    if (c == '>' || c == '<' || c == '~') {
      if (i_ + 1 >= end || s_[i_ + 1] != '=') return error(i_ + 1, std::string("expected '=' after '") + c + "'");
      i_ += 2;
      auto v = value(end, false);
      if (!v) return fail(std::move(v.error()));
      n.kind = c == '>' ? Node::Kind::kGreaterOrEqual : c == '<' ? Node::Kind::kLessOrEqual : Node::Kind::kEqual;
      n.value = std::move(*v);
      return n;
    }
    if (c != '=') return error(i_, "expected '=', '>=', '<=' or '~=' but found '" + shown(i_) + "'");
    ++i_;
    if (i_ + 1 == end && s_[i_] == '*') {  // "attr=*"
      ++i_;
      n.kind = Node::Kind::kPresent;
      return n;
    }
    // Equality or substrings: pieces split at unescaped '*'.
    std::vector<std::string> pieces;
    std::vector<std::size_t> starts;  // where each piece begins, for the error of an empty one
    for (;;) {
      starts.push_back(i_);
      auto v = value(end, true);
      if (!v) return fail(std::move(v.error()));
      pieces.push_back(std::move(*v));
      if (i_ < end && s_[i_] == '*') {
        ++i_;
        continue;
      }
      break;
    }
    if (pieces.size() == 1) {
      n.kind = Node::Kind::kEqual;
      n.value = std::move(pieces.front());
      return n;
    }
    n.kind = Node::Kind::kSubstrings;
    n.initial = std::move(pieces.front());
    n.final_part = std::move(pieces.back());
    for (std::size_t k = 1; k + 1 < pieces.size(); ++k) {
      if (pieces[k].empty()) return error(starts[k], "two '*' in a row in a substring filter");
      n.any.push_back(std::move(pieces[k]));
    }
    return n;
  }

  // An assertion value up to `end` (or an unescaped '*' when `stop_at_star`), "\XX" undone.
  Expected<std::string> value(std::size_t end, bool stop_at_star) {
    std::string out;
    while (i_ < end) {
      const char c = s_[i_];
      if (c == '*') {
        if (stop_at_star) break;
        return error(i_, "'*' is not allowed in this value (write \\2a)");
      }
      if (c == '(') return error(i_, "'(' in a value (write \\28)");
      if (c == ')') return error(i_, "')' in a value (write \\29)");
      if (c == '\\') {
        const int hi = i_ + 1 < end ? hex_value(s_[i_ + 1]) : -1;
        const int lo = i_ + 2 < end ? hex_value(s_[i_ + 2]) : -1;
        if (hi < 0 || lo < 0) return error(i_, "'\\' must be followed by two hex digits");
        out += static_cast<char>(hi * 16 + lo);
        i_ += 3;
        continue;
      }
      if (c == '\0') return error(i_, "a NUL octet in a value (write \\00)");
      out += c;
      ++i_;
    }
    return out;
  }

  std::string_view s_;
  std::size_t i_ = 0;
};

// Integers: an optional '-' and digits only (INTEGER syntax, uSNChanged and the like).
std::optional<long long> as_integer(std::string_view text) {
  if (text.empty()) return std::nullopt;
  long long v = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || ptr != text.data() + text.size()) return std::nullopt;
  return v;
}

// -1, 0, 1: as integers when both are, else ASCII case-insensitively as text.
int compare_ordering(std::string_view a, std::string_view b) {
  const auto x = as_integer(a);
  const auto y = as_integer(b);
  if (x && y) return *x < *y ? -1 : *x > *y ? 1 : 0;
  const std::string la = to_lower(a);
  const std::string lb = to_lower(b);
  return la < lb ? -1 : la > lb ? 1 : 0;
}

bool matches_substrings(const Node& n, std::string_view value) {
  const std::string v = to_lower(value);
  const std::string initial = to_lower(n.initial);
  const std::string final_part = to_lower(n.final_part);
  if (v.size() < initial.size() + final_part.size()) return false;
  if (v.compare(0, initial.size(), initial) != 0) return false;
  if (v.compare(v.size() - final_part.size(), final_part.size(), final_part) != 0) return false;
  std::size_t pos = initial.size();
  const std::size_t limit = v.size() - final_part.size();
  for (const std::string& piece : n.any) {
    const std::string p = to_lower(piece);
    const std::size_t at = v.find(p, pos);
    if (at == std::string::npos || at + p.size() > limit) return false;
    pos = at + p.size();
  }
  return true;
}

bool evaluate(const Node& n, const Entry& entry) {
  switch (n.kind) {
    case Node::Kind::kAnd:
      return std::all_of(n.children.begin(), n.children.end(), [&](const Node& c) { return evaluate(c, entry); });
    case Node::Kind::kOr:
      return std::any_of(n.children.begin(), n.children.end(), [&](const Node& c) { return evaluate(c, entry); });
    case Node::Kind::kNot:
      return !evaluate(n.children.front(), entry);
    case Node::Kind::kPresent:
      return entry.has(n.attribute);
    default:
      break;
  }
  const auto* values = entry.find(n.attribute);
  if (values == nullptr) return false;
  return std::any_of(values->begin(), values->end(), [&](const std::string& v) {
    switch (n.kind) {
      case Node::Kind::kEqual:
        return iequals(v, n.value);
      case Node::Kind::kSubstrings:
        return matches_substrings(n, v);
      case Node::Kind::kGreaterOrEqual:
        return compare_ordering(v, n.value) >= 0;
      case Node::Kind::kLessOrEqual:
        return compare_ordering(v, n.value) <= 0;
      default:
        return false;
    }
  });
}

bool is_group(const Entry& entry) {
  const auto* classes = entry.find("objectClass");
  if (classes == nullptr) return false;
  return std::any_of(classes->begin(), classes->end(), [](const std::string& c) {
    return iequals(c, "group") || iequals(c, "groupOfNames") || iequals(c, "groupOfUniqueNames") ||
           iequals(c, "dominoGroup");
  });
}

Expected<Dn> parse_setting_dn(std::string_view what, const std::string& text) {
  auto dn = Dn::parse(text);
  if (!dn) {
    return fail(Error::permanent(ErrorCode::kInvalidArgument,
                                 std::string(what) + " " + escape_control(text) + " is not a DN: " + dn.error().message,
                                 "write it as RFC 4514 says, e.g. ou=Sales,o=Acme"));
  }
  return dn;
}

}  // namespace

Expected<Filter> Filter::parse(std::string_view text) {
  auto root = FilterParser(text).parse();
  if (!root) return fail(std::move(root.error()));
  Filter f;
  f.text_ = std::string(text);
  f.root_ = std::make_shared<const Node>(std::move(*root));
  return f;
}

bool Filter::matches(const Entry& entry) const { return root_ == nullptr || evaluate(*root_, entry); }

Expected<Scope> Scope::make(const ScopeSettings& settings) {
  Scope scope;
  scope.settings_ = settings;
  for (const std::string& c : settings.include) {
    auto dn = parse_setting_dn("include container", c);
    if (!dn) return fail(std::move(dn.error()));
    scope.include_.push_back(std::move(*dn));
  }
  for (const std::string& c : settings.exclude) {
    auto dn = parse_setting_dn("exclude container", c);
    if (!dn) return fail(std::move(dn.error()));
    scope.exclude_.push_back(std::move(*dn));
  }
  // A group to ignore is named by its DN when it has an '=' (and parses as one), else by cn.
  for (const std::string& g : settings.ignore_groups) {
    if (g.find('=') == std::string::npos) {
      scope.ignore_group_cns_.push_back(g);
      continue;
    }
    auto dn = parse_setting_dn("ignored group", g);
    if (!dn) return fail(std::move(dn.error()));
    scope.ignore_group_dns_.push_back(std::move(*dn));
  }
  if (!settings.filter.empty()) {
    auto filter = Filter::parse(settings.filter);
    if (!filter) return fail(std::move(filter.error()));
    scope.filter_ = std::move(*filter);
  }
  return scope;
}

std::optional<std::string> Scope::excludes(const Entry& entry) const {
  auto dn = Dn::parse(entry.dn());
  if (!dn) return "its DN " + escape_control(entry.dn()) + " does not parse: " + dn.error().message;
  for (std::size_t k = 0; k < exclude_.size(); ++k) {
    if (dn->is_within(exclude_[k])) return "below excluded container " + settings_.exclude[k];
  }
  if (!include_.empty() &&
      std::none_of(include_.begin(), include_.end(), [&](const Dn& base) { return dn->is_within(base); })) {
    std::string list;
    for (const std::string& c : settings_.include) list += (list.empty() ? "" : "; ") + c;
    return "not below an included container (" + list + ")";
  }
  if (is_group(entry)) {
    for (std::size_t k = 0; k < ignore_group_dns_.size(); ++k) {
      if (*dn == ignore_group_dns_[k]) return "ignored group " + escape_control(entry.dn());
    }
    const auto* cns = entry.find("cn");
    for (const std::string& name : ignore_group_cns_) {
      if (cns != nullptr &&
          std::any_of(cns->begin(), cns->end(), [&](const std::string& cn) { return iequals(cn, name); })) {
        return "ignored group " + escape_control(entry.dn());
      }
    }
  }
  if (filter_ && !filter_->matches(entry)) return "does not match filter " + escape_control(filter_->text());
  return std::nullopt;
}

}  // namespace bridgehead::directory::sync
