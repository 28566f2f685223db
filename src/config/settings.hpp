// Internal to the config component: the settings table and the value checks it uses.
// config.cpp reads the file through this table; settings.cpp also renders the defaults
// file and the reference from it. Not for other components: they see config.hpp only.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"

namespace bridgehead::config::detail {

enum class Type {
  kString,       ///< free text, optionally checked by Setting::check
  kEnum,         ///< one of Setting::allowed
  kInteger,      ///< Setting::min..max
  kSize,         ///< bytes: integer or "50MiB"; Setting::min..max
  kPath,         ///< resolved against the config file's directory, normalized
  kEndpoint,     ///< "127.0.0.1:2525", "[::1]:2525", "host.example:25"
  kMode,         ///< octal permission string, "0600"
  kStringArray,  ///< each element checked by Setting::check
  kBool,         ///< true or false
};

struct Position {
  int line = 0;
  int column = 0;
};

/// A value taken from the file (or from the table's default) after its own checks passed.
struct Value {
  Position pos;  ///< of the value in the file; {0,0} for a default
  bool from_file = false;
  std::uint64_t number = 0;        ///< kInteger, kSize, kMode
  bool flag = false;               ///< kBool
  std::string text;                ///< kString, kEnum, kPath (absolute), kEndpoint (as written)
  Endpoint endpoint;               ///< kEndpoint
  std::vector<std::string> list;   ///< kStringArray (lower-cased when Setting::lowercase)
  std::vector<Position> list_pos;  ///< position of each list element
};

struct Setting {
  std::string_view key;  ///< "smtp.max_recipients", "system[].delivery.method"
  Type type = Type::kString;
  std::string_view default_value;  ///< a TOML literal; empty when there is no constant default
  /// For a setting whose default is its component's own (the member initializer of the
  /// component's settings struct): reads it, as a TOML literal, from a default Config.
  /// default_value is empty then, so the default is written in one place.
  std::string (*default_from)(const Config&) = nullptr;
  std::string_view default_note;  ///< the reference's default column when default_value is empty
  std::uint64_t min = 0;
  std::uint64_t max = 0;
  std::span<const std::string_view> allowed;
  std::string_view doc;      ///< one line; for numbers a noun phrase ("set it to <doc>")
  std::string_view example;  ///< a TOML literal that passes every check
  bool required = false;
  bool lowercase = false;  ///< DNS names and addresses compare case-insensitively
  /// What is wrong with one string (or one array element), or "" when it is fine.
  std::string (*check)(std::string_view) = nullptr;
  /// Stores a checked value; `system` is null for settings outside [[system]].
  void (*apply)(Config&, SystemConfig* system, const Value&) = nullptr;

  /// default_value, or what default_from reads; "" when there is no constant default.
  std::string default_literal() const;
  std::string_view section() const;  ///< "smtp", "system[]", "system[].delivery"
  std::string_view name() const;     ///< "max_recipients"
  bool in_system() const { return key.starts_with("system[]."); }
};

struct Section {
  std::string_view path;    ///< "smtp", "system[]", "system[].delivery"
  std::string_view header;  ///< "[smtp]", "[[system]]", "[system.delivery]"
  std::string_view doc;
  /// Set for a section whose keys are free (not rows of the table, e.g. the mapping rules):
  /// an example key = value line for the defaults file and the reference.
  std::string_view free_keys_example = {};
};

std::span<const Setting> settings();
std::span<const Section> sections();
const Setting* find_setting(std::string_view key);
const Section* find_section(std::string_view path);

/// "integer (1–100000)", "size (64KiB–4GiB)", "one of `a`, `b`": the reference's type column.
std::string type_description(const Setting& s);

/// The [[system]] tables of example_toml(), so tests can append them to defaults_toml().
std::string example_systems_toml();

// Checks shared by the table and the cross-checks in config.cpp. Each returns what is wrong
// ("" when fine) in words that follow the value in a sentence.
std::string check_dns_name(std::string_view name);
std::string check_system_name(std::string_view name);
std::string check_address(std::string_view address);
/// An RFC 4514 DN, by directory::Dn::parse; the empty DN is refused (it names no container).
std::string check_dn(std::string_view dn);

/// Parses "host:port" / "[v6]:port"; on failure `why` says what is wrong and how to write it.
std::optional<Endpoint> parse_endpoint(std::string_view text, std::string& why);
/// Parses "50MiB", "64 MiB", "10MB", "4096"; on failure `why` says what units exist.
std::optional<std::uint64_t> parse_size(std::string_view text, std::string& why);
/// 52428800 -> "50MiB", 1000 -> "1000 bytes"
std::string format_size(std::uint64_t bytes);
/// Parses "0600"/"600": octal digits only, no bits outside 0777.
std::optional<unsigned> parse_mode(std::string_view text, std::string& why);

}  // namespace bridgehead::config::detail
