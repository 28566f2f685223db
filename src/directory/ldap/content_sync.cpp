#include "directory/ldap/content_sync.hpp"

#include <lber.h>
#include <ldap.h>

#include <utility>

#include "core/text.hpp"
#include "directory/ldap/ldap_error.hpp"
#include "directory/ldap/ldap_message.hpp"

namespace bridgehead::directory::ldap {

namespace {

constexpr ber_tag_t kBoolean = 0x01;
constexpr ber_tag_t kOctetString = 0x04;

std::string bytes(const berval& bv) { return bv.bv_val != nullptr ? std::string(bv.bv_val, bv.bv_len) : std::string(); }

// A BerElement over a copy of a control's or an intermediate response's value.
struct Ber {
  BerElement* ber = nullptr;
  explicit Ber(const berval& value) : ber(ber_init(const_cast<berval*>(&value))) {}
  ~Ber() {
    if (ber != nullptr) ber_free(ber, 1);
  }
  ber_tag_t peek() {
    ber_len_t len = 0;
    return ber_peek_tag(ber, &len);
  }
  // An optional syncCookie at this point of a SEQUENCE.
  bool cookie(std::optional<std::string>& out) {
    if (peek() != kOctetString) return true;
    berval bv{};
    if (ber_scanf(ber, "m", &bv) == LBER_ERROR) return false;
    out = bytes(bv);
    return true;
  }
  // An optional BOOLEAN with its DEFAULT.
  bool boolean(bool& out, bool fallback) {
    out = fallback;
    if (peek() != kBoolean) return true;
    ber_int_t b = 0;
    if (ber_scanf(ber, "b", &b) == LBER_ERROR) return false;
    out = b != 0;
    return true;
  }
};

// The syncRequestValue (RFC 4533 2.2): SEQUENCE { mode ENUMERATED, cookie OCTET STRING OPTIONAL,
// reloadHint BOOLEAN DEFAULT FALSE }.
bool encode_sync_request(int mode, const std::string& cookie, std::string& out) {
  BerElement* ber = ber_alloc_t(LBER_USE_DER);
  if (ber == nullptr) return false;
  int rc = ber_printf(ber, "{e", static_cast<ber_int_t>(mode));
  if (rc != -1 && !cookie.empty()) {
    berval bv{};
    bv.bv_val = const_cast<char*>(cookie.data());
    bv.bv_len = static_cast<ber_len_t>(cookie.size());
    rc = ber_printf(ber, "O", &bv);
  }
  if (rc != -1) rc = ber_printf(ber, "N}");
  berval flat{};
  if (rc != -1) rc = ber_flatten2(ber, &flat, 0);
  if (rc != -1) out = bytes(flat);
  ber_free(ber, 1);
  return rc != -1;
}

class SyncRun {
 public:
  SyncRun(Connection& conn, const SyncRequest& request, const SyncCallback& on_event, bool persist)
      : conn_(conn),
        ld_(conn.native_handle()),
        request_(request),
        on_event_(on_event),
        persist_(persist),
        what_("content synchronization (RFC 4533) of " + escape_control(request.base) + " at " + conn.uri()) {}

  Expected<SyncOutcome> run(const std::stop_token& stop) {
    if (auto sent = send(); !sent) return fail(sent.error());
    auto deadline = std::chrono::steady_clock::now() + conn_.timeouts().operation;
    while (true) {
      if (stop.stop_requested()) {
        return stopped("a stop was requested");
      }
      const bool waiting_for_changes = persist_ && refreshed_;
      auto slice = kPersistStopCheck;
      if (!waiting_for_changes) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
          abandon();
          return incomplete(
              Completeness::kTimeLimit,
              Error::transient_error(ErrorCode::kTimeout, what_ + ": no answer within the operation timeout",
                                     "check the server's load, or raise the operation timeout"));
        }
        slice = std::min(slice, left);
      }
      timeval tv = to_timeval(slice);
      MessageGuard msg;
      int type = ldap_result(ld_, msgid_, LDAP_MSG_ONE, &tv, &msg.msg);
      if (type == 0) continue;
      if (type < 0) {
        int code = LDAP_SERVER_DOWN;
        ldap_get_option(ld_, LDAP_OPT_RESULT_CODE, &code);
        Error e = result_error(code, what_, conn_.uri(), "");
        e.message =
            "the connection to " + conn_.uri() + " broke during the " + what_ + ": " + result_code_meaning(code);
        e.remedy = "reconnect and refresh from the last cookie stored (nothing after it is lost)";
        e.severity = Severity::kTransient;
        return incomplete(Completeness::kDisconnected, std::move(e));
      }
      deadline = std::chrono::steady_clock::now() + conn_.timeouts().operation;
      bool go_on = true;
      if (type == LDAP_RES_SEARCH_ENTRY) {
        go_on = on_entry(msg.msg);
      } else if (type == LDAP_RES_INTERMEDIATE) {
        go_on = on_intermediate(msg.msg);
      } else if (type == LDAP_RES_SEARCH_RESULT) {
        return on_done(msg.msg);
      }
      if (!bad_.empty()) {
        abandon();
        return incomplete(Completeness::kServerError,
                          Error::permanent(ErrorCode::kParse, what_ + ": " + bad_,
                                           "the server's RFC 4533 messages are malformed: report it to its vendor"));
      }
      if (!go_on) return stopped("its reader stopped it");
    }
  }

 private:
  Expected<void> send() {
    std::string value;
    if (!encode_sync_request(persist_ ? LDAP_SYNC_REFRESH_AND_PERSIST : LDAP_SYNC_REFRESH_ONLY, request_.cookie,
                             value)) {
      return fail(Error::permanent(ErrorCode::kInternal, what_ + ": cannot encode the sync request control", ""));
    }
    LDAPControl control{};
    control.ldctl_oid = const_cast<char*>(LDAP_CONTROL_SYNC);
    control.ldctl_value.bv_val = value.data();
    control.ldctl_value.bv_len = static_cast<ber_len_t>(value.size());
    control.ldctl_iscritical = 1;  // a server without syncprov must refuse, not answer a plain search
    LDAPControl* controls[] = {&control, nullptr};
    std::vector<char*> attrs;
    for (const std::string& a : request_.attributes) attrs.push_back(const_cast<char*>(a.c_str()));
    attrs.push_back(nullptr);
    const int scope = request_.scope == Scope::kBase       ? LDAP_SCOPE_BASE
                      : request_.scope == Scope::kOneLevel ? LDAP_SCOPE_ONELEVEL
                                                           : LDAP_SCOPE_SUBTREE;
    int rc = ldap_search_ext(ld_, request_.base.c_str(), scope, request_.filter.c_str(),
                             request_.attributes.empty() ? nullptr : attrs.data(), 0, controls, nullptr, nullptr, 0,
                             &msgid_);
    if (rc != LDAP_SUCCESS) return fail(result_error(rc, what_, conn_.uri(), ""));
    return {};
  }

  bool deliver(SyncEvent event) {
    if (event.cookie) out_.cookie = event.cookie;
    switch (event.kind) {
      case SyncEventKind::kChanged:
        ++out_.changed;
        break;
      case SyncEventKind::kDeleted:
        ++out_.deleted;
        break;
      case SyncEventKind::kPresent:
        ++out_.present;
        break;
      default:
        break;
    }
    ++events_;
    return on_event_(std::move(event));
  }

  // An entry with its Sync State control (RFC 4533 2.3): SEQUENCE { state ENUMERATED,
  // entryUUID OCTET STRING (16), cookie OCTET STRING OPTIONAL }.
  bool on_entry(LDAPMessage* msg) {
    LDAPControl** controls = nullptr;
    ldap_get_entry_controls(ld_, msg, &controls);
    LDAPControl* state = controls != nullptr ? ldap_control_find(LDAP_CONTROL_SYNC_STATE, controls, nullptr) : nullptr;
    SyncEvent event;
    bool ok = state != nullptr;
    if (ok) {
      Ber ber(state->ldctl_value);
      ber_int_t kind = 0;
      berval uuid{};
      ok = ber.ber != nullptr && ber_scanf(ber.ber, "{em", &kind, &uuid) != LBER_ERROR && ber.cookie(event.cookie);
      auto text = ok ? uuid_text(bytes(uuid)) : std::nullopt;
      ok = ok && text.has_value();
      if (ok) {
        event.entry_uuid = *text;
        event.kind = kind == LDAP_SYNC_PRESENT  ? SyncEventKind::kPresent
                     : kind == LDAP_SYNC_DELETE ? SyncEventKind::kDeleted
                                                : SyncEventKind::kChanged;
        ok = kind >= LDAP_SYNC_PRESENT && kind <= LDAP_SYNC_DELETE;
      }
    }
    if (controls != nullptr) ldap_controls_free(controls);
    if (!ok) {
      bad_ = "an entry came without a valid Sync State control";
      return false;
    }
    event.entry = to_entry(ld_, msg);
    if (event.kind != SyncEventKind::kChanged) event.entry = Entry(event.entry.dn());
    return deliver(std::move(event));
  }

  // A Sync Info Message (RFC 4533 2.5): newcookie [0], refreshDelete [1], refreshPresent [2],
  // syncIdSet [3].
  bool on_intermediate(LDAPMessage* msg) {
    char* oid = nullptr;
    berval* data = nullptr;
    int rc = ldap_parse_intermediate(ld_, msg, &oid, &data, nullptr, 0);
    const bool ours = rc == LDAP_SUCCESS && oid != nullptr && std::string_view(oid) == LDAP_SYNC_INFO;
    bool go_on = true;
    if (ours && data != nullptr) {
      go_on = on_sync_info(*data);
    } else if (ours) {
      bad_ = "a Sync Info Message without a value";
    }
    if (oid != nullptr) ldap_memfree(oid);
    if (data != nullptr) ber_bvfree(data);
    return go_on;
  }

  bool on_sync_info(const berval& value) {
    Ber ber(value);
    if (ber.ber == nullptr) {
      bad_ = "a Sync Info Message that cannot be read";
      return false;
    }
    const ber_tag_t tag = ber.peek();
    if (tag == LDAP_TAG_SYNC_NEW_COOKIE) {
      berval bv{};
      if (ber_scanf(ber.ber, "m", &bv) == LBER_ERROR) {
        bad_ = "a malformed newcookie Sync Info Message";
        return false;
      }
      SyncEvent event;
      event.kind = SyncEventKind::kNewCookie;
      event.cookie = bytes(bv);
      return deliver(std::move(event));
    }
    if (tag == LDAP_TAG_SYNC_REFRESH_DELETE || tag == LDAP_TAG_SYNC_REFRESH_PRESENT) {
      std::optional<std::string> cookie;
      bool done = true;
      if (ber_scanf(ber.ber, "{") == LBER_ERROR || !ber.cookie(cookie) || !ber.boolean(done, true)) {
        bad_ = "a malformed refreshDelete or refreshPresent Sync Info Message";
        return false;
      }
      if (cookie) out_.cookie = cookie;
      // A present phase makes the whole refresh one of present-phase deletions, even when a
      // delete phase follows it.
      if (tag == LDAP_TAG_SYNC_REFRESH_PRESENT) out_.deletes = DeleteReporting::kPresentPhase;
      if (!done || !persist_ || refreshed_) return true;
      refreshed_ = true;
      SyncEvent event;
      event.kind = SyncEventKind::kRefreshDone;
      event.cookie = cookie;
      event.deletes = deletes();
      return deliver(std::move(event));
    }
    if (tag == LDAP_TAG_SYNC_ID_SET) {
      std::optional<std::string> cookie;
      bool deletes = false;
      BerVarray uuids = nullptr;
      bool ok = ber_scanf(ber.ber, "{") != LBER_ERROR && ber.cookie(cookie) && ber.boolean(deletes, false) &&
                ber_scanf(ber.ber, "[W]}", &uuids) != LBER_ERROR;
      bool go_on = ok;
      if (!ok) bad_ = "a malformed syncIdSet Sync Info Message";
      if (ok && !deletes) out_.deletes = DeleteReporting::kPresentPhase;
      for (std::size_t i = 0; go_on && uuids != nullptr && uuids[i].bv_val != nullptr; ++i) {
        auto text = uuid_text(bytes(uuids[i]));
        if (!text) {
          bad_ = "a syncIdSet with a UUID that is not 16 octets";
          go_on = false;
          break;
        }
        SyncEvent event;
        event.kind = deletes ? SyncEventKind::kDeleted : SyncEventKind::kPresent;
        event.entry_uuid = *text;
        go_on = deliver(std::move(event));
      }
      if (uuids != nullptr) ber_bvarray_free(uuids);
      if (go_on && ok && cookie) out_.cookie = cookie;
      return go_on;
    }
    bad_ = "a Sync Info Message of unknown kind";
    return false;
  }

  // SearchResultDone with its Sync Done control (RFC 4533 2.4): SEQUENCE { cookie OPTIONAL,
  // refreshDeletes BOOLEAN DEFAULT FALSE }.
  Expected<SyncOutcome> on_done(LDAPMessage* msg) {
    int code = LDAP_OTHER;
    char* diag = nullptr;
    LDAPControl** controls = nullptr;
    int rc = ldap_parse_result(ld_, msg, &code, nullptr, &diag, nullptr, &controls, 0);
    std::string diagnostic = diag != nullptr ? diag : "";
    if (diag != nullptr) ldap_memfree(diag);
    bool done_ok = true;
    if (rc == LDAP_SUCCESS && controls != nullptr) {
      if (LDAPControl* c = ldap_control_find(LDAP_CONTROL_SYNC_DONE, controls, nullptr)) {
        Ber ber(c->ldctl_value);
        std::optional<std::string> cookie;
        bool deletes = false;
        done_ok = ber.ber != nullptr && ber_scanf(ber.ber, "{") != LBER_ERROR && ber.cookie(cookie) &&
                  ber.boolean(deletes, false);
        if (done_ok && cookie) out_.cookie = cookie;
        // refresh-only: the Sync Done control ends the refresh and says how deletions went.
        if (done_ok && !refreshed_) {
          out_.deletes = deletes ? DeleteReporting::kExplicit : DeleteReporting::kPresentPhase;
        }
      }
    }
    if (controls != nullptr) ldap_controls_free(controls);
    if (rc != LDAP_SUCCESS) return incomplete(Completeness::kDisconnected, result_error(rc, what_, conn_.uri(), ""));
    if (code == kSyncRefreshRequired) {
      out_.refresh_required = true;
      return incomplete(Completeness::kServerError,
                        Error::permanent(ErrorCode::kNotFound,
                                         what_ +
                                             ": the server cannot refresh from this cookie "
                                             "(e-syncRefreshRequired, 4096)" +
                                             (diagnostic.empty() ? "" : ": " + escape_control(diagnostic)),
                                         "do a full run (refresh with an empty cookie)"));
    }
    if (code != LDAP_SUCCESS) {
      Error e = result_error(code, what_, conn_.uri(), diagnostic);
      if (code == LDAP_UNAVAILABLE_CRITICAL_EXTENSION) {
        e.remedy =
            "the server does not offer content synchronization (RFC 4533): on OpenLDAP, load the syncprov "
            "overlay on this database; elsewhere use a full run or another change feed";
      }
      if (events_ == 0) return fail(std::move(e));
      return incomplete(persist_ && refreshed_ ? Completeness::kDisconnected : Completeness::kServerError,
                        std::move(e));
    }
    if (!done_ok) {
      return incomplete(Completeness::kServerError,
                        Error::permanent(ErrorCode::kParse, what_ + ": a malformed Sync Done control",
                                         "the server's RFC 4533 messages are malformed: report it to its vendor"));
    }
    if (persist_) {
      // A persisting search the server ended by itself (shutdown, or its own limit).
      return incomplete(
          Completeness::kDisconnected,
          Error::transient_error(ErrorCode::kUnavailable, what_ + ": the server ended the persisting search",
                                 "start it again from the last cookie stored"));
    }
    out_.deletes = deletes();
    return out_;
  }

  // From an empty cookie the refresh is the whole content, whatever refreshDeletes said
  // (syncprov says TRUE): what was not sent is not there.
  DeleteReporting deletes() const { return request_.cookie.empty() ? DeleteReporting::kPresentPhase : out_.deletes; }

  void abandon() { ldap_abandon_ext(ld_, msgid_, nullptr, nullptr); }

  Expected<SyncOutcome> stopped(std::string_view why) {
    abandon();
    return incomplete(Completeness::kStoppedByCaller,
                      Error::permanent(ErrorCode::kInternal, what_ + " ended: " + std::string(why), ""));
  }

  Expected<SyncOutcome> incomplete(Completeness c, Error e) {
    out_.completeness = c;
    out_.problem = std::move(e);
    out_.deletes = deletes();
    return out_;
  }

  Connection& conn_;
  LDAP* ld_;
  const SyncRequest& request_;
  const SyncCallback& on_event_;
  const bool persist_;
  const std::string what_;
  int msgid_ = -1;
  bool refreshed_ = false;  // persist: the refresh phase has ended
  std::size_t events_ = 0;
  std::string bad_;  // a malformed protocol message: the run stops
  SyncOutcome out_;
};

}  // namespace

std::optional<std::string> uuid_text(std::string_view octets) {
  if (octets.size() != 16) return std::nullopt;
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (std::size_t i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
    const auto b = static_cast<unsigned char>(octets[i]);
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 0x0f]);
  }
  return out;
}

std::string_view to_string(DeleteReporting d) { return d == DeleteReporting::kExplicit ? "explicit" : "present-phase"; }

Expected<SyncOutcome> refresh_only(Connection& connection, const SyncRequest& request, const SyncCallback& on_event) {
  return SyncRun(connection, request, on_event, false).run(std::stop_token());
}

Expected<SyncOutcome> refresh_and_persist(Connection& connection, const SyncRequest& request,
                                          const SyncCallback& on_event, std::stop_token stop) {
  return SyncRun(connection, request, on_event, true).run(stop);
}

}  // namespace bridgehead::directory::ldap
