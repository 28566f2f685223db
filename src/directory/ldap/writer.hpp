// directory/ldap/writer: fast writes for directory synchronization: a batch of adds,
// modifies, deletes and renames sent on one Connection with many requests in flight, one
// result per operation in input order, optionally inside RFC 5805 transactions (one commit,
// so one database sync, per transaction). What to write is dirsync's business, and so is
// retrying: a transient result is reported, never retried here. Blocking, like Connection.
//
// Transactions on Debian 12's slapd 2.5.13 (back-mdb): offered with no configuration (the root
// DSE lists 1.3.6.1.1.21.1 and .3; syncprov on the database does not prevent them), but
// (a) the delete of an entry's last child fails inside one with "other error" (80) though it
// succeeds alone, and operations sent again after such a rejection have been seen to fail
// with noSuchObject or "internal error"; (b) slapd now and then dies of a segmentation fault at
// a commit (also under its own `ldapmodify -E txn=commit`). Use them for adds, where they pay.
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "core/expected.hpp"
#include "directory/entry.hpp"
#include "directory/ldap/connection.hpp"

namespace bridgehead::directory::ldap {

struct AddRequest {
  Entry entry;  ///< its DN and every attribute
};
struct ModifyRequest {
  std::string dn;
  std::vector<Modification> changes;  ///< applied in one request; none: nothing is sent
};
struct DeleteRequest {
  std::string dn;  ///< a leaf entry
};
struct RenameRequest {
  std::string dn;
  std::string new_rdn;                      ///< "cn=New Name"
  std::optional<std::string> new_superior;  ///< the new parent when it moves
  bool delete_old_rdn = true;
};

using WriteOperation = std::variant<AddRequest, ModifyRequest, DeleteRequest, RenameRequest>;

/// The DN `op` acts on (a rename's old DN).
const std::string& target_dn(const WriteOperation& op);

/// The most requests in flight: slapd closes an authenticated connection on which more than
/// conn_max_pending_auth (default 1000) requests wait; 32-256 is its comfortable range.
inline constexpr int kMaxInFlight = 512;

/// The extended operations of RFC 5805 a server must list in its root DSE's
/// supportedExtension for transactions: Start Transaction and End Transaction.
inline constexpr const char* kStartTransactionOid = "1.3.6.1.1.21.1";
inline constexpr const char* kEndTransactionOid = "1.3.6.1.1.21.3";

struct WriteOptions {
  int in_flight = 64;  ///< requests sent before an answer is awaited: 1..kMaxInFlight
  /// Operations per RFC 5805 transaction, each committed before the next starts; 0: none.
  /// A server without transactions makes write() fail before anything is sent (see
  /// Writer::supports_transactions, which callers ask first to fall back).
  std::size_t transaction_size = 0;
};

struct WriteOutcome {
  /// One per operation, in input order: done, or why not. Transient errors (kUnavailable,
  /// kTimeout) include operations not done because the connection broke or the server stopped
  /// answering: an operation is reported done only when the server acknowledged it (inside a
  /// transaction: when the commit was acknowledged).
  std::vector<Expected<void>> results;
  std::size_t transactions_committed = 0;
  /// Transactions the server rejected at commit (or refused to start): nothing of one was
  /// applied; the operation the server named fails with its reason, and the others were sent
  /// again without a transaction, so that only the bad one fails. When the reason was "other
  /// error" (80) or transient, which says nothing against the operation itself, it was sent
  /// again too.
  std::size_t transactions_rejected = 0;
  std::size_t replayed = 0;  ///< operations sent again without a transaction after a rejection
  /// Why each rejected transaction was rejected: the operation the server named (its DN), and
  /// the server's message.
  std::vector<Error> transaction_problems;

  std::size_t succeeded() const;
  std::size_t failed() const { return results.size() - succeeded(); }
};

class Writer {
 public:
  /// Writes on `connection`, which must outlive the Writer and be used by nothing else
  /// while a write runs.
  explicit Writer(Connection& connection) : connection_(&connection) {}

  /// Whether the server offers RFC 5805 transactions (both OIDs above in its root DSE's
  /// supportedExtension); asked once, then remembered. Fails only when the root DSE cannot be
  /// read (the connection's error).
  Expected<bool> supports_transactions();

  /// Sends `operations` with up to options.in_flight requests outstanding and returns one
  /// result per operation. Operations on the same entry (its DN, a rename's new DN, an entry
  /// above or below it) are never in flight together, so they apply in input order (a rename
  /// then a modify of the renamed entry); others may apply in any order. A failed operation
  /// fails alone; the rest go on. Fails as a whole, sending nothing, only on bad options
  /// (kInvalidArgument) or a transaction_size on a server without transactions
  /// (kUnavailable, permanent: "no transactions"), or when supports_transactions fails.
  Expected<WriteOutcome> write(std::span<const WriteOperation> operations, const WriteOptions& options);

 private:
  Connection* connection_;
  std::optional<bool> transactions_;
};

}  // namespace bridgehead::directory::ldap
