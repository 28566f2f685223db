#include "directory/sync/source.hpp"

#include <optional>
#include <unordered_set>

#include <fmt/format.h>

#include "core/text.hpp"
#include "directory/dn.hpp"
#include "directory/ldap/change_feed.hpp"
#include "directory/ldap/connection.hpp"
#include "directory/ldap/content_sync.hpp"
#include "directory/ldif.hpp"
#include "identity/password.hpp"

namespace bridgehead::directory::sync {
namespace {

std::string first_trimmed(const Entry& e, std::string_view name) { return std::string(trim(e.first(name))); }

// A value for an RFC 4515 filter: the octets that mean something there escaped as \hh.
std::string filter_escape(std::string_view v) {
  std::string out;
  for (unsigned char c : v) {
    if (c == '*' || c == '(' || c == ')' || c == '\\' || c == 0) {
      out += fmt::format("\\{:02x}", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

class LdifSource final : public Source {
 public:
  LdifSource(const DirectorySettings& s) : s_(s) {}

  Expected<ReadOutcome> read(const std::string&, bool, const ChangeFn& fn, const CountFn& progress) override {
    LdifReaderOptions options;
    options.source_name = s_.ldif_file.string();
    auto doc = read_ldif_file(s_.ldif_file, options);
    if (!doc) return tl::unexpected(doc.error());
    ReadOutcome out;
    if (!doc->changes.empty() || !doc->problems.empty()) {
      // A record that could not be read may be an object that is still there: deleting it
      // because of a typo in the file would be wrong, so the read counts as incomplete.
      out.complete = false;
      std::string what = !doc->problems.empty() ? doc->problems.front().describe()
                                                : "it holds change records; a source is a file of content records";
      out.problem = Error::permanent(
          ErrorCode::kParse,
          fmt::format("LDIF source {} of {} could not be read whole ({} problems; the first: {})",
                      s_.ldif_file.string(), s_.system, doc->problems.size() + doc->changes.size(), what),
          "fix the file; until then nothing it lacks is deleted");
    }
    for (auto& e : doc->entries) {
      SourceChange c;
      c.key = object_key(e, s_.profile);
      c.uuid = first_trimmed(e, "entryUUID");
      c.entry = std::move(e);
      fn(std::move(c));
      if (++out.entries % 1000 == 0 && progress) progress(out.entries);
    }
    return out;
  }

  // The file is read once, at the first question: a run confirms all its deletes at once, and
  // reading it again for each would make a mass delete quadratic.
  Expected<bool> still_there(const std::string& dn, const std::string& key) override {
    if (!present_) {
      auto doc = read_ldif_file(s_.ldif_file);
      if (!doc) return tl::unexpected(doc.error());
      Present p;
      for (const auto& e : doc->entries) {
        if (auto k = object_key(e, s_.profile); !k.empty()) p.keys.insert(std::move(k));
        if (auto d = Dn::parse(e.dn())) p.dns.insert(d->normalized());
      }
      present_ = std::move(p);
    }
    if (!key.empty() && present_->keys.contains(key)) return true;
    auto wanted = Dn::parse(dn);
    return wanted && present_->dns.contains(wanted->normalized());
  }

 private:
  struct Present {
    std::unordered_set<std::string> keys, dns;  // dns normalized
  };
  DirectorySettings s_;
  std::optional<Present> present_;
};

class LdapSource final : public Source {
 public:
  LdapSource(const DirectorySettings& s, IdSource id, std::string stamp_prefix)
      : s_(s), id_(std::move(id)), stamp_prefix_(std::move(stamp_prefix)) {}

  Expected<ReadOutcome> read(const std::string& cookie, bool full, const ChangeFn& fn,
                             const CountFn& progress) override {
    auto conn = connect();
    if (!conn) return tl::unexpected(conn.error());
    Feed feed = s_.feed;
    if (feed == Feed::kAuto) {
      auto chosen = choose_feed(*conn);
      if (!chosen) return tl::unexpected(chosen.error());
      feed = *chosen;
    }
    if (feed == Feed::kUsn || feed == Feed::kTimestamp) return read_by_feed(*conn, feed, cookie, full, fn, progress);
    const bool syncrepl = feed == Feed::kSyncRepl;
    if (syncrepl && !full && !cookie.empty()) {
      auto delta = read_changes(*conn, cookie, fn, progress);
      if (!delta) return tl::unexpected(delta.error());
      if (!delta->refresh_required && delta->outcome.complete) return std::move(delta->outcome);
      // The server cannot go on from this cookie, or stopped the refresh (a size limit: a
      // content-sync refresh is not paged): everything, as if there were no cookie. Nothing of
      // the refresh was handed on.
    }
    // A full read is a paged search (a content-sync refresh is not paged, and servers limit
    // its size). The cookie for the next run is the naming context's contextCSN read before
    // it: changes made while the read goes on come again next time, which the diff absorbs.
    std::string next;
    if (syncrepl) {
      auto csn = context_csn(*conn);
      if (!csn) return tl::unexpected(csn.error());
      next = *csn;
    }
    auto out = read_all(*conn, fn, progress);
    if (out) out->cookie = std::move(next);
    return out;
  }

 private:
  static constexpr std::string_view kUsnCookie = "usn:";
  static constexpr std::string_view kTimestampCookie = "modifytimestamp:";

  // kAuto: what the server and the profile allow, best first.
  Expected<Feed> choose_feed(ldap::Connection& conn) const {
    auto offered = offers_content_sync(conn);
    if (!offered) return tl::unexpected(offered.error());
    if (*offered) return Feed::kSyncRepl;
    if (s_.profile == Profile::kExchange) {
      if (auto dc = ldap::read_domain_controller(conn); dc && !dc->invocation_id.empty()) return Feed::kUsn;
      return Feed::kFull;
    }
    return Feed::kTimestamp;
  }

  // uSNChanged or modifyTimestamp: the changed objects, then (unless the server reported the
  // deleted ones) every key, so that an object gone since is noticed.
  Expected<ReadOutcome> read_by_feed(ldap::Connection& conn, Feed feed, const std::string& cookie, bool full,
                                     const ChangeFn& fn, const CountFn& progress) {
    ReadOutcome out;
    ldap::SearchRequest search;
    search.base = s_.base;
    search.filter = filter();
    search.attributes = {"*", "entryUUID"};
    bool deletions_reported = false;
    bool from_start = true;
    auto count = [&] {
      if (++out.entries % 1000 == 0 && progress) progress(out.entries);
    };
    if (feed == Feed::kUsn) {
      ldap::UsnFeedRequest req;
      req.search = search;
      if (!full && cookie.starts_with(kUsnCookie)) {
        auto since = ldap::UsnPosition::parse(std::string_view(cookie).substr(kUsnCookie.size()));
        if (since) req.since = *since;
      }
      auto on_entry = [&](Entry e, bool deleted) {
        SourceChange c;
        c.kind = deleted ? SourceChange::Kind::kDelete : SourceChange::Kind::kUpsert;
        c.key = object_key(e, s_.profile);
        c.uuid = first_trimmed(e, "entryUUID");
        c.entry = std::move(e);
        fn(std::move(c));
        count();
        return true;
      };
      auto r = ldap::read_usn_changes(conn, req, on_entry);
      if (r && r->different_server) {  // another DC, or a restored one: everything again
        req.since.reset();
        r = ldap::read_usn_changes(conn, req, on_entry);
      }
      if (!r) return tl::unexpected(r.error());
      from_start = !req.since.has_value();
      deletions_reported = r->deletions_reported;
      out.complete = r->search.complete();
      out.problem = r->search.problem;
      out.cookie = std::string(kUsnCookie) + r->position.text();
    } else {
      ldap::TimestampFeedRequest req;
      req.search = search;
      if (!full && cookie.starts_with(kTimestampCookie)) {
        auto since = ldap::parse_generalized_time(std::string_view(cookie).substr(kTimestampCookie.size()));
        if (since) req.since = *since;
      }
      auto r = ldap::read_timestamp_changes(conn, req, [&](Entry e) {
        deliver(std::move(e), fn);
        count();
        return true;
      });
      if (!r) return tl::unexpected(r.error());
      from_start = !req.since.has_value();
      out.complete = r->search.complete();
      out.problem = r->search.problem;
      if (r->position) out.cookie = std::string(kTimestampCookie) + ldap::format_generalized_time(*r->position);
    }
    if (!out.complete) out.cookie.clear();  // only a complete read may move the position
    out.full = from_start;
    if (from_start || deletions_reported || !out.complete) return out;
    // The keys of everything there now: what the state knows beyond them is gone.
    ldap::SearchRequest keys = search;
    keys.attributes = {"dominoUNID", "objectGUID", "entryUUID", "objectClass", "mail"};
    auto k = conn.search(keys, [&](Entry e) {
      SourceChange c;
      c.kind = SourceChange::Kind::kUnchanged;
      c.key = object_key(e, s_.profile);
      if (!c.key.empty()) fn(std::move(c));
      return true;
    });
    if (!k) return tl::unexpected(k.error());
    out.full = k->complete();
    if (!k->complete()) {
      out.complete = false;
      out.problem = k->problem;
      out.cookie.clear();
    }
    return out;
  }

  struct Delta {
    ReadOutcome outcome;
    bool refresh_required = false;
  };

  // The scope's filter, and never the contacts Bridgehead wrote here (they would only be
  // dropped after reading, and a content-sync refresh would count them against size limits).
  std::string filter() const { return read_filter(s_, stamp_prefix_); }

  Expected<ReadOutcome> read_all(ldap::Connection& conn, const ChangeFn& fn, const CountFn& progress) {
    ldap::SearchRequest req;
    req.base = s_.base;
    req.filter = filter();
    req.attributes = {"*", "entryUUID"};
    ReadOutcome out;
    auto outcome = conn.search(req, [&](Entry e) {
      deliver(std::move(e), fn);
      if (++out.entries % 1000 == 0 && progress) progress(out.entries);
      return true;
    });
    if (!outcome) return tl::unexpected(outcome.error());
    out.complete = outcome->complete();
    out.problem = outcome->problem;
    return out;
  }

  Expected<Delta> read_changes(ldap::Connection& conn, const std::string& cookie, const ChangeFn& fn,
                               const CountFn& progress) {
    ldap::SyncRequest req;
    req.base = s_.base;
    req.filter = filter();
    req.attributes = {"*", "entryUUID"};
    req.cookie = cookie;
    Delta d;
    std::vector<SourceChange> buffered;  // handed on only once the refresh is known to be usable
    auto outcome = ldap::refresh_only(conn, req, [&](ldap::SyncEvent e) {
      SourceChange c;
      c.uuid = e.entry_uuid;
      switch (e.kind) {
        case ldap::SyncEventKind::kChanged:
          c.kind = SourceChange::Kind::kUpsert;
          c.key = object_key(e.entry, s_.profile);
          if (c.uuid.empty()) c.uuid = first_trimmed(e.entry, "entryUUID");
          c.entry = std::move(e.entry);
          break;
        case ldap::SyncEventKind::kDeleted:
          c.kind = SourceChange::Kind::kDelete;
          break;
        case ldap::SyncEventKind::kPresent:
          c.kind = SourceChange::Kind::kUnchanged;
          break;
        default:
          return true;
      }
      buffered.push_back(std::move(c));
      if (++d.outcome.entries % 1000 == 0 && progress) progress(d.outcome.entries);
      return true;
    });
    if (!outcome) return tl::unexpected(outcome.error());
    if (outcome->refresh_required) {
      d.refresh_required = true;
      return d;
    }
    if (!outcome->complete()) {
      d.outcome.complete = false;
      return d;
    }
    for (auto& c : buffered) fn(std::move(c));
    d.outcome.full = outcome->deletes == ldap::DeleteReporting::kPresentPhase;
    d.outcome.complete = outcome->complete();
    d.outcome.problem = outcome->problem;
    d.outcome.cookie = outcome->cookie.value_or(cookie);
    return d;
  }

  void deliver(Entry e, const ChangeFn& fn) const {
    SourceChange c;
    c.key = object_key(e, s_.profile);
    c.uuid = first_trimmed(e, "entryUUID");
    c.entry = std::move(e);
    fn(std::move(c));
  }

  // Whether the root DSE lists the content synchronization control (RFC 4533).
  static Expected<bool> offers_content_sync(ldap::Connection& conn) {
    bool offered = false;
    auto r = conn.search(root_dse({"supportedControl"}), [&](Entry e) {
      if (const auto* v = e.find("supportedControl")) {
        for (const auto& oid : *v) offered = offered || oid == "1.3.6.1.4.1.4203.1.9.1.1";
      }
      return false;
    });
    if (!r) return tl::unexpected(r.error());
    return offered;
  }

  // A cookie of this server for "now": its naming context's contextCSN values.
  Expected<std::string> context_csn(ldap::Connection& conn) const {
    std::vector<std::string> contexts;
    auto r = conn.search(root_dse({"namingContexts"}), [&](Entry e) {
      if (const auto* v = e.find("namingContexts")) contexts = *v;
      return false;
    });
    if (!r) return tl::unexpected(r.error());
    auto base = Dn::parse(s_.base);
    std::string context;
    for (const auto& c : contexts) {
      auto dn = Dn::parse(c);
      if (!dn || !base) continue;
      const auto n = dn->normalized(), b = base->normalized();
      if (b == n || (b.size() > n.size() && b.ends_with("," + n))) context = c;
    }
    if (context.empty()) return std::string{};  // no feed then: every run reads everything
    std::vector<std::string> csns;
    ldap::SearchRequest req;
    req.base = context;
    req.scope = ldap::Scope::kBase;
    req.paged = false;
    req.attributes = {"contextCSN"};
    auto c = conn.search(req, [&](Entry e) {
      if (const auto* v = e.find("contextCSN")) csns = *v;
      return false;
    });
    if (!c) return tl::unexpected(c.error());
    if (csns.empty()) return std::string{};
    std::string cookie = "rid=000,csn=";
    for (std::size_t i = 0; i < csns.size(); ++i) cookie += (i ? ";" : "") + csns[i];
    return cookie;
  }

  static ldap::SearchRequest root_dse(std::vector<std::string> attributes) {
    ldap::SearchRequest req;
    req.base = "";
    req.scope = ldap::Scope::kBase;
    req.paged = false;
    req.attributes = std::move(attributes);
    return req;
  }

 public:
  Expected<bool> still_there(const std::string& dn, const std::string& key) override {
    auto conn = connect();
    if (!conn) return tl::unexpected(conn.error());
    bool found = false;
    ldap::SearchRequest base;
    base.base = dn;
    base.scope = ldap::Scope::kBase;
    base.paged = false;
    base.filter = filter();  // an object that left the filter is gone as far as the sync goes
    base.attributes = {"1.1"};
    auto r = conn->search(base, [&](Entry) { return !(found = true); });
    if (!r && r.error().code != ErrorCode::kNotFound) return tl::unexpected(r.error());
    if (found || key.empty() || s_.profile != Profile::kDomino) return found;
    // Moved under a new DN: still there when its key is. (objectGUID is binary: a filter on it
    // needs escaping of every octet; AD objects are confirmed by DN and entryUUID.)
    ldap::SearchRequest by_key;
    by_key.base = s_.base;
    by_key.paged = false;
    by_key.attributes = {"1.1"};
    by_key.filter = fmt::format("(&(|(dominoUNID={0})(entryUUID={0})){1})", filter_escape(key), filter());
    auto k = conn->search(by_key, [&](Entry) { return !(found = true); });
    if (!k) return tl::unexpected(k.error());
    return found;
  }

 private:
  Expected<ldap::Connection> connect() {
    auto options = ldap_options(s_, id_);
    if (!options) return tl::unexpected(options.error());
    return ldap::Connection::open(std::move(*options));
  }
  DirectorySettings s_;
  IdSource id_;
  std::string stamp_prefix_;
};

}  // namespace

std::string object_key(const Entry& entry, Profile profile) {
  if (profile == Profile::kDomino) {
    if (auto unid = first_trimmed(entry, "dominoUNID"); !unid.empty()) return unid;
  } else if (const auto* guid = entry.find("objectGUID"); guid != nullptr && !guid->empty()) {
    if (auto text = guid_text(guid->front())) return *text;
    if (guid->front().size() == 36) return to_lower(guid->front());
  }
  return first_trimmed(entry, "entryUUID");
}

Expected<ldap::Options> ldap_options(const DirectorySettings& s, const IdSource& id) {
  ldap::Options o;
  o.uri = s.uri;
  o.tls = s.tls;
  o.ca_file = s.ca_file;
  o.timeouts = s.timeouts;
  o.page_size = s.page_size;
  switch (s.bind) {
    case BindKind::kAnonymous:
      o.bind = ldap::SimpleBind{};
      break;
    case BindKind::kSimple: {
      auto password = identity::read_password_file(s.password_file, "password_file of the " + s.system + " directory");
      if (!password) return tl::unexpected(password.error());
      ldap::SimpleBind b;
      b.dn = s.bind_dn;
      b.password = std::move(*password);
      o.bind = std::move(b);
      break;
    }
    case BindKind::kSaslExternal: {
      auto current = id ? id() : nullptr;
      if (!current) {
        return tl::unexpected(Error::transient_error(
            ErrorCode::kUnavailable,
            fmt::format("the {} directory binds with the connector ID (SASL EXTERNAL), and the ID is locked", s.system),
            "run `bridgehead unlock`; the next run proceeds without a restart"));
      }
      o.bind = ldap::SaslExternalBind{std::move(current)};
      break;
    }
  }
  return o;
}

std::string read_filter(const DirectorySettings& settings, const std::string& stamp_prefix) {
  const std::string own = fmt::format("(!({}={}*))", stamp_attribute_of(settings), filter_escape(stamp_prefix));
  const std::string& scope = settings.scope.filter;
  if (scope.empty()) return own;
  return fmt::format("(&{}{})", scope.starts_with('(') ? scope : "(" + scope + ")", own);
}

Expected<std::unique_ptr<Source>> open_source(const DirectorySettings& settings, const IdSource& id,
                                              const std::string& stamp_prefix) {
  if (!settings.ldif_file.empty()) return std::make_unique<LdifSource>(settings);
  return std::make_unique<LdapSource>(settings, id, stamp_prefix);
}

}  // namespace bridgehead::directory::sync
