// The durable spool: where an accepted message lives until it is delivered or bounced.
// Owns the on-disk format (append-only segment files + a journal of state changes, see
// docs/spool.md), group commit (many messages made durable by one fdatasync), and
// recovery after a crash. Does not own scheduling or delivery: that is the queue manager.
//
// Thread-safety: every public member may be called from any thread. Blocking file I/O
// and fdatasync run on the spool's own writer thread; completions are invoked there, so a
// caller running on an event loop must post the result back to its own executor.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/byte_buffer.hpp"
#include "core/envelope.hpp"
#include "core/expected.hpp"

namespace bridgehead::spool {

using MessageId = std::uint64_t;

/// The queue id shown to people and in 250 replies: 16 lowercase hex digits.
std::string format_id(MessageId id);
std::optional<MessageId> parse_id(std::string_view text);

struct SpoolOptions {
  std::filesystem::path dir;
  std::uint64_t segment_size = 64ull << 20;  ///< roll to a new segment file past this size
  /// For tests of rule 2 only: make the writer fail as if the disk were full after this
  /// many bytes have been written in this process (0 = never).
  std::uint64_t fault_after_bytes = 0;
  /// Rewrite the journal once it is larger than this and more than twice what it must keep.
  std::uint64_t journal_compact_bytes = 4ull << 20;
  /// Segment files kept open at once; others are opened on demand (a read in progress
  /// keeps its files open past this bound until it ends).
  std::size_t max_open_files = 64;
  /// Test seam: called by the writer at named steps ("compaction-written",
  /// "compaction-synced", "unlink-segment", "journal-compact"); a nonzero return is taken
  /// as the errno of that step failing. Empty = no faults.
  std::function<int(std::string_view step)> fault_hook = {};
  /// Compaction waits for resume_compaction(): the daemon opens the spool as root and must
  /// hand its files to the service user before new segments are made or old ones removed.
  bool hold_compaction = false;
};

/// Where one recipient of a queued message stands. Journaled (record type 17) so that it
/// survives a crash: a recipient that is delivered or failed is never tried again.
enum class RecipientStatus : std::uint8_t {
  kPending = 0,    ///< not tried yet (or the journal never learned of an attempt)
  kDeferred = 1,   ///< tried, temporary failure; next try at next_attempt
  kDelivered = 2,  ///< the next hop took it (final)
  kFailed = 3,     ///< permanent failure or expired; the sender was told if asked (final)
};

/// The word people see for a status ("pending", "deferred", "delivered", "failed").
std::string_view status_word(RecipientStatus s);

struct RecipientState {
  std::uint32_t index = 0;         ///< into Envelope::recipients
  RecipientStatus status = RecipientStatus::kPending;
  std::uint32_t attempts = 0;      ///< delivery attempts so far
  std::int64_t next_attempt = 0;   ///< unix seconds; kDeferred only
  std::int64_t last_attempt = 0;   ///< unix seconds, 0 = never tried
  bool delay_notice_sent = false;  ///< the single delay DSN went out
  std::string reply;               ///< last answer or our reason ("450 4.2.0 mailbox busy")
  std::string remote;              ///< the next hop that gave it ("127.0.0.1:2526"), or empty
  bool operator==(const RecipientState&) const = default;
};

/// A message that got its 250 and is not yet finished.
struct QueuedMessage {
  MessageId id = 0;
  Envelope envelope;
  std::uint64_t size = 0;  ///< content bytes
  /// One per envelope recipient, in envelope order (index == position); all kPending for a
  /// message nothing was recorded for.
  std::vector<RecipientState> recipients;
};

struct RecoveryReport {
  std::size_t segments = 0;           ///< segment files found
  std::size_t messages = 0;           ///< committed and unfinished messages rebuilt
  std::size_t finished_skipped = 0;   ///< committed messages the journal marked finished
  std::size_t incomplete_dropped = 0; ///< messages whose commit record never made it (no 250 given)
  std::uint64_t torn_bytes = 0;       ///< bytes of torn tails truncated
  std::size_t damaged = 0;            ///< committed messages set aside in damaged/ (not queued)
  std::vector<std::string> notes;     ///< one plain sentence per notable finding
  std::string summary() const;        ///< "recovered 12 messages from 3 segments; truncated 40 torn bytes"
};

template <typename T>
using Completion = std::function<void(Expected<T>)>;

/// Reads one message's content front to back, whole CHUNK records at a time: each is
/// checked against its CRC before any of it is handed out, so damaged content is never
/// passed on. Holds the segment files open, so a read under way completes even if the
/// message is finished or copied forward meanwhile. read_next blocks (a worker thread's);
/// try_read_next does not wait for the disk (an event loop's). Reading needs the spool;
/// destroying the reader after the spool is safe.
class ContentReader {
 public:
  ContentReader(ContentReader&&) noexcept;
  ContentReader& operator=(ContentReader&&) noexcept;
  ~ContentReader();

  /// Octets of content in all.
  std::uint64_t size() const;
  /// Whether the content ends with LF (or is empty). Read from the disk without its
  /// check: it only adjusts a SIZE= estimate (an SMTP client adds a CRLF otherwise).
  bool ends_with_newline() const;
  /// Replaces `out` with the next chunks in order: at least one, and more while they fit
  /// in `want` octets (a chunk holds at most 1 MiB). `out` is left empty at the end. Fails
  /// with kIo when a read fails (transient: the copy on disk may well be intact) or
  /// kCorrupt when a chunk fails its CRC (counted as damage, see Stats::damaged).
  Expected<void> read_next(ByteBuffer& out, std::size_t want);
  /// The same without waiting for the disk (preadv2 RWF_NOWAIT), for a caller on an
  /// event loop: false when the next chunk is not all in the page cache (nothing is
  /// consumed then; read_next on a worker thread goes on from there). A chunk that was
  /// written moments ago, the common case for a delivery, is read this way.
  Expected<bool> try_read_next(ByteBuffer& out, std::size_t want);

 private:
  friend class Spool;
  struct State;
  Expected<bool> read_some(ByteBuffer& out, std::size_t want, bool nowait);
  explicit ContentReader(std::unique_ptr<State> state);
  std::unique_ptr<State> s_;
};

class Spool {
 public:
  /// Opens (creating if needed) the spool directory and recovers its state. Fails with
  /// kPermission/kIo when the directory cannot be used, kCorrupt for a file whose version
  /// this build does not know (never silently discarded).
  static Expected<std::unique_ptr<Spool>> open(SpoolOptions options);
  ~Spool();
  Spool(const Spool&) = delete;
  Spool& operator=(const Spool&) = delete;

  const RecoveryReport& recovery_report() const;

  /// Lets compaction run (see SpoolOptions::hold_compaction); a no-op when it was not held.
  void resume_compaction();

  /// Allocates the id of a message about to be received. Ids are unique across restarts.
  MessageId begin_message();

  /// Appends a piece of content. `done` runs once the bytes are written (not yet synced);
  /// callers wait for it before sending more, which bounds memory per session.
  void append(MessageId id, std::string data, Completion<void> done);

  /// Makes the message durable: writes its commit record and runs `done` only after an
  /// fdatasync covering all its content and the commit record (and, for a new segment
  /// file, its directory entry). Concurrent commits share one fdatasync.
  /// Failure (disk full, I/O error) is transient: the message is not queued, nothing
  /// committed before is harmed, and the spool stays usable once the cause is gone.
  void commit(MessageId id, Envelope envelope, Completion<void> done);
  /// The same, with the message's last piece of content written in the same batch as the
  /// commit record (saves a writer round trip per message; both succeed or fail together).
  void commit(MessageId id, std::string last_piece, Envelope envelope, Completion<void> done);

  /// Forgets a message that will not be committed (client quit, content refused). Its
  /// pieces are garbage that recovery and compaction ignore.
  void abort(MessageId id);

  /// Marks a message finished (delivered or bounced): journaled and group-committed like
  /// commit(). Space is reclaimed when every message of a segment is finished.
  void finish(MessageId id, Completion<void> done);

  /// Journals the new state of some recipients of a committed, unfinished message (each
  /// replaces that recipient's earlier state). Group-committed like finish(): `done` runs
  /// after the fdatasync. Fails with kNotFound for a message that is not queued, or
  /// kInvalidArgument for an index past the envelope's recipients.
  void record(MessageId id, std::vector<RecipientState> states, Completion<void> done);

  /// Messages that are committed and not finished, oldest first.
  std::vector<QueuedMessage> queued() const;
  /// Up to `max` of those, the oldest ones with an id after `after`: how a large backlog is
  /// taken over a page at a time instead of all of it decoded at once. Ids
  /// are never 0, so `after` = 0 starts at the oldest.
  std::vector<QueuedMessage> queued_after(MessageId after, std::size_t max) const;

  /// Streams the content of a committed message to `sink` in pieces, in order. Blocking.
  Expected<void> read_content(MessageId id,
                              const std::function<void(std::string_view)>& sink) const;

  /// A committed message's content, to be read a few chunks at a time: how a delivery
  /// streams it without holding it whole. Fails with kNotFound for a message that is not
  /// queued. Blocking (it may open segment files).
  Expected<ContentReader> open_content(MessageId id) const;
  /// The same without waiting for the disk: nullopt when a segment file would have to be
  /// opened or the last octet is not in the page cache (open_content on a worker thread
  /// then). For an event loop: it waits at most for a lock that another thread holds
  /// while it opens a segment file.
  Expected<std::optional<ContentReader>> try_open_content(MessageId id) const;

  struct Stats {
    std::uint64_t commits = 0;       ///< messages made durable
    std::uint64_t syncs = 0;         ///< fdatasync batches (commits / syncs = batching factor)
    std::uint64_t bytes_written = 0;
    std::size_t queued = 0;
    std::size_t segments = 0;
    std::uint64_t write_errors = 0;    ///< batches that failed (every operation in them failed)
    std::uint64_t finishes = 0;        ///< messages marked finished
    std::uint64_t commit_batches = 0;  ///< synced batches that contained at least one commit
    /// Messages with content written and neither committed nor aborted: sessions receiving
    /// now. A count that stays up with no client sending is a leak pinning segments.
    std::size_t receiving = 0;
    std::uint64_t disk_bytes = 0;      ///< bytes of every segment file
    std::uint64_t live_bytes = 0;      ///< bytes of the records of queued messages
    std::uint64_t compacted = 0;       ///< messages copied forward out of mostly-dead segments
    std::uint64_t damaged = 0;         ///< messages whose content failed its check when read
    std::size_t open_files = 0;        ///< segment files open now
    /// Why the spool is degraded (a reclaim step failed, damage was found), or empty.
    std::string degraded;
    /// Messages made durable per fdatasync batch: the group-commit gain (1.0 = none).
    double batching_factor() const {
      return commit_batches == 0 ? 0.0 : static_cast<double>(commits) / static_cast<double>(commit_batches);
    }
  };
  Stats stats() const;

  /// Test seam, like SpoolOptions::fault_after_bytes but re-armable: from now on, writes
  /// fail as if the disk were full once `bytes` more bytes are written; 0 = disk healthy.
  void set_fault_after_bytes(std::uint64_t bytes);

 private:
  friend class ContentReader;  // reports damage it finds
  struct Impl;
  Expected<std::optional<ContentReader>> open_content_impl(MessageId id, bool nowait) const;
  explicit Spool(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace bridgehead::spool
