#include "directory/addressbook/recipient_list.hpp"

#include <algorithm>
#include <optional>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/text.hpp"

namespace bridgehead::directory {
namespace {

using nlohmann::json;

struct Problem {
  std::size_t column = 1;
  std::string what;
};

constexpr std::size_t kFormKindCount = static_cast<std::size_t>(FormKind::kNickname) + 1;

// nlohmann keeps no positions of values: a key's column is where it is first written.
std::size_t column_of(std::string_view line, std::string_view key) {
  const auto at = line.find(fmt::format("\"{}\"", key));
  return at == std::string_view::npos ? 1 : at + 1;
}

std::optional<Problem> read_forms(const json& forms, std::string_view line, Recipient& r) {
  const std::size_t column = column_of(line, "forms");
  if (!forms.is_object()) return Problem{column, "\"forms\" must be an object: {\"smtp\": [\"a@b.example\"], ...}"};
  for (const auto& [key, values] : forms.items()) {
    if (!form_kind_from_string(key)) {
      return Problem{column_of(line, key), fmt::format("\"{}\" is not a form kind (smtp, notes-canonical, "
                                                       "notes-abbreviated, notes-address, notes-alias, short-name, "
                                                       "x500, nickname)",
                                                       escape_control(key))};
    }
    if (!values.is_array() || !std::all_of(values.begin(), values.end(), [](const json& v) { return v.is_string(); })) {
      return Problem{column_of(line, key), fmt::format("the {} forms must be an array of strings", key)};
    }
  }
  // In the order of the kinds, so that the first SMTP form, the primary, comes first.
  for (std::size_t k = 0; k < kFormKindCount; ++k) {
    const auto kind = static_cast<FormKind>(k);
    const auto it = forms.find(std::string(to_string(kind)));
    if (it == forms.end()) continue;
    for (const auto& v : *it) r.forms.push_back({kind, v.get<std::string>()});
  }
  return std::nullopt;
}

std::optional<Problem> read_recipient(const json& j, std::string_view line, Recipient& r) {
  if (!j.is_object()) return Problem{1, "a line holds one recipient, a JSON object"};
  bool routing_given = false;
  for (const auto& [key, value] : j.items()) {
    const std::size_t column = column_of(line, key);
    if (key == "forms") {
      if (auto p = read_forms(value, line, r)) return p;
      continue;
    }
    if (key == "hidden") {
      if (!value.is_boolean()) return Problem{column, "\"hidden\" must be true or false"};
      r.hidden = value.get<bool>();
      continue;
    }
    std::string* field = key == "id"                ? &r.id
                         : key == "system"          ? &r.system
                         : key == "display_name"    ? &r.display_name
                         : key == "routing_address" ? &r.routing_address
                                                    : nullptr;
    if (field == nullptr && key != "kind") {
      return Problem{column, fmt::format("unknown key \"{}\" (id, system, kind, display_name, forms, "
                                         "routing_address, hidden)",
                                         escape_control(key))};
    }
    if (!value.is_string()) return Problem{column, fmt::format("\"{}\" must be a string", key)};
    if (field == nullptr) {
      const auto kind = recipient_kind_from_string(value.get<std::string>());
      if (!kind) {
        return Problem{column, fmt::format("kind \"{}\" is not person, group, contact or mail-in-database",
                                           escape_control(value.get<std::string>()))};
      }
      r.kind = *kind;
      continue;
    }
    *field = value.get<std::string>();
    routing_given = routing_given || field == &r.routing_address;
  }
  for (const char* required : {"id", "system", "forms"}) {
    if (!j.contains(required)) return Problem{1, fmt::format("the recipient has no \"{}\"", required)};
  }
  if (!routing_given) {
    const auto smtp =
        std::find_if(r.forms.begin(), r.forms.end(), [](const Form& f) { return f.kind == FormKind::kSmtp; });
    if (smtp != r.forms.end()) r.routing_address = smtp->value;
  }
  drop_repeated_forms(r);
  if (auto ok = validate_recipient(r); !ok) return Problem{1, ok.error().message};
  return std::nullopt;
}

}  // namespace

Expected<std::vector<Recipient>> parse_recipient_list(std::string_view text, std::string_view name) {
  std::vector<Recipient> out;
  std::size_t number = 0;
  while (!text.empty()) {
    ++number;
    const auto end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const auto content = trim(line);
    if (content.empty() || content.front() == '#') continue;
    auto problem = [&](const Problem& p) {
      return fail(
          Error::permanent(ErrorCode::kParse, fmt::format("{}:{}:{}: {}", name, number, p.column, p.what),
                           "one recipient a line as a JSON object; see `bridgehead addressbook import --help`"));
    };
    json j;
    try {
      j = json::parse(line);
    } catch (const json::parse_error& e) {
      // e.byte counts from 1 at the first octet of what was parsed: the line.
      const std::string what = e.what();
      const auto detail = what.find("error: ");
      return problem({e.byte == 0 ? 1 : e.byte,
                      "not JSON: " + escape_control(detail == std::string::npos ? what : what.substr(detail + 7))});
    }
    Recipient r;
    if (auto p = read_recipient(j, line, r)) return problem(*p);
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace bridgehead::directory
