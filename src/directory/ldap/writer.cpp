#include "directory/ldap/writer.hpp"

#include <algorithm>
#include <chrono>
#include <functional>
#include <unordered_map>
#include <utility>

#include "core/text.hpp"
#include "directory/dn.hpp"
#include "directory/ldap/ldap_error.hpp"
#include "directory/ldap/libldap_support.hpp"

namespace bridgehead::directory::ldap {

namespace {

using detail::ModList;

template <class... F>
struct Overloaded : F... {
  using F::operator()...;
};
template <class... F>
Overloaded(F...) -> Overloaded<F...>;

std::string describe(const WriteOperation& op) {
  return std::visit(Overloaded{
                        [](const AddRequest& a) { return "add of " + escape_control(a.entry.dn()); },
                        [](const ModifyRequest& m) { return "modify of " + escape_control(m.dn); },
                        [](const DeleteRequest& d) { return "delete of " + escape_control(d.dn); },
                        [](const RenameRequest& r) {
                          std::string what = "rename of " + escape_control(r.dn) + " to " + escape_control(r.new_rdn);
                          if (r.new_superior) what += " below " + escape_control(*r.new_superior);
                          return what;
                        },
                    },
                    op);
}

// The entries an operation touches, as normalized DNs (its own, and a rename's new one), and
// every entry above them. Two operations whose entries are equal, or one above the other, are
// never in flight together: the server may run requests of one connection in any order, and
// these must apply in input order (a rename then a modify of the renamed entry; a child's
// delete before its parent's).
struct Footprint {
  std::vector<std::string> entries;
  std::vector<std::string> above;
};

void add_dn(Footprint& f, std::string_view text) {
  auto dn = Dn::parse(text);
  if (!dn) {  // the server will refuse it; it still must not overtake an equal text
    f.entries.push_back(to_lower(text));
    return;
  }
  f.entries.push_back(dn->normalized());
  for (Dn p = dn->parent(); !p.empty(); p = p.parent()) f.above.push_back(p.normalized());
}

Footprint footprint_of(const WriteOperation& op) {
  Footprint f;
  add_dn(f, target_dn(op));
  if (const auto* r = std::get_if<RenameRequest>(&op)) {
    std::string parent;
    if (r->new_superior) {
      parent = *r->new_superior;
    } else if (auto dn = Dn::parse(r->dn); dn) {
      parent = dn->parent().to_string();
    }
    add_dn(f, parent.empty() ? r->new_rdn : r->new_rdn + "," + parent);
  }
  return f;
}

class EntryLocks {
 public:
  bool conflicts(const Footprint& f) const {
    for (const std::string& e : f.entries) {
      if (held_.contains(e) || below_.contains(e)) return true;
    }
    return std::any_of(f.above.begin(), f.above.end(), [&](const std::string& a) { return held_.contains(a); });
  }
  void hold(const Footprint& f) {
    for (const std::string& e : f.entries) ++held_[e];
    for (const std::string& a : f.above) ++below_[a];
  }
  void release(const Footprint& f) {
    for (const std::string& e : f.entries) drop(held_, e);
    for (const std::string& a : f.above) drop(below_, a);
  }

 private:
  static void drop(std::unordered_map<std::string, int>& m, const std::string& key) {
    auto it = m.find(key);
    if (it != m.end() && --it->second == 0) m.erase(it);
  }
  std::unordered_map<std::string, int> held_;   // entries with an operation in flight
  std::unordered_map<std::string, int> below_;  // entries with an operation in flight below them
};

// Why a run stopped before every operation had its answer.
struct Stop {
  ErrorCode code = ErrorCode::kUnavailable;  // kUnavailable: the connection broke; kTimeout: no answer
  std::string why;                           // "the connection broke (server down)"
};

// An answer: the operation's position in the run's order, its message id, and its result.
using Report = std::function<void(std::size_t position, int msgid, Expected<void> result)>;

// The operations of a run that got no answer when it stopped.
struct Unanswered {
  std::vector<std::size_t> sent;    // sent, no answer: may or may not have been applied
  std::vector<std::size_t> unsent;  // never sent
};

// What the writer uses of its Connection (whose friend it is).
struct Link {
  LDAP* ld = nullptr;
  std::string uri;
  std::chrono::milliseconds timeout{0};                    // Timeouts::operation
  std::function<Error(int, std::string_view)> last_error;  // Connection::last_error
};

bool is_connection_lost(int rc) { return rc == LDAP_SERVER_DOWN || rc == LDAP_CONNECT_ERROR; }

Error not_done(const WriteOperation& op, std::string_view uri, const Stop& stop, std::string_view outcome) {
  return Error::transient_error(stop.code,
                                describe(op) + " at " + std::string(uri) + " " + std::string(outcome) + ": " + stop.why,
                                "check that the directory server runs and answers there, then run again");
}

}  // namespace

const std::string& target_dn(const WriteOperation& op) {
  return std::visit(Overloaded{
                        [](const AddRequest& a) -> const std::string& { return a.entry.dn(); },
                        [](const ModifyRequest& m) -> const std::string& { return m.dn; },
                        [](const DeleteRequest& d) -> const std::string& { return d.dn; },
                        [](const RenameRequest& r) -> const std::string& { return r.dn; },
                    },
                    op);
}

std::size_t WriteOutcome::succeeded() const {
  return static_cast<std::size_t>(
      std::count_if(results.begin(), results.end(), [](const auto& r) { return r.has_value(); }));
}

namespace {

// The pipeline: sends the operations of one run in order, up to in_flight outstanding, and
// hands each answer to the report as it comes.
class PipelineRun {
 public:
  PipelineRun(const Link& link, std::span<const WriteOperation> ops, int in_flight)
      : link_(link), ld_(link.ld), ops_(ops), in_flight_(static_cast<std::size_t>(in_flight)) {}

  // Runs operations ops[order[0]], ops[order[1]], ... with `controls` on each request.
  // Returns the stop, with what had no answer, when the connection broke or went silent.
  std::optional<Stop> run(std::span<const std::size_t> order, LDAPControl** controls, const Report& report,
                          Unanswered& left) {
    struct InFlight {
      std::size_t position;
      Footprint footprint;
    };
    std::unordered_map<int, InFlight> in_flight;
    EntryLocks locks;
    std::size_t next = 0;
    std::optional<Footprint> waiting;  // the next operation's, computed once while it waits
    std::optional<Stop> stop;

    while (!stop && (next < order.size() || !in_flight.empty())) {
      while (next < order.size() && in_flight.size() < in_flight_) {
        const WriteOperation& op = ops_[order[next]];
        if (const auto* m = std::get_if<ModifyRequest>(&op); m != nullptr && m->changes.empty()) {
          report(next++, 0, {});
          continue;
        }
        if (!waiting) waiting = footprint_of(op);
        if (locks.conflicts(*waiting)) break;  // an answer first
        int msgid = 0;
        const int rc = send(op, controls, &msgid);
        if (is_connection_lost(rc)) {
          stop = Stop{ErrorCode::kUnavailable, "the connection broke (" + result_code_meaning(rc) + ")"};
          break;
        }
        if (rc != LDAP_SUCCESS) {
          report(next++, 0, fail(link_.last_error(rc, describe(op))));
          waiting.reset();
          continue;
        }
        locks.hold(*waiting);
        in_flight.emplace(msgid, InFlight{next++, std::move(*waiting)});
        waiting.reset();
      }
      if (stop || in_flight.empty()) continue;

      timeval tv = to_timeval(link_.timeout);
      LDAPMessage* raw = nullptr;
      const int type = ldap_result(ld_, LDAP_RES_ANY, LDAP_MSG_ONE, &tv, &raw);
      MessageGuard msg(raw);
      if (type == 0) {
        stop = Stop{ErrorCode::kTimeout, "no answer within " + detail::seconds_text(link_.timeout)};
        for (const auto& [id, f] : in_flight) ldap_abandon_ext(ld_, id, nullptr, nullptr);
        break;
      }
      if (type < 0) {
        int code = LDAP_SERVER_DOWN;
        ldap_get_option(ld_, LDAP_OPT_RESULT_CODE, &code);
        stop = Stop{ErrorCode::kUnavailable, "the connection broke (" + result_code_meaning(code) + ")"};
        break;
      }
      const int id = ldap_msgid(raw);
      auto it = in_flight.find(id);
      if (it == in_flight.end()) continue;  // an unsolicited notice (msgid 0): the read after it fails
      const std::size_t position = it->second.position;
      locks.release(it->second.footprint);
      in_flight.erase(it);

      int code = LDAP_OTHER;
      char* diag = nullptr;
      const int rc = ldap_parse_result(ld_, raw, &code, nullptr, &diag, nullptr, nullptr, 0);
      const std::string diagnostic = diag != nullptr ? diag : "";
      if (diag != nullptr) ldap_memfree(diag);
      const WriteOperation& op = ops_[order[position]];
      if (rc != LDAP_SUCCESS) {
        report(position, id, fail(link_.last_error(rc, describe(op))));
      } else if (code != LDAP_SUCCESS) {
        report(position, id, fail(result_error(code, describe(op), link_.uri, diagnostic)));
      } else {
        report(position, id, {});
      }
    }
    if (!stop) return std::nullopt;
    for (const auto& [id, f] : in_flight) left.sent.push_back(f.position);
    std::sort(left.sent.begin(), left.sent.end());
    for (std::size_t p = next; p < order.size(); ++p) left.unsent.push_back(p);
    return stop;
  }

 private:
  int send(const WriteOperation& op, LDAPControl** controls, int* msgid) {
    return std::visit(
        Overloaded{
            [&](const AddRequest& a) {
              ModList mods;
              for (const Attribute& attr : a.entry.attributes()) mods.add(LDAP_MOD_ADD, attr.name, attr.values);
              return ldap_add_ext(ld_, a.entry.dn().c_str(), mods.finish(), controls, nullptr, msgid);
            },
            [&](const ModifyRequest& m) {
              ModList mods;
              for (const Modification& c : m.changes) mods.add(detail::mod_op(c.op), c.attribute, c.values);
              return ldap_modify_ext(ld_, m.dn.c_str(), mods.finish(), controls, nullptr, msgid);
            },
            [&](const DeleteRequest& d) { return ldap_delete_ext(ld_, d.dn.c_str(), controls, nullptr, msgid); },
            [&](const RenameRequest& r) {
              return ldap_rename(ld_, r.dn.c_str(), r.new_rdn.c_str(),
                                 r.new_superior ? r.new_superior->c_str() : nullptr, r.delete_old_rdn ? 1 : 0, controls,
                                 nullptr, msgid);
            },
        },
        op);
  }

  const Link& link_;
  LDAP* ld_;
  std::span<const WriteOperation> ops_;
  std::size_t in_flight_;
};

}  // namespace

Expected<bool> Writer::supports_transactions() {
  if (transactions_) return *transactions_;
  SearchRequest root;
  root.base = "";
  root.scope = Scope::kBase;
  root.attributes = {"supportedExtension"};
  root.paged = false;
  bool start = false, end = false;
  auto read = connection_->search(root, [&](Entry e) {
    if (const auto* values = e.find("supportedExtension")) {
      for (const std::string& v : *values) {
        start = start || v == kStartTransactionOid;
        end = end || v == kEndTransactionOid;
      }
    }
    return true;
  });
  if (!read) return fail(read.error());
  if (!read->complete()) return fail(*read->problem);
  transactions_ = start && end;
  return *transactions_;
}

namespace {

// One write() call: the results, and the runs of the pipeline that make them.
class Batch {
 public:
  Batch(const Link& link, std::span<const WriteOperation> ops, int in_flight)
      : uri_(link.uri), ops_(ops), pipeline_(link, ops, in_flight) {
    out_.results.reserve(ops.size());
    for (std::size_t i = 0; i < ops.size(); ++i) {
      out_.results.emplace_back(fail(Error::permanent(ErrorCode::kInternal, describe(ops[i]) + ": no result", "")));
    }
  }

  bool stopped() const { return stop_.has_value(); }
  WriteOutcome take() { return std::move(out_); }
  PipelineRun& pipeline() { return pipeline_; }
  const std::string& uri() const { return uri_; }
  const WriteOperation& op(std::size_t index) const { return ops_[index]; }
  void set(std::size_t index, Expected<void> result) { out_.results[index] = std::move(result); }
  WriteOutcome& outcome() { return out_; }

  // The operations `indices` each alone, without a transaction.
  void plain(const std::vector<std::size_t>& indices) {
    Unanswered left;
    auto stop = pipeline_.run(
        indices, nullptr, [&](std::size_t p, int, Expected<void> r) { set(indices[p], std::move(r)); }, left);
    if (!stop) return;
    for (std::size_t p : left.sent)
      set(indices[p],
          fail(not_done(op(indices[p]), uri_, *stop, "was not acknowledged and may or may not have been applied")));
    for (std::size_t p : left.unsent) set(indices[p], fail(not_done(op(indices[p]), uri_, *stop, "was not sent")));
    stop_ = std::move(stop);
  }

  // The operations `indices`, after a stop: none is sent.
  void not_sent(const std::vector<std::size_t>& indices) {
    for (std::size_t i : indices) set(i, fail(not_done(op(i), uri_, *stop_, "was not sent")));
  }

  void stop(Stop s) { stop_ = std::move(s); }

 private:
  std::string uri_;
  std::span<const WriteOperation> ops_;
  PipelineRun pipeline_;
  WriteOutcome out_;
  std::optional<Stop> stop_;
};

// The message id the server names in a rejected End Transaction response (RFC 5805 2.3:
// txnEndRes ::= SEQUENCE { messageID MessageID OPTIONAL, updatesControls ... OPTIONAL }).
std::optional<int> failed_message_id(const berval* data) {
  if (data == nullptr || data->bv_val == nullptr || data->bv_len == 0) return std::nullopt;
  BerElement* ber = ber_init(const_cast<berval*>(data));
  if (ber == nullptr) return std::nullopt;
  ber_len_t len = 0;
  ber_int_t id = 0;
  ber_tag_t tag = ber_peek_tag(ber, &len);
  if (tag == LBER_SEQUENCE) {
    tag = ber_scanf(ber, "{i", &id);
  } else if (tag == LBER_INTEGER) {
    tag = ber_scanf(ber, "i", &id);
  } else {
    tag = LBER_ERROR;
  }
  ber_free(ber, 1);
  if (tag == LBER_ERROR) return std::nullopt;
  return static_cast<int>(id);
}

}  // namespace

Expected<WriteOutcome> Writer::write(std::span<const WriteOperation> operations, const WriteOptions& options) {
  if (options.in_flight < 1 || options.in_flight > kMaxInFlight) {
    return fail(Error::permanent(
        ErrorCode::kInvalidArgument,
        "LDAP writes in flight " + std::to_string(options.in_flight) + " is outside 1.." + std::to_string(kMaxInFlight),
        "use 32 to 256"));
  }
  if (options.transaction_size > 0) {
    auto offered = supports_transactions();
    if (!offered) return fail(offered.error());
    if (!*offered) {
      return fail(Error::permanent(ErrorCode::kUnavailable,
                                   "no transactions: " + connection_->uri() +
                                       " does not offer LDAP transactions (RFC 5805: its root DSE lists no "
                                       "supportedExtension " +
                                       kStartTransactionOid + " and " + kEndTransactionOid + ")",
                                   "write without transactions (transaction size 0)"));
    }
  }
  detail::SigpipeBlocked no_sigpipe;
  Link link;
  link.ld = connection_->ld_;
  link.uri = connection_->uri_;
  link.timeout = connection_->timeouts_.operation;
  link.last_error = [c = connection_](int rc, std::string_view what) { return c->last_error(rc, what); };
  Batch batch(link, operations, options.in_flight);
  std::vector<std::size_t> all(operations.size());
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = i;
  if (options.transaction_size == 0) {
    batch.plain(all);
    return batch.take();
  }

  LDAP* ld = link.ld;
  const std::string& uri = link.uri;
  for (std::size_t first = 0; first < all.size(); first += options.transaction_size) {
    const std::size_t last = std::min(all.size(), first + options.transaction_size);
    const std::vector<std::size_t> chunk(all.begin() + static_cast<std::ptrdiff_t>(first),
                                         all.begin() + static_cast<std::ptrdiff_t>(last));
    if (batch.stopped()) {
      batch.not_sent(chunk);
      continue;
    }
    WriteOutcome& out = batch.outcome();
    const std::string what = "a transaction of " + std::to_string(chunk.size()) + " operations at " + uri;

    berval* txn_id = nullptr;
    int rc = ldap_txn_start_s(ld, nullptr, nullptr, &txn_id);
    if (rc != LDAP_SUCCESS) {
      if (txn_id != nullptr) ber_bvfree(txn_id);
      if (is_connection_lost(rc) || rc == LDAP_TIMEOUT) {
        batch.stop(Stop{rc == LDAP_TIMEOUT ? ErrorCode::kTimeout : ErrorCode::kUnavailable,
                        "the connection broke (" + result_code_meaning(rc) + ") as a transaction was started"});
        batch.not_sent(chunk);
        continue;
      }
      Error e = link.last_error(rc, "start of " + what);
      e.message += "; the operations were sent one by one without a transaction";
      out.transaction_problems.push_back(std::move(e));
      ++out.transactions_rejected;
      out.replayed += chunk.size();
      batch.plain(chunk);
      continue;
    }
    // slapd's transaction identifier is empty; the control must still carry it (a present,
    // empty value), so a null pointer from libldap becomes "".
    static char kEmpty[] = "";
    LDAPControl spec{};
    spec.ldctl_oid = const_cast<char*>(LDAP_CONTROL_TXN_SPEC);
    spec.ldctl_value.bv_val = txn_id != nullptr && txn_id->bv_val != nullptr ? txn_id->bv_val : kEmpty;
    spec.ldctl_value.bv_len = txn_id != nullptr ? txn_id->bv_len : 0;
    spec.ldctl_iscritical = 1;
    LDAPControl* controls[] = {&spec, nullptr};

    // Queued is not done: an operation's own answer inside a transaction only says the server
    // took it into the transaction; it is done when the commit is acknowledged.
    std::vector<int> queued_id(chunk.size(), -1);
    Unanswered left;
    auto stop = batch.pipeline().run(
        chunk, controls,
        [&](std::size_t p, int msgid, Expected<void> r) {
          if (r) {
            queued_id[p] = msgid;
          } else {
            batch.set(chunk[p], std::move(r));
          }
        },
        left);
    std::vector<std::size_t> queued;
    std::unordered_map<int, std::size_t> by_id;
    for (std::size_t p = 0; p < chunk.size(); ++p) {
      if (queued_id[p] < 0) continue;
      queued.push_back(chunk[p]);
      if (queued_id[p] > 0) by_id.emplace(queued_id[p], chunk[p]);
    }
    if (stop) {
      std::vector<std::size_t> lost = queued;
      for (std::size_t p : left.sent) lost.push_back(chunk[p]);
      for (std::size_t p : left.unsent) lost.push_back(chunk[p]);
      std::sort(lost.begin(), lost.end());
      for (std::size_t i : lost) {
        batch.set(i, fail(not_done(batch.op(i), uri, *stop, "was not applied: its transaction was never committed")));
      }
      ber_bvfree(txn_id);
      batch.stop(std::move(*stop));
      continue;
    }

    // slapd refuses to commit a transaction without updates (an empty modify sends nothing).
    const bool commit = !by_id.empty();
    int msgid = 0;
    rc = ldap_txn_end(ld, commit ? 1 : 0, txn_id, nullptr, nullptr, &msgid);
    ber_bvfree(txn_id);
    std::optional<Stop> lost;
    LDAPMessage* raw = nullptr;
    if (is_connection_lost(rc)) {
      lost = Stop{ErrorCode::kUnavailable, "the connection broke (" + result_code_meaning(rc) + ") before the commit"};
    } else if (rc == LDAP_SUCCESS) {
      timeval tv = to_timeval(link.timeout);
      const int type = ldap_result(ld, msgid, LDAP_MSG_ALL, &tv, &raw);
      if (type == 0) {
        lost = Stop{ErrorCode::kTimeout, "the commit had no answer within " + detail::seconds_text(link.timeout)};
      } else if (type < 0) {
        int code = LDAP_SERVER_DOWN;
        ldap_get_option(ld, LDAP_OPT_RESULT_CODE, &code);
        lost = Stop{ErrorCode::kUnavailable,
                    "the connection broke (" + result_code_meaning(code) + ") before the commit was answered"};
      }
    }
    MessageGuard end_msg(raw);
    if (lost) {
      const bool sent = rc == LDAP_SUCCESS;
      for (std::size_t i : queued) {
        batch.set(i, fail(not_done(batch.op(i), uri, *lost,
                                   sent ? "may or may not have been applied (its transaction's commit was sent)"
                                        : "was not applied: its transaction was never committed")));
      }
      batch.stop(std::move(*lost));
      continue;
    }
    if (!commit) {  // nothing was queued; the empty transaction was aborted
      for (std::size_t i : queued) batch.set(i, {});
      continue;
    }

    int code = rc;
    std::string diagnostic;
    std::optional<int> failed_id;
    if (rc == LDAP_SUCCESS) {
      berval* data = nullptr;
      if (ldap_parse_extended_result(ld, raw, nullptr, &data, 0) == LDAP_SUCCESS) failed_id = failed_message_id(data);
      if (data != nullptr) ber_bvfree(data);
      char* diag = nullptr;
      if (ldap_parse_result(ld, raw, &code, nullptr, &diag, nullptr, nullptr, 0) != LDAP_SUCCESS) code = LDAP_OTHER;
      if (diag != nullptr) {
        diagnostic = diag;
        ldap_memfree(diag);
      }
    }
    if (code == LDAP_SUCCESS) {
      for (std::size_t i : queued) batch.set(i, {});
      ++out.transactions_committed;
      continue;
    }
    // Rejected whole: nothing of it was applied. The operation the server names fails with
    // the server's reason; every other one is sent again alone, so that it fails or lands on
    // its own merits.
    ++out.transactions_rejected;
    std::vector<std::size_t> again;
    std::optional<std::size_t> culprit;
    if (failed_id) {
      if (auto it = by_id.find(*failed_id); it != by_id.end()) culprit = it->second;
    }
    // "Other error" (and a transient one) says nothing against the operation itself: slapd
    // 2.5's back-mdb fails the delete of an entry's last child inside a transaction with it,
    // though the same delete succeeds alone. Such a culprit is sent again like the others.
    const bool condemned = culprit && code != LDAP_OTHER && !is_transient_result(code);
    for (std::size_t i : queued) {
      if (!condemned || i != *culprit) again.push_back(i);
    }
    Error problem = result_error(code, "commit of " + what, uri, diagnostic);
    if (culprit) {
      problem.message += "; the server rejected it because of the " + describe(batch.op(*culprit));
    } else {
      problem.message += "; the server named no operation as the cause";
    }
    if (condemned) {
      batch.set(*culprit,
                fail(result_error(code, describe(batch.op(*culprit)) + " (in a transaction)", uri, diagnostic)));
      problem.message += "; the other " + std::to_string(again.size()) + " were sent again without a transaction";
    } else {
      problem.message += "; all " + std::to_string(again.size()) + " were sent again without a transaction";
    }
    out.transaction_problems.push_back(std::move(problem));
    out.replayed += again.size();
    batch.plain(again);
  }
  return batch.take();
}

}  // namespace bridgehead::directory::ldap
