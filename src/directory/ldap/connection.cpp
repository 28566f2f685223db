#include "directory/ldap/connection.hpp"

#include <lber.h>
#include <ldap.h>
#include <netdb.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <unistd.h>
#include <cerrno>
#include <cstring>
#include <utility>

#include "core/text.hpp"
#include "directory/ldap/attribute_range.hpp"
#include "directory/ldap/ldap_error.hpp"
#include "directory/ldap/ldap_message.hpp"
#include "directory/ldap/libldap_support.hpp"

namespace bridgehead::directory::ldap {

namespace {

using detail::ModList;
using detail::seconds_text;

std::string diagnostic_of(LDAP* ld) {
  char* text = nullptr;
  std::string out;
  if (ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &text) == LDAP_OPT_SUCCESS && text != nullptr) {
    out = text;
    ldap_memfree(text);
  }
  return out;
}

Error invalid(std::string message, std::string remedy) {
  return Error::permanent(ErrorCode::kInvalidArgument, std::move(message), std::move(remedy));
}

bool is_ldaps(std::string_view uri) { return istarts_with(uri, "ldaps://"); }

// A DER buffer that OpenSSL allocated, wiped when freed: it may hold the connector ID's key.
struct DerBuffer {
  unsigned char* data = nullptr;
  int size = 0;
  ~DerBuffer() {
    if (data != nullptr) OPENSSL_clear_free(data, static_cast<std::size_t>(size));
  }
  berval as_berval() const {
    berval bv{};
    bv.bv_len = static_cast<ber_len_t>(size);
    bv.bv_val = reinterpret_cast<char*>(data);
    return bv;
  }
};

// Hands the connector ID's certificate and key to libldap in memory. libldap copies both into
// the handle's options and parses them when the TLS context is made (LDAP_OPT_X_TLS_NEWCTX),
// so nothing is written to disk; our own DER copy of the key is wiped here. libldap's copies
// are freed without wiping (liblber's LBER_OPT_MEMORY_FNS apply only to allocations with a
// memory context, which libldap never passes), and libldap 2.5.13 never frees the GnuTLS
// key object it parses (see testdata/lsan.supp): the key stays in this process's heap.
Expected<void> set_client_certificate(LDAP* ld, const identity::ConnectorId& id) {
  DerBuffer cert, key;
  cert.size = i2d_X509(id.certificate(), &cert.data);
  key.size = i2d_PrivateKey(id.key(), &key.data);
  if (cert.size <= 0 || key.size <= 0) {
    return fail(Error::permanent(ErrorCode::kInternal, "cannot encode the connector ID's certificate or key as DER",
                                 "check the connector ID with `bridgehead id show`"));
  }
  berval cert_bv = cert.as_berval();
  berval key_bv = key.as_berval();
  if (ldap_set_option(ld, LDAP_OPT_X_TLS_CERT, &cert_bv) != LDAP_OPT_SUCCESS ||
      ldap_set_option(ld, LDAP_OPT_X_TLS_KEY, &key_bv) != LDAP_OPT_SUCCESS) {
    return fail(Error::permanent(ErrorCode::kInternal, "libldap refused the connector ID's certificate or key",
                                 "this libldap may not support in-memory client certificates"));
  }
  return {};
}

// A failure while a TLS handshake was under way: libldap says only "connect error" with
// the TLS library's words as diagnostic, and nearly always it is the server's certificate.
Error tls_error(std::string_view uri, std::string_view diagnostic, const std::filesystem::path& ca_file) {
  // With GnuTLS, libldap keeps no reason for a refused certificate ("(unknown error code)").
  std::string message = "TLS with " + std::string(uri) + " failed";
  if (!diagnostic.empty() && diagnostic != "(unknown error code)") {
    message += ": " + escape_control(diagnostic);
  } else {
    message += ": the server's certificate was not accepted";
  }
  std::string remedy = ca_file.empty()
                           ? "the system's trust store does not certify the server: set ca_file to the "
                             "CA that signed its certificate"
                           : "check that " + ca_file.string() + " holds the CA that signed the server's certificate";
  remedy += ", and that the certificate names the host in the URI";
  return Error::permanent(ErrorCode::kCertificate, std::move(message), std::move(remedy));
}

// libldap reports every failed connect as "server down" and does not keep errno; to say
// whether the port refused, the host was unreachable or nothing answered, the failure path
// connects once more itself (with the same timeout) and returns that errno (0 when it worked).
int probe_errno(const std::string& uri, std::chrono::milliseconds timeout) {
  LDAPURLDesc* url = nullptr;
  if (ldap_url_parse(uri.c_str(), &url) != LDAP_URL_SUCCESS || url == nullptr) return 0;
  std::string host = url->lud_host != nullptr && *url->lud_host != '\0' ? url->lud_host : "localhost";
  std::string port = std::to_string(url->lud_port);
  ldap_free_urldesc(url);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (::getaddrinfo(host.c_str(), port.c_str(), &hints, &res) != 0 || res == nullptr) return EHOSTUNREACH;
  int err = 0;
  int fd = ::socket(res->ai_family, res->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, res->ai_protocol);
  if (fd < 0) {
    err = errno;
  } else {
    if (::connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
      err = errno;
      if (err == EINPROGRESS) {
        pollfd p{fd, POLLOUT, 0};
        int n = ::poll(&p, 1, static_cast<int>(timeout.count()));
        socklen_t len = sizeof err;
        if (n == 0) {
          err = ETIMEDOUT;
        } else if (n < 0 || ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
          err = errno;
        }
      }
    }
    ::close(fd);
  }
  ::freeaddrinfo(res);
  return err;
}

Error connect_error(std::string_view uri, int rc, int saved_errno, std::string_view diagnostic,
                    std::chrono::milliseconds timeout) {
  std::string why;
  ErrorCode code = ErrorCode::kUnavailable;
  if (rc == LDAP_TIMEOUT || saved_errno == ETIMEDOUT) {
    why = "no answer within " + seconds_text(timeout);
    code = ErrorCode::kTimeout;
  } else if (saved_errno == ECONNREFUSED) {
    why = "connection refused";
  } else if (saved_errno == EHOSTUNREACH || saved_errno == ENETUNREACH || saved_errno == ECONNRESET) {
    why = std::strerror(saved_errno);
  } else if (!diagnostic.empty()) {
    why = escape_control(diagnostic);
  } else {
    why = result_code_meaning(rc);
  }
  return Error::transient_error(code, "cannot connect to " + std::string(uri) + ": " + why,
                                "check that the directory server runs and listens there");
}

int scope_value(Scope s) {
  switch (s) {
    case Scope::kBase:
      return LDAP_SCOPE_BASE;
    case Scope::kOneLevel:
      return LDAP_SCOPE_ONELEVEL;
    case Scope::kSubtree:
      return LDAP_SCOPE_SUBTREE;
  }
  return LDAP_SCOPE_SUBTREE;
}

}  // namespace

std::string_view to_string(Completeness c) {
  switch (c) {
    case Completeness::kComplete:
      return "complete";
    case Completeness::kSizeLimit:
      return "size-limit";
    case Completeness::kTimeLimit:
      return "time-limit";
    case Completeness::kPagingError:
      return "paging-error";
    case Completeness::kDisconnected:
      return "disconnected";
    case Completeness::kServerError:
      return "server-error";
    case Completeness::kRangeError:
      return "range-error";
    case Completeness::kStoppedByCaller:
      return "stopped";
  }
  return "unknown";
}

Expected<void> check_options(const Options& options) {
  const bool ldaps = is_ldaps(options.uri);
  if (!ldaps && !istarts_with(options.uri, "ldap://")) {
    return fail(invalid("LDAP URI \"" + escape_control(options.uri) + "\" is neither ldap:// nor ldaps://",
                        "write the URI as ldap://host:port or ldaps://host:port"));
  }
  if (options.uri.find_first_of(" \t\r\n") != std::string::npos) {
    return fail(
        invalid("LDAP URI \"" + escape_control(options.uri) + "\" contains white space", "give exactly one URI"));
  }
  if (ldaps && options.tls == TlsMode::kStartTls) {
    return fail(invalid("StartTLS was asked for on " + options.uri + ", which is TLS already",
                        "use ldap:// with StartTLS, or ldaps:// without"));
  }
  if (options.page_size < 1 || options.page_size > kMaxPageSize) {
    return fail(invalid(
        "LDAP page size " + std::to_string(options.page_size) + " is outside 1.." + std::to_string(kMaxPageSize),
        "use at most the server's MaxPageSize (AD: 1000)"));
  }
  if (options.timeouts.connect.count() <= 0 || options.timeouts.operation.count() <= 0) {
    return fail(invalid("LDAP timeouts must be positive", "set the connect and operation timeouts above zero"));
  }
  if (const auto* sasl = std::get_if<SaslExternalBind>(&options.bind)) {
    if (!sasl->id) {
      return fail(invalid("SASL EXTERNAL bind to " + options.uri + " without a connector ID",
                          "open the connector ID first, or use a simple bind"));
    }
    if (!ldaps && options.tls != TlsMode::kStartTls) {
      return fail(invalid("SASL EXTERNAL bind to " + options.uri +
                              " without TLS: the client certificate is sent "
                              "only in a TLS handshake",
                          "use ldaps:// or StartTLS"));
    }
  }
  return {};
}

Connection::Connection(LDAP* ld, std::string uri, Timeouts timeouts, int page_size)
    : ld_(ld), uri_(std::move(uri)), timeouts_(timeouts), page_size_(page_size) {}

Connection::Connection(Connection&& other) noexcept
    : ld_(std::exchange(other.ld_, nullptr)),
      uri_(std::move(other.uri_)),
      timeouts_(other.timeouts_),
      page_size_(other.page_size_) {}

Connection& Connection::operator=(Connection&& other) noexcept {
  if (this != &other) {
    detail::SigpipeBlocked no_sigpipe;
    if (ld_ != nullptr) ldap_unbind_ext_s(ld_, nullptr, nullptr);
    ld_ = std::exchange(other.ld_, nullptr);
    uri_ = std::move(other.uri_);
    timeouts_ = other.timeouts_;
    page_size_ = other.page_size_;
  }
  return *this;
}

Connection::~Connection() {
  detail::SigpipeBlocked no_sigpipe;  // the unbind may go to a server that is gone
  if (ld_ != nullptr) ldap_unbind_ext_s(ld_, nullptr, nullptr);
}

Error Connection::last_error(int code, std::string_view operation) const {
  return result_error(code, operation, uri_, diagnostic_of(ld_));
}

Expected<Connection> Connection::open(Options options) {
  if (auto ok = check_options(options); !ok) return fail(ok.error());
  LDAP* raw = nullptr;
  int rc = ldap_initialize(&raw, options.uri.c_str());
  if (rc != LDAP_SUCCESS || raw == nullptr) {
    return fail(invalid("LDAP URI \"" + escape_control(options.uri) + "\" is not valid: " + result_code_meaning(rc),
                        "write the URI as ldap://host:port or ldaps://host:port"));
  }
  // From here the handle belongs to the Connection, which unbinds it on every return path.
  Connection conn(raw, options.uri, options.timeouts, options.page_size);
  const std::string& uri = conn.uri_;

  int version = LDAP_VERSION3;
  int require = LDAP_OPT_X_TLS_DEMAND;
  int new_ctx = 0;  // a client context of this handle's own, with the options set on it
  timeval connect_tv = to_timeval(options.timeouts.connect);
  timeval op_tv = to_timeval(options.timeouts.operation);
  bool ok = ldap_set_option(raw, LDAP_OPT_PROTOCOL_VERSION, &version) == LDAP_OPT_SUCCESS &&
            ldap_set_option(raw, LDAP_OPT_REFERRALS, LDAP_OPT_OFF) == LDAP_OPT_SUCCESS &&
            ldap_set_option(raw, LDAP_OPT_RESTART, LDAP_OPT_ON) == LDAP_OPT_SUCCESS &&
            ldap_set_option(raw, LDAP_OPT_NETWORK_TIMEOUT, &connect_tv) == LDAP_OPT_SUCCESS &&
            ldap_set_option(raw, LDAP_OPT_TIMEOUT, &op_tv) == LDAP_OPT_SUCCESS &&
            ldap_set_option(raw, LDAP_OPT_X_TLS_REQUIRE_CERT, &require) == LDAP_OPT_SUCCESS;
#ifdef LDAP_OPT_X_TLS_REQUIRE_SAN
  // A subjectAltName, when the certificate has one, must name the host; otherwise its CN.
  int require_san = LDAP_OPT_X_TLS_TRY;
  ok = ok && ldap_set_option(raw, LDAP_OPT_X_TLS_REQUIRE_SAN, &require_san) == LDAP_OPT_SUCCESS;
#endif
  if (ok && !options.ca_file.empty()) {
    ok = ldap_set_option(raw, LDAP_OPT_X_TLS_CACERTFILE, options.ca_file.c_str()) == LDAP_OPT_SUCCESS;
  }
  if (!ok) {
    return fail(Error::permanent(ErrorCode::kInternal, "libldap refused a connection option for " + uri, ""));
  }
  if (const auto* sasl = std::get_if<SaslExternalBind>(&options.bind)) {
    if (auto set = set_client_certificate(raw, *sasl->id); !set) return fail(set.error());
  }
  const bool tls = is_ldaps(uri) || options.tls == TlsMode::kStartTls;
  if (tls) {
    rc = ldap_set_option(raw, LDAP_OPT_X_TLS_NEWCTX, &new_ctx);
    if (rc != LDAP_OPT_SUCCESS) {
      std::string why = diagnostic_of(raw);
      if (!options.ca_file.empty() && (::access(options.ca_file.c_str(), R_OK) != 0)) {
        return fail(Error::permanent(ErrorCode::kConfig,
                                     "cannot read the CA file " + options.ca_file.string() + " for " + uri,
                                     "check ca_file: the file must exist and be readable"));
      }
      return fail(Error::permanent(ErrorCode::kConfig,
                                   "cannot set up TLS for " + uri + (why.empty() ? "" : ": " + escape_control(why)),
                                   "check ca_file and the connector ID's certificate"));
    }
    // The context holds certificate and key now. libldap 2.5 would keep its DER copies in the
    // handle's options past ldap_unbind (ASan: leaked); clearing the options frees them now.
    if (std::holds_alternative<SaslExternalBind>(options.bind)) {
      ldap_set_option(raw, LDAP_OPT_X_TLS_KEY, nullptr);
      ldap_set_option(raw, LDAP_OPT_X_TLS_CERT, nullptr);
    }
  }

  errno = 0;
  rc = ldap_connect(raw);
  const int saved_errno = errno;
  if (rc != LDAP_SUCCESS) {
    // ldap_connect() returns -1; the handle keeps the real code (LDAP_CONNECT_ERROR after a
    // failed TLS handshake, LDAP_SERVER_DOWN or LDAP_TIMEOUT before one).
    int code = rc;
    ldap_get_option(raw, LDAP_OPT_RESULT_CODE, &code);
    std::string diag = diagnostic_of(raw);
    if (is_ldaps(uri) && saved_errno != ECONNREFUSED && code != LDAP_TIMEOUT &&
        (code == LDAP_CONNECT_ERROR || !diag.empty())) {
      return fail(tls_error(uri, diag, options.ca_file));
    }
    const int why = saved_errno == ECONNREFUSED || saved_errno == ETIMEDOUT || code == LDAP_TIMEOUT
                        ? saved_errno
                        : probe_errno(uri, options.timeouts.connect);
    return fail(connect_error(uri, code, why, diag, options.timeouts.connect));
  }
  if (options.tls == TlsMode::kStartTls) {
    rc = ldap_start_tls_s(raw, nullptr, nullptr);
    if (rc == LDAP_CONNECT_ERROR) return fail(tls_error(uri, diagnostic_of(raw), options.ca_file));
    if (rc != LDAP_SUCCESS) return fail(conn.last_error(rc, "StartTLS"));
  }

  if (const auto* simple = std::get_if<SimpleBind>(&options.bind)) {
    berval cred{};
    cred.bv_len = static_cast<ber_len_t>(simple->password.size());
    cred.bv_val = const_cast<char*>(simple->password.c_str());
    rc = ldap_sasl_bind_s(raw, simple->dn.c_str(), LDAP_SASL_SIMPLE, &cred, nullptr, nullptr, nullptr);
    if (rc != LDAP_SUCCESS) {
      const std::string who = simple->dn.empty() ? "anonymous bind" : "bind as " + escape_control(simple->dn);
      Error e = conn.last_error(rc, who);
      if (rc == LDAP_INVALID_CREDENTIALS) {
        e.message = "invalid credentials for " + escape_control(simple->dn) + " at " + uri + " (LDAP result 49)";
        e.remedy = "check the bind DN and the bind password file";
      }
      return fail(std::move(e));
    }
  } else {
    // An empty initial response (present, zero octets): "no authorization identity of my own",
    // in one round. Absent credentials would make the server ask for them in a second round.
    berval empty{};
    empty.bv_val = const_cast<char*>("");
    rc = ldap_sasl_bind_s(raw, nullptr, "EXTERNAL", &empty, nullptr, nullptr, nullptr);
    if (rc != LDAP_SUCCESS) {
      Error e = conn.last_error(rc, "SASL EXTERNAL bind with the connector ID's certificate");
      if (rc == LDAP_INVALID_CREDENTIALS || rc == LDAP_INAPPROPRIATE_AUTH) {
        e.remedy =
            "the server must map the certificate's subject to an entry (slapd: authz-regexp; AD: a "
            "certificate mapping), and trust the CA that certified the connector ID";
      }
      return fail(std::move(e));
    }
  }
  return conn;
}

Expected<std::string> Connection::who_am_i() {
  berval* id = nullptr;
  int rc = ldap_whoami_s(ld_, &id, nullptr, nullptr);
  if (rc != LDAP_SUCCESS) return fail(last_error(rc, "Who am I? (RFC 4532)"));
  std::string out = id != nullptr && id->bv_val != nullptr ? std::string(id->bv_val, id->bv_len) : std::string();
  if (id != nullptr) ber_bvfree(id);
  return out;
}

Expected<void> Connection::read_ranges(Entry& entry) {
  auto pending = fold_ranged_attributes(entry);
  if (!pending) return fail(pending.error());
  for (RangeContinuation next : *pending) {
    while (true) {
      std::string request = next.request();
      char* attrs[] = {request.data(), nullptr};
      timeval tv = to_timeval(timeouts_.operation);
      LDAPMessage* res = nullptr;
      int rc = ldap_search_ext_s(ld_, entry.dn().c_str(), LDAP_SCOPE_BASE, "(objectClass=*)", attrs, 0, nullptr,
                                 nullptr, &tv, 1, &res);
      MessageGuard guard{res};
      if (rc != LDAP_SUCCESS) return fail(last_error(rc, "ranged read of " + request + " of " + entry.dn()));
      LDAPMessage* first = ldap_first_entry(ld_, res);
      if (first == nullptr) {
        return fail(Error::transient_error(
            ErrorCode::kNotFound,
            "ranged read of " + request + " of " + entry.dn() + " at " + uri_ + " returned no entry",
            "the entry may have been deleted meanwhile: read again"));
      }
      auto applied = apply_range_reply(entry, next, to_entry(ld_, first));
      if (!applied) return fail(applied.error());
      if (!*applied) break;
      next = **applied;
    }
  }
  return {};
}

Expected<SearchOutcome> Connection::search(const SearchRequest& request, const EntryCallback& on_entry) {
  std::vector<char*> attrs;
  for (const std::string& a : request.attributes) attrs.push_back(const_cast<char*>(a.c_str()));
  attrs.push_back(nullptr);
  const std::string what = "search of " + escape_control(request.base) + " for " + escape_control(request.filter);

  SearchOutcome out;
  auto incomplete = [&](Completeness c, Error e) -> Expected<SearchOutcome> {
    out.completeness = c;
    out.problem = std::move(e);
    return out;
  };

  berval cookie{};  // empty for the first page; the server's for the next ones
  std::string cookie_bytes;
  while (true) {
    LDAPControl* page = nullptr;
    if (request.paged) {
      cookie.bv_val = cookie_bytes.empty() ? nullptr : cookie_bytes.data();
      cookie.bv_len = static_cast<ber_len_t>(cookie_bytes.size());
      // Critical: a server that cannot page must refuse rather than answer unpaged and stop at
      // its size limit, which would look like a complete read of fewer entries.
      int rc = ldap_create_page_control(ld_, page_size_, &cookie, 1, &page);
      if (rc != LDAP_SUCCESS) return fail(last_error(rc, what));
    }
    std::vector<LDAPControl> extra(request.controls.size());
    std::vector<LDAPControl*> controls;
    if (page != nullptr) controls.push_back(page);
    for (std::size_t i = 0; i < request.controls.size(); ++i) {
      const RequestControl& rc_in = request.controls[i];
      extra[i].ldctl_oid = const_cast<char*>(rc_in.oid.c_str());
      extra[i].ldctl_value.bv_val = rc_in.value.empty() ? nullptr : const_cast<char*>(rc_in.value.data());
      extra[i].ldctl_value.bv_len = static_cast<ber_len_t>(rc_in.value.size());
      extra[i].ldctl_iscritical = rc_in.critical ? 1 : 0;
      controls.push_back(&extra[i]);
    }
    controls.push_back(nullptr);
    int msgid = 0;
    int rc = ldap_search_ext(ld_, request.base.c_str(), scope_value(request.scope), request.filter.c_str(),
                             request.attributes.empty() ? nullptr : attrs.data(), 0,
                             controls.size() > 1 ? controls.data() : nullptr, nullptr, nullptr, 0, &msgid);
    if (page != nullptr) ldap_control_free(page);
    if (rc != LDAP_SUCCESS) {
      if (rc == LDAP_SERVER_DOWN || rc == LDAP_CONNECT_ERROR) {
        return incomplete(Completeness::kDisconnected, last_error(rc, what));
      }
      return fail(last_error(rc, what));
    }
    ++out.pages;

    const auto deadline = std::chrono::steady_clock::now() + timeouts_.operation;
    bool done_page = false;
    while (!done_page) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() < 1) left = std::chrono::milliseconds(1);
      timeval tv = to_timeval(left);
      MessageGuard msg;
      int type = ldap_result(ld_, msgid, LDAP_MSG_ONE, &tv, &msg.msg);
      if (type == 0) {
        ldap_abandon_ext(ld_, msgid, nullptr, nullptr);
        return incomplete(
            Completeness::kTimeLimit,
            Error::transient_error(ErrorCode::kTimeout,
                                   what + " at " + uri_ + ": no answer within " + seconds_text(timeouts_.operation),
                                   "check the server's load, or raise the operation timeout"));
      }
      if (type < 0) {
        int code = LDAP_SERVER_DOWN;
        ldap_get_option(ld_, LDAP_OPT_RESULT_CODE, &code);
        return incomplete(Completeness::kDisconnected, last_error(code, what));
      }
      if (type == LDAP_RES_SEARCH_ENTRY) {
        Entry entry = to_entry(ld_, msg.msg);
        if (auto ranged = read_ranges(entry); !ranged) {
          ldap_abandon_ext(ld_, msgid, nullptr, nullptr);
          return incomplete(Completeness::kRangeError, ranged.error());
        }
        ++out.entries;
        if (!on_entry(std::move(entry))) {
          ldap_abandon_ext(ld_, msgid, nullptr, nullptr);
          return incomplete(
              Completeness::kStoppedByCaller,
              Error::permanent(ErrorCode::kInternal, what + " at " + uri_ + " was stopped by its reader", ""));
        }
        continue;
      }
      if (type != LDAP_RES_SEARCH_RESULT) continue;  // references: referrals are not chased

      int code = LDAP_OTHER;
      char* diag = nullptr;
      LDAPControl** server_controls = nullptr;
      rc = ldap_parse_result(ld_, msg.msg, &code, nullptr, &diag, nullptr, &server_controls, 0);
      std::string diagnostic = diag != nullptr ? diag : "";
      if (diag != nullptr) ldap_memfree(diag);
      std::string next_cookie;
      bool have_control = false;
      if (rc == LDAP_SUCCESS && server_controls != nullptr) {
        if (LDAPControl* c = ldap_control_find(LDAP_CONTROL_PAGEDRESULTS, server_controls, nullptr)) {
          ber_int_t estimate = 0;
          berval got{};
          if (ldap_parse_pageresponse_control(ld_, c, &estimate, &got) == LDAP_SUCCESS) {
            have_control = true;
            if (got.bv_val != nullptr) next_cookie.assign(got.bv_val, got.bv_len);
            ber_memfree(got.bv_val);
          }
        }
      }
      if (server_controls != nullptr) ldap_controls_free(server_controls);
      if (rc != LDAP_SUCCESS) return incomplete(Completeness::kDisconnected, last_error(rc, what));

      if (code == LDAP_SIZELIMIT_EXCEEDED || code == LDAP_ADMINLIMIT_EXCEEDED) {
        Error e = result_error(code, what, uri_, diagnostic);
        e.message += " after " + std::to_string(out.entries) + " entries";
        return incomplete(Completeness::kSizeLimit, std::move(e));
      }
      if (code == LDAP_TIMELIMIT_EXCEEDED) {
        return incomplete(Completeness::kTimeLimit, result_error(code, what, uri_, diagnostic));
      }
      if (code != LDAP_SUCCESS) {
        if (out.entries == 0) return fail(result_error(code, what, uri_, diagnostic));
        return incomplete(Completeness::kServerError, result_error(code, what, uri_, diagnostic));
      }
      if (!request.paged) return out;
      if (!have_control) {
        return incomplete(Completeness::kPagingError,
                          Error::permanent(ErrorCode::kUnavailable,
                                           what + " at " + uri_ +
                                               ": the server answered a paged search without the "
                                               "paged-results control (RFC 2696)",
                                           "use a server that supports paged results"));
      }
      if (next_cookie.empty()) return out;  // the last page
      cookie_bytes = std::move(next_cookie);
      done_page = true;
    }
  }
}

Expected<void> Connection::add(const Entry& entry) {
  ModList mods;
  for (const Attribute& a : entry.attributes()) mods.add(LDAP_MOD_ADD, a.name, a.values);
  int rc = ldap_add_ext_s(ld_, entry.dn().c_str(), mods.finish(), nullptr, nullptr);
  if (rc != LDAP_SUCCESS) return fail(last_error(rc, "add of " + escape_control(entry.dn())));
  return {};
}

Expected<void> Connection::modify(std::string_view dn, const std::vector<Modification>& changes) {
  if (changes.empty()) return {};
  ModList mods;
  for (const Modification& m : changes) {
    mods.add(detail::mod_op(m.op), m.attribute, m.values);
  }
  const std::string target(dn);
  int rc = ldap_modify_ext_s(ld_, target.c_str(), mods.finish(), nullptr, nullptr);
  if (rc != LDAP_SUCCESS) return fail(last_error(rc, "modify of " + escape_control(target)));
  return {};
}

Expected<void> Connection::remove(std::string_view dn) {
  const std::string target(dn);
  int rc = ldap_delete_ext_s(ld_, target.c_str(), nullptr, nullptr);
  if (rc != LDAP_SUCCESS) return fail(last_error(rc, "delete of " + escape_control(target)));
  return {};
}

Expected<void> Connection::rename(std::string_view dn, std::string_view new_rdn,
                                  const std::optional<std::string>& new_superior, bool delete_old_rdn) {
  const std::string target(dn), rdn(new_rdn);
  int rc = ldap_rename_s(ld_, target.c_str(), rdn.c_str(), new_superior ? new_superior->c_str() : nullptr,
                         delete_old_rdn ? 1 : 0, nullptr, nullptr);
  if (rc != LDAP_SUCCESS) {
    std::string what = "rename of " + escape_control(target) + " to " + escape_control(rdn);
    if (new_superior) what += " below " + escape_control(*new_superior);
    return fail(last_error(rc, what));
  }
  return {};
}

}  // namespace bridgehead::directory::ldap
