#include "directory/sync/target.hpp"

#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "core/durable_file.hpp"
#include "core/text.hpp"
#include "directory/ldap/writer.hpp"
#include "directory/ldif.hpp"
#include "directory/sync/source.hpp"

namespace bridgehead::directory::sync {
namespace {

// Reads the target on first use: a run with nothing new or changed never pays for it.
class LazyView final : public TargetView {
 public:
  using Loader = std::function<Expected<void>(MemoryTargetView&)>;
  explicit LazyView(Loader load, std::optional<Error>& problem) : load_(std::move(load)), problem_(problem) {}
  std::vector<TargetObject> find_by_address(std::string_view address) const override {
    ensure();
    return view_.find_by_address(address);
  }
  std::optional<TargetObject> find_by_dn(std::string_view dn) const override {
    ensure();
    return view_.find_by_dn(dn);
  }
  std::vector<TargetObject> find_foreign_by_address(std::string_view address, std::string_view stamp_attribute,
                                                    std::string_view stamp_prefix) const override {
    ensure();
    return view_.find_foreign_by_address(address, stamp_attribute, stamp_prefix);
  }

 private:
  void ensure() const {
    if (loaded_) return;
    loaded_ = true;
    if (auto r = load_(view_); !r) problem_ = r.error();
  }
  Loader load_;
  std::optional<Error>& problem_;
  mutable bool loaded_ = false;
  mutable MemoryTargetView view_;
};

bool same_values(const std::vector<std::string>* have, const std::vector<std::string>& want) {
  return have != nullptr && *have == want;
}

// What makes `have` carry every attribute of `want` (replace where the values differ).
std::vector<ldap::Modification> repair(const Entry& have, const Entry& want) {
  std::vector<ldap::Modification> out;
  for (const auto& a : want.attributes()) {
    if (iequals(a.name, "objectClass") || same_values(have.find(a.name), a.values)) continue;
    ldap::Modification m;
    m.op = ldap::ModifyOp::kReplace;
    m.attribute = a.name;
    m.values = a.values;
    out.push_back(std::move(m));
  }
  return out;
}

class LdapTarget final : public Target {
 public:
  LdapTarget(const DirectorySettings& s, IdSource id, WriteTuning tuning)
      : s_(s), id_(std::move(id)), tuning_(tuning) {}

  std::unique_ptr<TargetView> view(const TargetShape& shape) override {
    problem_.reset();
    return std::make_unique<LazyView>(
        [this, shape](MemoryTargetView& view) -> Expected<void> {
          auto c = connection();
          if (!c) return tl::unexpected(c.error());
          ldap::SearchRequest req;
          req.base = s_.base;
          std::string filter = "(|";
          for (const auto& a : shape.address_attributes) filter += "(" + a + "=*)";
          filter += "(" + shape.stamp_attribute + "=*))";
          req.filter = filter;
          req.attributes = shape.address_attributes;
          req.attributes.push_back(shape.stamp_attribute);
          req.attributes.push_back(shape.naming_attribute);
          auto r = (*c)->search(req, [&](Entry e) {
            TargetObject o;
            o.dn = e.dn();
            o.attributes = std::move(e);
            view.add(std::move(o));
            return true;
          });
          if (!r) return tl::unexpected(r.error());
          if (!r->complete()) return tl::unexpected(*r->problem);
          return {};
        },
        problem_);
  }

  std::optional<Error> view_problem() const override { return problem_; }

  // Many requests in flight (and, when asked and offered, a transaction for a batch of adds);
  // an operation that failed for a reason a rerun explains is completed one by one after.
  std::vector<Expected<void>> apply(const std::vector<Operation>& ops) override {
    auto c = connection();
    if (!c) return std::vector<Expected<void>>(ops.size(), tl::unexpected(c.error()));
    std::vector<ldap::WriteOperation> writes;
    writes.reserve(ops.size());
    bool adds_only = true;
    for (const auto& op : ops) {
      adds_only = adds_only && op.kind == OpKind::kAdd;
      writes.push_back(to_write(op));
    }
    ldap::Writer writer(**c);
    ldap::WriteOptions options;
    options.in_flight = tuning_.in_flight;
    if (tuning_.transactions && adds_only && !ops.empty()) {
      if (auto offered = writer.supports_transactions(); offered && *offered) options.transaction_size = ops.size();
    }
    auto written = writer.write(writes, options);
    if (!written) return std::vector<Expected<void>>(ops.size(), tl::unexpected(written.error()));
    auto results = std::move(written->results);
    bool broken = false;
    for (std::size_t i = 0; i < ops.size(); ++i) {
      if (results[i]) continue;
      if (results[i].error().transient()) {
        broken = true;
        continue;
      }
      results[i] = recover(**c, ops[i], std::move(results[i]));
    }
    if (broken) conn_.reset();  // reconnect for the next batch
    return results;
  }

  Expected<void> finish() override { return {}; }

 private:
  Expected<ldap::Connection*> connection() {
    if (conn_) return conn_.get();
    auto options = ldap_options(s_, id_);
    if (!options) return tl::unexpected(options.error());
    auto c = ldap::Connection::open(std::move(*options));
    if (!c) return tl::unexpected(c.error());
    conn_ = std::make_unique<ldap::Connection>(std::move(*c));
    return conn_.get();
  }

  static Expected<std::optional<Entry>> read(ldap::Connection& c, const std::string& dn) {
    ldap::SearchRequest req;
    req.base = dn;
    req.scope = ldap::Scope::kBase;
    req.paged = false;
    std::optional<Entry> found;
    auto r = c.search(req, [&](Entry e) {
      found = std::move(e);
      return false;
    });
    if (!r) {
      if (r.error().code == ErrorCode::kNotFound) return std::optional<Entry>{};
      return tl::unexpected(r.error());
    }
    return found;
  }

  // The object at `dn` carries this operation's stamp: Bridgehead wrote it (perhaps in a run
  // that crashed before recording it).
  bool ours(const Entry& e, const Operation& op) const {
    const auto& stamp = op.after.written;
    for (const auto& a : stamp.attributes()) {
      if (!iequals(a.name, stamp_attribute())) continue;
      return same_values(e.find(a.name), a.values);
    }
    return false;
  }
  std::string stamp_attribute() const { return stamp_attribute_of(s_); }

  static ldap::WriteOperation to_write(const Operation& op) {
    switch (op.kind) {
      case OpKind::kAdd:
        return ldap::AddRequest{op.entry};
      case OpKind::kRename: {
        ldap::RenameRequest r;
        r.dn = op.dn;
        r.new_rdn = op.new_rdn;
        return r;
      }
      case OpKind::kDelete:
        return ldap::DeleteRequest{op.dn};
      case OpKind::kModify:
      case OpKind::kHide:
      case OpKind::kAdopt:
        break;
    }
    ldap::ModifyRequest m;
    m.dn = op.dn;
    m.changes = op.changes;
    return m;
  }

  // `op` failed with `failed`: done before by a run that crashed before recording it, or
  // changed by someone since. Completed when the object is Bridgehead's; else the failure.
  Expected<void> recover(ldap::Connection& c, const Operation& op, Expected<void> failed) {
    switch (op.kind) {
      case OpKind::kAdd: {
        auto have = read(c, op.entry.dn());
        if (!have || !*have || !ours(**have, op)) return failed;
        auto fix = repair(**have, op.entry);
        return fix.empty() ? Expected<void>{} : c.modify(op.entry.dn(), fix);
      }
      case OpKind::kModify:
      case OpKind::kHide: {
        auto have = read(c, op.dn);
        if (!have || !*have) return failed;
        auto fix = repair(**have, op.after.written);
        return fix.empty() ? Expected<void>{} : c.modify(op.dn, fix);
      }
      case OpKind::kAdopt:
        return failed;
      case OpKind::kRename: {
        auto have = read(c, op.after.target_dn);
        if (have && *have && ours(**have, op)) return {};
        return failed;
      }
      case OpKind::kDelete:
        if (failed.error().code == ErrorCode::kNotFound) return {};  // already gone
        return failed;
    }
    return failed;
  }

  DirectorySettings s_;
  IdSource id_;
  WriteTuning tuning_;
  std::unique_ptr<ldap::Connection> conn_;
  std::optional<Error> problem_;
};

class LdifTarget final : public Target {
 public:
  explicit LdifTarget(const DirectorySettings& s) : s_(s) {}
  std::unique_ptr<TargetView> view(const TargetShape&) override { return std::make_unique<MemoryTargetView>(); }
  std::optional<Error> view_problem() const override { return std::nullopt; }

  std::vector<Expected<void>> apply(const std::vector<Operation>& ops) override {
    std::vector<Expected<void>> out;
    for (const auto& op : ops) {
      Change ch;
      ch.dn = op.kind == OpKind::kAdd ? op.entry.dn() : op.dn;
      switch (op.kind) {
        case OpKind::kAdd:
          ch.type = ChangeType::kAdd;
          ch.entry = op.entry;
          break;
        case OpKind::kModify:
        case OpKind::kHide:
        case OpKind::kAdopt:
          ch.type = ChangeType::kModify;
          for (const auto& m : op.changes) {
            Modification lm;
            lm.op = m.op == ldap::ModifyOp::kAdd      ? ModOp::kAdd
                    : m.op == ldap::ModifyOp::kDelete ? ModOp::kDelete
                                                      : ModOp::kReplace;
            lm.attribute = m.attribute;
            lm.values = m.values;
            ch.modifications.push_back(std::move(lm));
          }
          break;
        case OpKind::kRename:
          ch.type = ChangeType::kModDn;
          ch.new_rdn = op.new_rdn;
          ch.delete_old_rdn = true;
          break;
        case OpKind::kDelete:
          ch.type = ChangeType::kDelete;
          break;
      }
      if (ch.type == ChangeType::kModify && ch.modifications.empty()) {
        out.emplace_back();
        continue;
      }
      changes_.push_back(std::move(ch));
      out.emplace_back();
    }
    return out;
  }

  Expected<void> finish() override {
    if (changes_.empty()) return {};
    auto text = to_ldif({}, changes_);
    changes_.clear();
    if (!text) return tl::unexpected(text.error());
    // The file is the administrator's to import: a run adds its changes after the ones not
    // yet imported (the administrator empties or removes the file once imported).
    std::string all;
    if (std::ifstream in(s_.ldif_output, std::ios::binary); in) {
      std::ostringstream old;
      old << in.rdbuf();
      all = old.str();
      if (!all.empty() && !all.ends_with("\n\n")) all += all.ends_with('\n') ? "\n" : "\n\n";
    }
    all += *text;
    return durable::write_file_durably(s_.ldif_output, all);
  }

 private:
  DirectorySettings s_;
  std::vector<Change> changes_;
};

}  // namespace

Expected<std::unique_ptr<Target>> open_target(const DirectorySettings& settings, const IdSource& id,
                                              WriteTuning tuning) {
  if (!settings.ldif_output.empty()) return std::make_unique<LdifTarget>(settings);
  if (settings.uri.empty()) {
    return tl::unexpected(Error::permanent(
        ErrorCode::kConfig,
        fmt::format("the {} directory is an LDIF file: contacts cannot be written into it", settings.system),
        "set ldif_output for an LDIF change file, or uri for an LDAP server"));
  }
  return std::make_unique<LdapTarget>(settings, id, tuning);
}

}  // namespace bridgehead::directory::sync
