// The JSON of operation.hpp: previews and held deletions are stored as these documents.
#include <initializer_list>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/text.hpp"
#include "directory/ldif.hpp"
#include "directory/sync/operation.hpp"

namespace bridgehead::directory::sync {
namespace {

using nlohmann::json;

constexpr std::string_view kBase64Marker = "base64";

json values_to_json(const std::vector<std::string>& values) {
  json out = json::array();
  for (const auto& v : values) out.push_back(octets_to_json(v));
  return out;
}

// Attributes as [name, [values]] pairs: a JSON object would lose their order.
json entry_to_json(const Entry& e) {
  json attributes = json::array();
  for (const auto& a : e.attributes())
    attributes.push_back(json::array({octets_to_json(a.name), values_to_json(a.values)}));
  json out = json::object();
  if (!e.dn().empty()) out["dn"] = octets_to_json(e.dn());
  out["attributes"] = std::move(attributes);
  return out;
}

// Reads the members of one JSON object; every error names the member by its path from the
// top ("after.written.attributes[2]"). Members left empty by to_json are omitted there, so a
// missing member reads as empty unless it is required.
class Reader {
 public:
  Reader(const json& j, std::string what, std::string path) : j_(j), what_(std::move(what)), path_(std::move(path)) {}

  Error wrong(std::string_view member, std::string_view expected) const {
    return Error::permanent(ErrorCode::kCorrupt, fmt::format("{}: \"{}\" {}", what_, at(member), expected),
                            "the stored operation is damaged: run `bridgehead dirsync preview` again, or a full run");
  }
  std::string at(std::string_view member) const {
    if (path_.empty()) return std::string(member);
    if (member.empty()) return path_;
    return member.front() == '[' ? path_ + std::string(member) : path_ + "." + std::string(member);
  }
  Expected<void> object() const {
    if (!j_.is_object()) return fail(wrong("", "must be a JSON object"));
    return {};
  }
  const json* member(std::string_view name) const {
    const auto it = j_.find(name);
    return it == j_.end() ? nullptr : &*it;
  }
  Expected<std::string> octets(std::string_view name, bool required = false) const {
    const json* m = member(name);
    if (m == nullptr) {
      if (required) return fail(wrong(name, "is missing"));
      return std::string();
    }
    auto v = octets_from_json(*m);
    if (!v) return fail(wrong(name, "must be a string or {\"base64\": \"...\"}"));
    return std::move(*v);
  }
  // The optional octet members named, each into its field.
  Expected<void> octets_into(std::initializer_list<std::pair<const char*, std::string*>> fields) const {
    for (auto [name, field] : fields) {
      auto v = octets(name);
      if (!v) return fail(v.error());
      *field = std::move(*v);
    }
    return {};
  }
  Expected<std::int64_t> integer(std::string_view name) const {
    const json* m = member(name);
    if (m == nullptr) return 0;
    if (!m->is_number_integer()) return fail(wrong(name, "must be an integer"));
    return m->get<std::int64_t>();
  }
  // The array `name`, or an empty one when it is missing.
  Expected<const json*> array(std::string_view name) const {
    static const json kEmpty = json::array();
    const json* m = member(name);
    if (m == nullptr) return &kEmpty;
    if (!m->is_array()) return fail(wrong(name, "must be an array"));
    return m;
  }
  Expected<std::vector<std::string>> values(std::string_view name) const {
    auto list = array(name);
    if (!list) return fail(list.error());
    std::vector<std::string> out;
    out.reserve((*list)->size());
    for (std::size_t i = 0; i < (*list)->size(); ++i) {
      auto v = octets_from_json((**list)[i]);
      if (!v) return fail(wrong(fmt::format("{}[{}]", name, i), "must be a string or {\"base64\": \"...\"}"));
      out.push_back(std::move(*v));
    }
    return out;
  }
  Reader nested(const json& j, std::string_view name) const { return Reader(j, what_, at(name)); }

 private:
  const json& j_;
  std::string what_;
  std::string path_;
};

// The entry member `name` into `out`; a missing one leaves `out` empty.
Expected<void> read_entry(const Reader& parent, std::string_view name, Entry& out) {
  const json* m = parent.member(name);
  if (m == nullptr) return {};
  const Reader r = parent.nested(*m, name);
  if (auto ok = r.object(); !ok) return fail(ok.error());
  auto dn = r.octets("dn");
  if (!dn) return fail(dn.error());
  Entry e(std::move(*dn));
  auto attributes = r.array("attributes");
  if (!attributes) return fail(attributes.error());
  for (std::size_t i = 0; i < (*attributes)->size(); ++i) {
    const json& a = (**attributes)[i];
    const std::string member = fmt::format("attributes[{}]", i);
    if (!a.is_array() || a.size() != 2 || !a[1].is_array() || a[1].empty()) {
      return fail(r.wrong(member, "must be [name, [value, ...]] with at least one value"));
    }
    auto attribute = octets_from_json(a[0]);
    if (!attribute || attribute->empty()) return fail(r.wrong(member, "must start with the attribute's name"));
    for (std::size_t k = 0; k < a[1].size(); ++k) {
      auto v = octets_from_json(a[1][k]);
      if (!v) return fail(r.wrong(fmt::format("{}[1][{}]", member, k), "must be a string or {\"base64\": \"...\"}"));
      e.add(*attribute, std::move(*v));
    }
  }
  out = std::move(e);
  return {};
}

Expected<ObjectRecord> object_record_from(const Reader& r) {
  if (auto ok = r.object(); !ok) return fail(ok.error());
  ObjectRecord out;
  if (auto ok = r.octets_into({{"direction", &out.direction},
                               {"key", &out.key},
                               {"source_dn", &out.source_dn},
                               {"target_dn", &out.target_dn},
                               {"hash", &out.hash}});
      !ok) {
    return fail(ok.error());
  }
  if (auto ok = read_entry(r, "written", out.written); !ok) return fail(ok.error());
  auto hidden = r.integer("hidden_since_ms");
  if (!hidden) return fail(hidden.error());
  out.hidden_since_ms = *hidden;
  return out;
}

void put_if_not_empty(json& j, const char* name, const std::string& value) {
  if (!value.empty()) j[name] = octets_to_json(value);
}

}  // namespace

json octets_to_json(std::string_view octets) {
  if (is_valid_utf8(octets)) return json(std::string(octets));
  return json{{std::string(kBase64Marker), ldif_base64_encode(octets)}};
}

std::optional<std::string> octets_from_json(const json& j) {
  if (j.is_string()) return j.get<std::string>();
  if (!j.is_object() || j.size() != 1) return std::nullopt;
  const auto it = j.find(kBase64Marker);
  if (it == j.end() || !it->is_string()) return std::nullopt;
  return ldif_base64_decode(it->get_ref<const std::string&>());
}

json to_json(const ObjectRecord& r) {
  json j = json::object();
  j["direction"] = octets_to_json(r.direction);
  j["key"] = octets_to_json(r.key);
  put_if_not_empty(j, "source_dn", r.source_dn);
  put_if_not_empty(j, "target_dn", r.target_dn);
  if (!r.written.dn().empty() || !r.written.attributes().empty()) j["written"] = entry_to_json(r.written);
  put_if_not_empty(j, "hash", r.hash);
  if (r.hidden_since_ms != 0) j["hidden_since_ms"] = r.hidden_since_ms;
  return j;
}

Expected<ObjectRecord> object_record_from_json(const json& j) {
  return object_record_from(Reader(j, "object record JSON", ""));
}

json to_json(const Operation& op) {
  json j = json::object();
  j["kind"] = std::string(to_string(op.kind));
  j["direction"] = octets_to_json(op.direction);
  j["key"] = octets_to_json(op.key);
  put_if_not_empty(j, "source_dn", op.source_dn);
  put_if_not_empty(j, "dn", op.dn);
  if (!op.entry.dn().empty() || !op.entry.attributes().empty()) j["entry"] = entry_to_json(op.entry);
  if (!op.changes.empty()) {
    json changes = json::array();
    for (const auto& m : op.changes) {
      changes.push_back({{"op", std::string(to_string(m.op))},
                         {"attribute", octets_to_json(m.attribute)},
                         {"values", values_to_json(m.values)}});
    }
    j["changes"] = std::move(changes);
  }
  put_if_not_empty(j, "new_rdn", op.new_rdn);
  if (op.continues) j["continues"] = true;
  j["after"] = to_json(op.after);
  return j;
}

Expected<Operation> operation_from_json(const json& j) {
  const Reader r(j, "operation JSON", "");
  if (auto ok = r.object(); !ok) return fail(ok.error());
  Operation op;
  const json* kind = r.member("kind");
  if (kind == nullptr) return fail(r.wrong("kind", "is missing"));
  const auto k = kind->is_string() ? op_kind_from_string(kind->get_ref<const std::string&>()) : std::nullopt;
  if (!k) return fail(r.wrong("kind", "must be add, modify, rename, delete, hide or adopt"));
  op.kind = *k;
  if (auto ok = r.octets_into({{"direction", &op.direction},
                               {"key", &op.key},
                               {"source_dn", &op.source_dn},
                               {"dn", &op.dn},
                               {"new_rdn", &op.new_rdn}});
      !ok) {
    return fail(ok.error());
  }
  if (const json* c = r.member("continues"); c != nullptr) {
    if (!c->is_boolean()) return fail(r.wrong("continues", "must be true or false"));
    op.continues = c->get<bool>();
  }
  if (auto ok = read_entry(r, "entry", op.entry); !ok) return fail(ok.error());
  auto changes = r.array("changes");
  if (!changes) return fail(changes.error());
  for (std::size_t i = 0; i < (*changes)->size(); ++i) {
    const json& c = (**changes)[i];
    const Reader m = r.nested(c, fmt::format("changes[{}]", i));
    if (auto ok = m.object(); !ok) return fail(ok.error());
    ldap::Modification mod;
    const json* mop = m.member("op");
    const auto parsed =
        mop != nullptr && mop->is_string() ? modify_op_from_string(mop->get_ref<const std::string&>()) : std::nullopt;
    if (!parsed) return fail(m.wrong("op", "must be add, delete or replace"));
    mod.op = *parsed;
    auto attribute = m.octets("attribute", true);
    if (!attribute) return fail(attribute.error());
    mod.attribute = std::move(*attribute);
    auto values = m.values("values");
    if (!values) return fail(values.error());
    mod.values = std::move(*values);
    op.changes.push_back(std::move(mod));
  }
  const json* after = r.member("after");
  if (after == nullptr) return fail(r.wrong("after", "is missing"));
  auto record = object_record_from(r.nested(*after, "after"));
  if (!record) return fail(record.error());
  op.after = std::move(*record);
  return op;
}

}  // namespace bridgehead::directory::sync
