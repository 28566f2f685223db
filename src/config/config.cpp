#include "config/config.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <toml++/toml.h>

#include "config/settings.hpp"
#include "core/text.hpp"
#include "directory/mapping/default_rules.hpp"

namespace bridgehead::config {

namespace fs = std::filesystem;
using detail::Position;
using detail::Setting;
using detail::Type;
using detail::Value;

std::string Problem::describe() const {
  if (line == 0) return fmt::format("{}: {}", file, message);
  return fmt::format("{}:{}:{}: {}", file, line, column, message);
}

namespace {

Position pos_of(const toml::source_region& r) {
  return {static_cast<int>(r.begin.line), static_cast<int>(r.begin.column)};
}

std::string_view kind_of(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a floating-point number";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::date:
    case toml::node_type::time:
    case toml::node_type::date_time:
      return "a date or time";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

// "The largest number of X." -> "the largest number of X", to follow "set it to".
std::string as_phrase(std::string_view doc) {
  std::string s(doc);
  if (!s.empty() && s.back() == '.') s.pop_back();
  if (!s.empty()) s[0] = to_lower(s[0]);
  return s;
}

std::string quoted_list(std::span<const std::string_view> items) {
  std::string out;
  for (std::size_t i = 0; i < items.size(); ++i) out += fmt::format("{}{}", i ? ", " : "", items[i]);
  return out;
}

// The closest candidate within a distance that still reads as a typo, not another word.
std::optional<std::string_view> closest(std::string_view word, const std::vector<std::string_view>& candidates) {
  std::optional<std::string_view> best;
  std::size_t best_distance = std::max<std::size_t>(1, word.size() / 3) + 1;
  for (std::string_view c : candidates) {
    std::size_t d = edit_distance(word, c);
    if (d < best_distance) {
      best_distance = d;
      best = c;
    }
  }
  return best;
}

bool is_wildcard(const std::string& host) { return host == "0.0.0.0" || host == "::"; }

bool is_ip_address(const std::string& host) {
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

std::string endpoint_text(const Endpoint& e) {
  return e.host.find(':') != std::string::npos ? fmt::format("[{}]:{}", e.host, e.port)
                                               : fmt::format("{}:{}", e.host, e.port);
}

std::string machine_hostname() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "localhost";
  return to_lower(buf);
}

// What one [[system]] table held, with positions, for the checks across settings.
struct SystemSource {
  Position pos;
  std::string label;  // `system "exchange"`, or `system #2` while its name is unusable
  std::map<std::string, Value, std::less<>> values;
  std::map<std::string, bool, std::less<>> seen;
  bool has_delivery = false;
  bool has_directory = false;
  Position directory_pos;  // of the [system.directory] header
  std::vector<directory::mapping::RuleSource> rules;
  std::vector<directory::mapping::RuleSource> group_rules;
  const Value* get(std::string_view key) const {
    auto it = values.find(key);
    return it == values.end() ? nullptr : &it->second;
  }
};

class Loader {
 public:
  Loader(std::string file, fs::path base_dir) : file_(std::move(file)), base_dir_(std::move(base_dir)) {}

  LoadResult run(std::string_view text);

 private:
  void problem(Position p, std::string message) {
    problems_.push_back(Problem{file_, p.line, p.column, std::move(message)});
  }
  void walk(const toml::table& table, const std::string& section, SystemSource* sys);
  void read_system(const toml::table& table, std::size_t index);
  void read_rules(const toml::table& table, std::string_view header, std::vector<directory::mapping::RuleSource>& out,
                  const SystemSource& sys);
  Position text_start(const toml::node& string_node) const;
  void check_readable(const Value& v, const std::string& name, std::string_view what, std::string_view remedy = {});
  void unknown(std::string_view key, const std::string& section, bool is_table, Position pos);
  std::optional<Value> read(const Setting& s, const toml::node& n, const SystemSource* sys);
  std::optional<Value> read_default(const Setting& s);
  std::string display(const Setting& s, const SystemSource* sys) const;
  void fill_defaults();
  Config build();
  void check_across(const Config& cfg);
  void check_system(const Config& cfg, std::size_t i);
  void check_directory(const Config& cfg, std::size_t i);
  void check_rules(const Config& cfg, std::size_t i);
  const Value* global(std::string_view key) const {
    auto it = global_.find(key);
    return it == global_.end() ? nullptr : &it->second;
  }

  std::string file_;
  fs::path base_dir_;
  std::vector<std::string_view> lines_;  // of the text, for where a rule's expression starts
  std::vector<Problem> problems_;
  std::map<std::string, Value, std::less<>> global_;
  std::map<std::string, bool, std::less<>> global_seen_;
  std::vector<SystemSource> systems_;
};

LoadResult Loader::run(std::string_view text) {
  toml::table root;
  try {
    root = toml::parse(text, file_);
  } catch (const toml::parse_error& e) {
    // Anything after a syntax error would be guesswork about what was meant.
    problem(pos_of(e.source()), fmt::format("TOML syntax error: {}; correct the syntax at this position (the example "
                                            "in docs/configuration.md shows each kind of value)",
                                            e.description()));
    return {std::nullopt, std::move(problems_)};
  }
  for (std::size_t start = 0; start <= text.size();) {
    std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    lines_.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  walk(root, "", nullptr);
  fill_defaults();
  Config cfg = build();
  check_across(cfg);
  std::stable_sort(problems_.begin(), problems_.end(), [](const Problem& a, const Problem& b) {
    return std::tuple(a.line == 0, a.line, a.column) < std::tuple(b.line == 0, b.line, b.column);
  });
  LoadResult result;
  if (problems_.empty()) result.config = std::move(cfg);
  result.problems = std::move(problems_);
  return result;
}

void Loader::walk(const toml::table& table, const std::string& section, SystemSource* sys) {
  for (auto&& [k, node] : table) {
    const std::string key(k.str());
    const std::string path = section.empty() ? key : section + "." + key;
    const Position kpos = pos_of(k.source());
    // Only a quoted key can hold these, and it must not reach a setting by the back door
    // ("system[]".name would be a system setting outside any [[system]]).
    if (key.find_first_of(".[]") != std::string::npos) {
      unknown(key, section, node.is_table(), kpos);
      continue;
    }
    if (section.empty() && key == "system") {
      if (const toml::array* arr = node.as_array(); arr && arr->is_array_of_tables()) {
        for (const toml::node& t : *arr) read_system(*t.as_table(), systems_.size());
      } else if (node.is_table()) {
        problem(kpos,
                "[system] is a single table; write [[system]] (two brackets) before each "
                "system, and give each its own [system.delivery]");
      } else {
        problem(kpos, fmt::format("system must be a list of [[system]] tables, got {}; write "
                                  "[[system]] followed by its keys for each system",
                                  kind_of(node)));
      }
      continue;
    }
    if (const detail::Section* sec = detail::find_section(path)) {
      if (const toml::table* sub = node.as_table()) {
        if (sys && path == "system[].delivery") sys->has_delivery = true;
        if (sys && path == "system[].directory") {
          sys->has_directory = true;
          sys->directory_pos = kpos;
        }
        if (sys && !sec->free_keys_example.empty()) {
          read_rules(*sub, sec->header, path == "system[].directory.group_rules" ? sys->group_rules : sys->rules, *sys);
        } else {
          walk(*sub, path, sys);
        }
      } else {
        problem(kpos, fmt::format("{} must be a table, got {}; write a section {} with its keys "
                                  "below it",
                                  key, kind_of(node), sec->header));
      }
      continue;
    }
    if (const Setting* s = detail::find_setting(path)) {
      (sys ? sys->seen : global_seen_)[path] = true;
      if (std::optional<Value> v = read(*s, node, sys)) (sys ? sys->values : global_)[path] = std::move(*v);
      continue;
    }
    unknown(key, section, node.is_table() || node.is_array_of_tables(), kpos);
  }
}

void Loader::read_system(const toml::table& table, std::size_t index) {
  SystemSource sys;
  sys.pos = pos_of(table.source());
  sys.label = fmt::format("system #{}", index + 1);
  // The name goes into every message about this system, so take it before anything else.
  if (const toml::node* n = table.get("name"); n && n->is_string()) {
    const std::string& name = n->as_string()->get();
    if (detail::check_system_name(name).empty()) sys.label = fmt::format("system \"{}\"", name);
  }
  walk(table, "system[]", &sys);
  systems_.push_back(std::move(sys));
}

void Loader::read_rules(const toml::table& table, std::string_view header,
                        std::vector<directory::mapping::RuleSource>& out, const SystemSource& sys) {
  for (auto&& [k, node] : table) {
    const std::string target(k.str());
    if (const toml::value<std::string>* text = node.as_string()) {
      directory::mapping::RuleSource rule;
      rule.target = target;
      rule.text = text->get();
      const Position p = text_start(node);
      rule.position = {static_cast<std::size_t>(p.line), static_cast<std::size_t>(p.column)};
      out.push_back(std::move(rule));
    } else {
      problem(pos_of(node.source()), fmt::format("rule for {} in {} of {} must be a string, got {}; write it "
                                                 "like {} = \"first(mail)\" (an expression in quotes)",
                                                 target, header, sys.label, kind_of(node), target));
    }
  }
  // A toml++ table is ordered by key; the rules keep the order they are written in.
  std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return std::tie(a.position.line, a.position.column) < std::tie(b.position.line, b.position.column);
  });
}

// toml++ places a string at its opening quote; a rule's position is its text's first
// character: past the quote, or past """ and the line break right after it, which TOML drops.
Position Loader::text_start(const toml::node& string_node) const {
  Position p = pos_of(string_node.source());
  if (p.line < 1 || static_cast<std::size_t>(p.line) > lines_.size()) return p;
  const std::string_view line = lines_[static_cast<std::size_t>(p.line) - 1];
  // Columns count characters (UTF-8 sequences), as toml++ and the rule parser do.
  std::size_t at = 0;
  for (int col = 1; col < p.column && at < line.size(); ++col) {
    ++at;
    while (at < line.size() && (static_cast<unsigned char>(line[at]) & 0xC0) == 0x80) ++at;
  }
  const std::string_view rest = line.substr(at);
  if (rest.starts_with(R"(""")") || rest.starts_with("'''")) {
    if (trim(rest.substr(3), " \t\r").empty()) return {p.line + 1, 1};
    return {p.line, p.column + 3};
  }
  return {p.line, p.column + 1};
}

void Loader::unknown(std::string_view key, const std::string& section, bool is_table, Position pos) {
  // Candidates are what may appear right here: the settings of this section and its subsections.
  std::vector<std::string_view> names;
  for (const Setting& s : detail::settings())
    if (s.section() == section) names.push_back(s.name());
  std::map<std::string_view, std::string_view> headers;
  for (const detail::Section& sec : detail::sections()) {
    std::string_view p = sec.path;
    std::size_t dot = p.rfind('.');
    std::string_view parent = dot == std::string_view::npos ? std::string_view() : p.substr(0, dot);
    std::string_view name = dot == std::string_view::npos ? p : p.substr(dot + 1);
    if (name.ends_with("[]")) name.remove_suffix(2);
    if (parent == section) {
      names.push_back(name);
      headers[name] = sec.header;
    }
  }
  const detail::Section* here = detail::find_section(section);
  std::string where = here ? fmt::format("in {}", here->header) : "at the top level";
  std::string msg = section.empty() && is_table ? fmt::format("unknown section [{}]", key)
                                                : fmt::format("unknown key \"{}\" {}", key, where);
  if (std::optional<std::string_view> best = closest(key, names)) {
    auto h = headers.find(*best);
    msg += h != headers.end() && section.empty() ? fmt::format("; did you mean {}?", h->second)
                                                 : fmt::format("; did you mean \"{}\"?", *best);
    problem(pos, std::move(msg));
    return;
  }
  for (const Setting& s : detail::settings()) {
    if (s.name() == key) {
      msg += fmt::format("; it belongs in {}, move it there", detail::find_section(s.section())->header);
      problem(pos, std::move(msg));
      return;
    }
  }
  std::string known;
  for (std::size_t i = 0; i < names.size(); ++i) known += fmt::format("{}{}", i ? ", " : "", names[i]);
  msg += fmt::format("; correct its spelling or remove it (known here: {})", known);
  problem(pos, std::move(msg));
}

std::string Loader::display(const Setting& s, const SystemSource* sys) const {
  if (!sys) return std::string(s.key);
  return fmt::format("{} of {}", s.key.substr(std::string_view("system[].").size()), sys->label);
}

std::optional<Value> Loader::read(const Setting& s, const toml::node& n, const SystemSource* sys) {
  Value v;
  v.pos = pos_of(n.source());
  v.from_file = true;
  const std::string name = display(s, sys);
  auto type_error = [&](std::string_view expected) -> std::optional<Value> {
    problem(v.pos, fmt::format("{} must be {}, got {}; write it like {} = {}", name, expected, kind_of(n), s.name(),
                               s.example));
    return std::nullopt;
  };
  auto out_of_bounds = [&](std::string_view got, std::string_view lo, std::string_view hi) {
    problem(v.pos,
            fmt::format("{} must be between {} and {}, got {}; set it to {}", name, lo, hi, got, as_phrase(s.doc)));
  };

  switch (s.type) {
    case Type::kInteger: {
      const toml::value<std::int64_t>* i = n.as_integer();
      if (!i) return type_error("an integer");
      const std::int64_t x = i->get();
      if (x < 0 || static_cast<std::uint64_t>(x) < s.min || static_cast<std::uint64_t>(x) > s.max) {
        out_of_bounds(std::to_string(x), std::to_string(s.min), std::to_string(s.max));
        return std::nullopt;
      }
      v.number = static_cast<std::uint64_t>(x);
      return v;
    }
    case Type::kSize: {
      std::string got;
      if (const toml::value<std::int64_t>* i = n.as_integer()) {
        if (i->get() < 0) {
          out_of_bounds(std::to_string(i->get()), detail::format_size(s.min), detail::format_size(s.max));
          return std::nullopt;
        }
        v.number = static_cast<std::uint64_t>(i->get());
        got = std::to_string(i->get());
      } else if (const toml::value<std::string>* str = n.as_string()) {
        std::string why;
        std::optional<std::uint64_t> bytes = detail::parse_size(str->get(), why);
        if (!bytes) {
          problem(v.pos, fmt::format("{}: {}", name, why));
          return std::nullopt;
        }
        v.number = *bytes;
        got = fmt::format("\"{}\"", str->get());
      } else {
        return type_error(R"(a size (a number of bytes, or a string such as "50MiB"))");
      }
      if (v.number < s.min || v.number > s.max) {
        out_of_bounds(fmt::format("{} ({} bytes)", got, v.number), detail::format_size(s.min),
                      detail::format_size(s.max));
        return std::nullopt;
      }
      return v;
    }
    case Type::kStringArray: {
      const toml::array* arr = n.as_array();
      if (!arr) return type_error("an array of strings");
      // A bad entry is reported and left out; the rest still go through the checks across
      // systems, so one typo does not hide a domain that two systems claim.
      for (std::size_t i = 0; i < arr->size(); ++i) {
        const toml::node& e = *arr->get(i);
        const Position epos = pos_of(e.source());
        const toml::value<std::string>* str = e.as_string();
        if (!str) {
          problem(epos, fmt::format("{} must hold only strings, but entry {} is {}; put it in quotes", name, i + 1,
                                    kind_of(e)));
          continue;
        }
        std::string item = s.lowercase ? to_lower(str->get()) : str->get();
        if (s.check) {
          if (std::string why = s.check(item); !why.empty()) {
            problem(epos, fmt::format("{} has \"{}\", which {}; correct it or remove it, e.g. {} = {}", name,
                                      str->get(), why, s.name(), s.example));
            continue;
          }
        }
        v.list.push_back(std::move(item));
        v.list_pos.push_back(epos);
      }
      if (s.required && arr->empty()) {
        problem(v.pos, fmt::format("{} is empty; list at least one, e.g. {} = {}", name, s.name(), s.example));
        return std::nullopt;
      }
      return v;
    }
    case Type::kBool: {
      const toml::value<bool>* b = n.as_boolean();
      if (!b) return type_error("true or false (without quotes)");
      v.flag = b->get();
      return v;
    }
    case Type::kString:
    case Type::kEnum:
    case Type::kPath:
    case Type::kEndpoint:
    case Type::kMode:
      break;
  }

  const toml::value<std::string>* str = n.as_string();
  if (!str) {
    switch (s.type) {
      case Type::kMode:
        return type_error("an octal string in quotes");
      case Type::kEndpoint:
        return type_error("a string \"address:port\"");
      default:
        return type_error("a string");
    }
  }
  const std::string& text = str->get();
  switch (s.type) {
    case Type::kString: {
      v.text = s.lowercase ? to_lower(text) : text;
      if (s.check) {
        if (std::string why = s.check(v.text); !why.empty()) {
          problem(v.pos, fmt::format("{} \"{}\" {}; write it like {} = {}", name, text, why, s.name(), s.example));
          return std::nullopt;
        }
      }
      return v;
    }
    case Type::kEnum: {
      if (std::find(s.allowed.begin(), s.allowed.end(), text) != s.allowed.end()) {
        v.text = text;
        return v;
      }
      std::string msg = fmt::format("{} must be one of {}, got \"{}\"", name, quoted_list(s.allowed), text);
      std::vector<std::string_view> allowed(s.allowed.begin(), s.allowed.end());
      if (std::optional<std::string_view> best = closest(to_lower(text), allowed))
        msg += fmt::format("; did you mean \"{}\"?", *best);
      problem(v.pos, std::move(msg));
      return std::nullopt;
    }
    case Type::kPath: {
      if (text.empty()) {
        problem(v.pos, fmt::format("{} is empty; give a path, or remove the key to use the default", name));
        return std::nullopt;
      }
      fs::path p(text);
      v.text = (p.is_relative() ? base_dir_ / p : p).lexically_normal().string();
      if (v.text.size() > 1 && v.text.back() == '/') v.text.pop_back();
      return v;
    }
    case Type::kEndpoint: {
      std::string why;
      std::optional<Endpoint> ep = detail::parse_endpoint(text, why);
      if (!ep) {
        problem(v.pos, fmt::format("{} \"{}\" {}", name, text, why));
        return std::nullopt;
      }
      v.text = text;
      v.endpoint = std::move(*ep);
      return v;
    }
    case Type::kMode: {
      std::string why;
      std::optional<unsigned> mode = detail::parse_mode(text, why);
      if (!mode) {
        problem(v.pos, fmt::format("{} {}", name, why));
        return std::nullopt;
      }
      v.number = *mode;
      return v;
    }
    default:
      break;
  }
  return std::nullopt;
}

std::optional<Value> Loader::read_default(const Setting& s) {
  // Defaults go through the same reader as the file, so the table cannot hold a default
  // that the file could not.
  const toml::table t = toml::parse(fmt::format("v = {}", s.default_literal()), std::string_view("<default>"));
  std::optional<Value> v = read(s, *t.get("v"), nullptr);
  if (v) {
    v->from_file = false;
    v->pos = {};
  }
  return v;
}

void Loader::fill_defaults() {
  for (const Setting& s : detail::settings()) {
    if (s.in_system()) continue;
    if (!global_seen_.contains(s.key) && !s.default_literal().empty())
      if (std::optional<Value> v = read_default(s)) global_[std::string(s.key)] = std::move(*v);
  }
  for (SystemSource& sys : systems_) {
    if (!sys.has_delivery) {
      problem(sys.pos, fmt::format("{} has no [system.delivery] table; add one after its keys, e.g. "
                                   "[system.delivery] with method = \"smtp\" and address = "
                                   "\"127.0.0.1:2526\", to say where its mail goes",
                                   sys.label));
    }
    for (const Setting& s : detail::settings()) {
      if (!s.in_system() || sys.seen.contains(s.key)) continue;
      // A system without [system.directory] takes no part in dirsync: nothing to default.
      if (s.section().starts_with("system[].directory") && !sys.has_directory) continue;
      if (s.required) {
        if (s.section() == "system[].delivery" && !sys.has_delivery) continue;  // reported above
        problem(sys.pos,
                fmt::format("{} has no {}; add {} = {} ({})", sys.label,
                            s.key.substr(std::string_view("system[].").size()), s.name(), s.example, as_phrase(s.doc)));
      } else if (!s.default_literal().empty()) {
        if (std::optional<Value> v = read_default(s)) sys.values[std::string(s.key)] = std::move(*v);
      }
    }
  }
}

Config Loader::build() {
  Config cfg;
  for (const auto& [key, v] : global_) detail::find_setting(key)->apply(cfg, nullptr, v);
  // Derived defaults: the table documents them; they depend on other settings or the machine.
  if (!global("connector.hostname")) cfg.hostname = machine_hostname();
  if (!global("admin.control_socket")) cfg.control_socket = cfg.state_dir / "control.sock";
  if (!global("spool.dir")) cfg.spool_dir = cfg.state_dir / "spool";
  if (!global("queue.quarantine_dir")) cfg.queue.quarantine_dir = cfg.state_dir / "quarantine";
  if (!global("tracking.file")) cfg.tracking_file = cfg.state_dir / "tracking.jsonl";
  for (const SystemSource& sys : systems_) {
    SystemConfig sc;
    if (sys.has_directory) sc.directory.emplace();
    for (const auto& [key, v] : sys.values) detail::find_setting(key)->apply(cfg, &sc, v);
    if (sc.directory) {
      directory::sync::DirectorySettings& d = *sc.directory;
      d.system = sc.name;
      d.routing_domain = sc.domains.empty() ? std::string() : sc.domains.front();
      if (!sys.get("system[].directory.profile"))
        d.profile = sc.kind == SystemKind::kExchange ? directory::Profile::kExchange : directory::Profile::kDomino;
      d.rules = sys.rules;
      d.group_rules = sys.group_rules;
      cfg.dirsync.directories.push_back(d);
    }
    cfg.systems.push_back(std::move(sc));
  }
  return cfg;
}

void Loader::check_across(const Config& cfg) {
  if (systems_.empty()) {
    problem({},
            "no [[system]] table; a connector connects two mail systems, so add a [[system]] "
            "table for each of them (see docs/configuration.md)");
  } else if (systems_.size() == 1) {
    problem(systems_[0].pos,
            "only one [[system]] is configured; a connector connects two mail "
            "systems, so add a [[system]] table for the other one");
  }

  if (const Value* per_client = global("smtp.max_sessions_per_client")) {
    const Value* total = global("smtp.max_sessions");
    if (total && per_client->number > total->number) {
      problem(per_client->from_file ? per_client->pos : total->pos,
              fmt::format("smtp.max_sessions_per_client ({}) is more than smtp.max_sessions ({}); "
                          "lower max_sessions_per_client or raise max_sessions",
                          per_client->number, total->number));
    }
  }

  const Value* id_file = global("identity.id_file");
  if (const Value* pw = global("identity.id_password_file"); pw && !id_file) {
    problem(pw->pos,
            "identity.id_password_file is set but identity.id_file is not; set id_file to the "
            "connector ID the password opens, or remove id_password_file");
  }
  // Only that the files are there: whether the ID opens and the password file's mode are
  // the identity component's checks (`bridgehead check` runs them).
  for (const char* key : {"identity.id_file", "identity.id_password_file"}) {
    const Value* v = global(key);
    if (!v) continue;
    check_readable(*v, key, "file",
                   std::string_view(key) == "identity.id_file"
                       ? "; create an ID with `bridgehead id create NAME --out FILE`"
                       : "");
  }

  // A longer path cannot be bound: sun_path is a fixed array and needs its terminating NUL.
  constexpr std::size_t kMaxSocketPath = sizeof(sockaddr_un::sun_path) - 1;
  if (const std::string sock = cfg.control_socket.string(); sock.size() > kMaxSocketPath) {
    const Value* where = global("admin.control_socket");
    if (!where || !where->from_file) where = global("connector.state_dir");
    problem(where && where->from_file ? where->pos : Position{},
            fmt::format("the control socket path {} is {} bytes long, but a Unix socket path may "
                        "have at most {}; set admin.control_socket to a shorter path",
                        sock, sock.size(), kMaxSocketPath));
  }

  std::map<std::string, std::size_t> names;
  std::map<std::string, std::size_t> domain_owner;
  for (std::size_t i = 0; i < systems_.size(); ++i) {
    const SystemSource& sys = systems_[i];
    if (const Value* name = sys.get("system[].name")) {
      auto [it, fresh] = names.emplace(name->text, i);
      if (!fresh) {
        problem(name->pos, fmt::format("system name \"{}\" is already used by the system at line {}; "
                                       "give each system its own name",
                                       name->text, systems_[it->second].pos.line));
      }
    }
    if (const Value* domains = sys.get("system[].domains")) {
      for (std::size_t d = 0; d < domains->list.size(); ++d) {
        const std::string& domain = domains->list[d];
        auto [it, fresh] = domain_owner.emplace(domain, i);
        if (fresh) continue;
        if (it->second == i) {
          problem(domains->list_pos[d],
                  fmt::format("domain \"{}\" is listed twice in {}; remove one", domain, sys.label));
        } else {
          const SystemSource& other = systems_[it->second];
          problem(domains->list_pos[d],
                  fmt::format("domain \"{}\" is in both {} (line {}) and {}; a domain belongs to "
                              "exactly one system, so remove it from one of them",
                              domain, other.label, other.get("system[].domains")->pos.line, sys.label));
        }
      }
    }
  }

  for (std::size_t i = 0; i < systems_.size(); ++i) check_system(cfg, i);

  for (std::size_t i = 0; i < systems_.size(); ++i) {
    const SystemSource& sys = systems_[i];
    if (const Value* rcpts = sys.get("system[].recipients")) {
      const Value* own = sys.get("system[].domains");
      for (std::size_t r = 0; r < rcpts->list.size(); ++r) {
        const std::string& address = rcpts->list[r];
        const std::string domain = address.substr(address.rfind('@') + 1);
        if (own && std::find(own->list.begin(), own->list.end(), domain) != own->list.end()) continue;
        if (!own) continue;  // the missing domains are reported already
        auto owner = domain_owner.find(domain);
        if (owner != domain_owner.end()) {
          problem(rcpts->list_pos[r], fmt::format("recipient \"{}\" of {} is in domain \"{}\" of {}; move it to the "
                                                  "recipients of {}",
                                                  address, sys.label, domain, systems_[owner->second].label,
                                                  systems_[owner->second].label));
        } else {
          std::string own_list;
          for (const std::string& d : own->list) own_list += fmt::format("{}{}", own_list.empty() ? "" : ", ", d);
          problem(rcpts->list_pos[r], fmt::format("recipient \"{}\" of {} is in domain \"{}\", which is not one of its "
                                                  "domains ({}); add \"{}\" to its domains or correct the address",
                                                  address, sys.label, domain, own_list, domain));
        }
      }
    }
  }
}

void Loader::check_system(const Config& cfg, std::size_t i) {
  const SystemSource& sys = systems_[i];

  if (const Value* listen = sys.get("system[].listen")) {
    for (std::size_t j = 0; j < i; ++j) {
      const Value* other = systems_[j].get("system[].listen");
      if (!other || other->endpoint.port != listen->endpoint.port) continue;
      if (other->endpoint.host == listen->endpoint.host || is_wildcard(other->endpoint.host) ||
          is_wildcard(listen->endpoint.host)) {
        problem(listen->pos, fmt::format("listen address {} of {} conflicts with {} of {} (line {}); "
                                         "give each system its own port",
                                         endpoint_text(listen->endpoint), sys.label, endpoint_text(other->endpoint),
                                         systems_[j].label, other->pos.line));
        break;
      }
    }
  }

  if (const Value* method = sys.get("system[].delivery.method")) {
    const Value* address = sys.get("system[].delivery.address");
    const Value* path = sys.get("system[].delivery.path");
    const bool network = method->text != "maildir";
    const bool address_seen = sys.seen.contains("system[].delivery.address");
    const bool path_seen = sys.seen.contains("system[].delivery.path");
    if (network && !address_seen) {
      problem(method->pos, fmt::format("delivery of {} uses method \"{}\" but has no address; add "
                                       "address = \"host:port\" of the system's {} server",
                                       sys.label, method->text, method->text == "lmtp" ? "LMTP" : "SMTP"));
    }
    if (network && path) {
      problem(path->pos, fmt::format("delivery.path of {} is not used with method \"{}\"; remove it, "
                                     "or set method = \"maildir\" to deliver into it",
                                     sys.label, method->text));
    }
    if (!network && !path_seen) {
      problem(method->pos, fmt::format("delivery of {} uses method \"maildir\" but has no path; add "
                                       "path = \"maildir/{}\" (the directory of the Maildirs)",
                                       sys.label, cfg.systems[i].name.empty() ? "mail" : cfg.systems[i].name));
    }
    if (!network && address) {
      problem(address->pos, fmt::format("delivery.address of {} is not used with method \"maildir\"; "
                                        "remove it, or set method = \"smtp\" or \"lmtp\" to deliver to it",
                                        sys.label));
    }
    if (network && address) {
      // A server certificate names hosts, rarely IP addresses: with required TLS to an IP and
      // no name to check, every attempt would defer, so say it here rather than in the queue.
      const Value* tls = sys.get("system[].delivery.tls");
      const bool verify_name_seen = sys.seen.contains("system[].delivery.tls_verify_name");
      if (tls && tls->text == "required" && !verify_name_seen && is_ip_address(address->endpoint.host)) {
        problem(address->pos,
                fmt::format("delivery of {} requires TLS from {}, an IP address, but has no tls_verify_name; "
                            "add tls_verify_name = \"the host name in that server's certificate\" (e.g. "
                            "\"mx.{}\"), or give address by that name",
                            sys.label, address->text,
                            cfg.systems[i].domains.empty() ? "example.com" : cfg.systems[i].domains.front()));
      }
      for (const SystemSource& other : systems_) {
        const Value* listen = other.get("system[].listen");
        if (listen && listen->endpoint.port == address->endpoint.port &&
            listen->endpoint.host == address->endpoint.host) {
          problem(address->pos, fmt::format("delivery.address of {} ({}) is the connector's own listener for {}, so "
                                            "mail would loop; set it to the address of the mail server of {}",
                                            sys.label, address->text, other.label, sys.label));
          break;
        }
      }
    }
  }

  const Value* cert = sys.get("system[].tls_cert_file");
  const Value* key = sys.get("system[].tls_key_file");
  if (cert && !sys.seen.contains("system[].tls_key_file")) {
    problem(cert->pos, fmt::format("{} has tls_cert_file but no tls_key_file; add tls_key_file with the "
                                   "certificate's private key, or remove tls_cert_file to run without STARTTLS",
                                   sys.label));
  }
  if (key && !sys.seen.contains("system[].tls_cert_file")) {
    problem(key->pos, fmt::format("{} has tls_key_file but no tls_cert_file; add tls_cert_file with the "
                                  "certificate chain, or remove tls_key_file to run without STARTTLS",
                                  sys.label));
  }
  const Value* client_ca = sys.get("system[].tls_client_ca_file");
  if (client_ca && !cert && !global("identity.id_file")) {
    problem(client_ca->pos, fmt::format("{} has tls_client_ca_file but no certificate to offer STARTTLS with; "
                                        "set identity.id_file (the connector ID) or tls_cert_file and "
                                        "tls_key_file, or remove tls_client_ca_file",
                                        sys.label));
  }
  for (const Value* v : {cert, key, client_ca}) {
    if (!v) continue;
    const char* which = v == cert ? "tls_cert_file" : v == key ? "tls_key_file" : "tls_client_ca_file";
    check_readable(*v, fmt::format("{} of {}", which, sys.label), "PEM file");
  }
  if (sys.has_directory) check_directory(cfg, i);
}

void Loader::check_readable(const Value& v, const std::string& name, std::string_view what, std::string_view remedy) {
  std::error_code ec;
  if (fs::is_directory(v.text, ec)) {
    problem(v.pos, fmt::format("{} is a directory, {}; give the path of the {}", name, v.text, what));
  } else if (access(v.text.c_str(), R_OK) != 0) {
    const int err = errno;
    problem(v.pos, fmt::format("{} cannot be read: {}: {}; check the path (relative paths are relative to "
                               "the config file's directory) and the file's permissions{}",
                               name, v.text, std::strerror(err), remedy));
  }
}

void Loader::check_directory(const Config& cfg, std::size_t i) {
  const SystemSource& sys = systems_[i];
  const directory::sync::DirectorySettings& d = *cfg.systems[i].directory;
  auto get = [&](std::string_view name) { return sys.get(fmt::format("system[].directory.{}", name)); };
  auto name_of = [&](std::string_view name) { return fmt::format("directory.{} of {}", name, sys.label); };
  const Value* uri = get("uri");
  const Value* ldif = get("ldif_file");

  if (cfg.systems[i].kind == SystemKind::kSmtp && !get("profile")) {
    problem(sys.directory_pos, fmt::format("the directory of {} has no profile, and its kind smtp says nothing about "
                                           "what the directory holds; add profile = \"domino\" or profile = "
                                           "\"exchange\"",
                                           sys.label));
  }
  if (!uri && !ldif) {
    problem(sys.directory_pos, fmt::format("the directory of {} has neither uri nor ldif_file; add uri = "
                                           "\"ldap://host:389\" for an LDAP server, or ldif_file = \"FILE\" for "
                                           "an LDIF file",
                                           sys.label));
  }
  if (uri && ldif) {
    problem(std::max(uri->pos, ldif->pos, [](Position a, Position b) { return a.line < b.line; }),
            fmt::format("the directory of {} has both uri and ldif_file; keep the one it is read from", sys.label));
  }
  if (uri && !get("base")) {
    problem(uri->pos, fmt::format("the directory of {} is read from {} but has no base; add base = \"the DN its "
                                  "objects are below\", e.g. \"DC=example,DC=com\" or \"O=Acme\"",
                                  sys.label, uri->text));
  }
  if (ldif) check_readable(*ldif, name_of("ldif_file"), "LDIF file");
  if (const Value* ca = get("ca_file")) check_readable(*ca, name_of("ca_file"), "PEM file");

  const Value* tls = get("tls");
  const Value* bind = get("bind");
  const Value* password = get("password_file");
  const bool ldaps = uri && istarts_with(uri->text, "ldaps://");
  const bool starttls = tls && tls->text == "starttls";
  if (ldaps && starttls) {
    problem(tls->pos, fmt::format("{} is starttls, but uri {} is ldaps://, TLS from the start; remove tls, or "
                                  "use an ldap:// uri with StartTLS",
                                  name_of("tls"), uri->text));
  }
  if (ldif && !uri) {
    // An LDIF source has no connection: say so rather than let a setting seem to work.
    for (const char* key :
         {"tls", "ca_file", "bind", "bind_dn", "password_file", "connect_timeout", "operation_timeout", "page_size"}) {
      const Value* v = get(key);
      if (!v || !v->from_file) continue;
      problem(v->pos,
              fmt::format("{} is used only with an LDAP server (uri), not with ldif_file; remove it", name_of(key)));
    }
  } else if (bind && bind->text == "simple") {
    if (!password) {
      problem(bind->pos, fmt::format("the directory of {} binds simple but has no password_file; add "
                                     "password_file = \"FILE\" with the password on one line (mode 0600)",
                                     sys.label));
    }
    if (!get("bind_dn")) {
      problem(bind->pos, fmt::format("the directory of {} binds simple but has no bind_dn; add bind_dn = \"the DN "
                                     "of the connector's account\"",
                                     sys.label));
    }
  } else if (password) {
    problem(password->pos, fmt::format("{} is used only with bind = \"simple\"; set bind = \"simple\", or remove "
                                       "password_file",
                                       name_of("password_file")));
  }
  if (password && !ldif) check_readable(*password, name_of("password_file"), "password file");
  if (bind && bind->text == "sasl-external" && !ldif) {
    if (!ldaps && !starttls) {
      problem(bind->pos, fmt::format("the directory of {} binds with sasl-external without TLS, but the connector "
                                     "ID's certificate is sent only in a TLS handshake; use an ldaps:// uri or "
                                     "tls = \"starttls\"",
                                     sys.label));
    }
    if (!global("identity.id_file")) {
      problem(bind->pos, fmt::format("the directory of {} binds with sasl-external, which authenticates with the "
                                     "connector ID, but identity.id_file is not set; set it to the connector ID "
                                     "(`bridgehead id create`), or bind simple",
                                     sys.label));
    }
  }

  if (const Value* container = get("contacts_container")) {
    bool other = false;
    for (std::size_t j = 0; j < cfg.systems.size(); ++j) {
      if (j == i || !cfg.systems[j].directory) continue;
      other = true;
      const directory::sync::DirectorySettings& from = *cfg.systems[j].directory;
      if (!sys.rules.empty()) continue;
      if (from.profile == d.profile) {
        problem(container->pos,
                fmt::format("the default rules map Domino persons to Active Directory contacts and back, not {} "
                            "objects of {} into the {} directory of {}; write the rules in "
                            "[system.directory.rules] of {}",
                            from.profile == directory::Profile::kDomino ? "domino" : "exchange", systems_[j].label,
                            d.profile == directory::Profile::kDomino ? "domino" : "exchange", sys.label, sys.label));
      } else if (from.profile == directory::Profile::kDomino && cfg.dirsync.notes_domain.empty()) {
        problem(container->pos,
                fmt::format("the default rules give the contacts of {} in {} a NOTES: proxy address in the Notes "
                            "domain, but dirsync.notes_domain is not set; add notes_domain = \"your Notes "
                            "domain\" to [dirsync]",
                            systems_[j].label, sys.label));
      }
    }
    if (!other) {
      problem(container->pos, fmt::format("{} is where the other system's objects are written, but no other "
                                          "system has a [system.directory] to read them from; add one to it, "
                                          "or remove contacts_container",
                                          name_of("contacts_container")));
    }
    if (ldif && !get("ldif_output")) {
      problem(container->pos, fmt::format("the directory of {} is an LDIF file, which contacts cannot be written "
                                          "into; add ldif_output = \"FILE\" for an LDIF change file to import, or "
                                          "read the directory from an LDAP server (uri)",
                                          sys.label));
    }
  }
  check_rules(cfg, i);
}

// The rules map the other systems' objects, so they are checked against what those hold.
void Loader::check_rules(const Config& cfg, std::size_t i) {
  const SystemSource& sys = systems_[i];
  if (sys.rules.empty() && sys.group_rules.empty()) return;
  std::vector<directory::Profile> from;
  for (std::size_t j = 0; j < cfg.systems.size(); ++j) {
    if (j == i || !cfg.systems[j].directory) continue;
    if (std::find(from.begin(), from.end(), cfg.systems[j].directory->profile) == from.end())
      from.push_back(cfg.systems[j].directory->profile);
  }
  if (from.empty()) {
    from.push_back(cfg.systems[i].directory->profile == directory::Profile::kDomino ? directory::Profile::kExchange
                                                                                    : directory::Profile::kDomino);
  }
  std::set<std::tuple<int, int, std::string>> reported;
  for (directory::Profile profile : from) {
    const directory::mapping::Known known = profile == directory::Profile::kDomino
                                                ? directory::mapping::domino_person_known()
                                                : directory::mapping::exchange_user_known();
    for (const auto* rules : {&sys.rules, &sys.group_rules}) {
      if (rules->empty()) continue;
      auto parsed = directory::mapping::RuleSet::parse(*rules, known);
      if (parsed) continue;
      for (const directory::mapping::RuleProblem& rp : parsed.error()) {
        const Position pos{static_cast<int>(rp.position.line), static_cast<int>(rp.position.column)};
        std::string message = fmt::format("rule for {}: {}", escape_control(rp.target), rp.message);
        if (reported.emplace(pos.line, pos.column, message).second) problem(pos, std::move(message));
      }
    }
  }
}

}  // namespace

LoadResult load(const fs::path& file) {
  auto fail = [&](std::string why) { return LoadResult{std::nullopt, {Problem{file.string(), 0, 0, std::move(why)}}}; };
  std::error_code ec;
  if (fs::is_directory(file, ec)) {
    return fail(
        "cannot read the config file: it is a directory; give the path of the TOML file "
        "with --config");
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    const int err = errno;
    return fail(
        fmt::format("cannot read the config file: {}; check the path given with --config "
                    "and the file's permissions (`bridgehead config --defaults` prints a "
                    "template)",
                    std::strerror(err)));
  }
  std::ostringstream text;
  text << in.rdbuf();
  fs::path absolute = fs::absolute(file, ec);
  if (ec) absolute = file;
  absolute = absolute.lexically_normal();
  LoadResult result = load_string(text.str(), file.string(), absolute.parent_path());
  if (result.config) result.config->file = absolute;
  return result;
}

LoadResult load_string(std::string_view toml_text, const std::string& name, const fs::path& base_dir) {
  try {
    std::error_code ec;
    fs::path base = fs::absolute(base_dir, ec);
    if (ec) base = base_dir;
    LoadResult result = Loader(name, base.lexically_normal()).run(toml_text);
    if (result.config) result.config->file = name;
    return result;
  } catch (const std::exception& e) {
    // Only resource exhaustion gets here; the promise is that load() never throws.
    return LoadResult{std::nullopt, {Problem{name, 0, 0, fmt::format("cannot load the configuration: {}", e.what())}}};
  }
}

}  // namespace bridgehead::config
