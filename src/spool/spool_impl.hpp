// What the parts of the spool share: the in-memory index of queued messages, the segment
// files, and Spool::Impl, the state behind the public Spool. Private to src/spool: each
// part is one file (spool.cpp the public API and ids, group_commit.cpp the writer thread,
// compaction.cpp the journal and the reclaiming of segments, recovery.cpp the open).
#pragma once

#include <sys/uio.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/expected.hpp"
#include "spool/format.hpp"
#include "spool/spool.hpp"

namespace bridgehead::spool::detail {

inline constexpr std::uint64_t kCounterMask = 0xFFFFFFFFull;
inline constexpr std::string_view kStateName = "state";

std::string segment_name(std::uint64_t seq);
std::string journal_name(std::uint64_t seq);
std::optional<std::uint64_t> parse_hex16(std::string_view s);

Error io_error(int err, std::string_view what, const std::filesystem::path& p);

enum class Read { kDone, kWouldBlock };

/// Reads exactly `length` octets at `offset`; a segment that ends early is damage. With
/// `nowait`, only from the page cache (preadv2 RWF_NOWAIT): kWouldBlock when any of it is
/// not there, or the kernel cannot tell.
Expected<Read> pread_exact(int fd, char* to, std::size_t length, std::uint64_t offset,
                           const std::filesystem::path& path, MessageId id, bool nowait = false);

/// A segment file's name; its descriptor is opened on demand (FileCache).
struct SegmentFile {
  std::uint64_t seq = 0;
  std::filesystem::path path;
};

/// An open descriptor, shared with readers so that closing it in the cache, or deleting the
/// segment, never closes an fd under a read in progress.
struct OpenFile {
  int fd = -1;
  // Shared: a content reader may be destroyed after the spool (a delivery's coroutine
  // frame torn down with the event loop at exit) and must not touch freed memory then.
  std::shared_ptr<std::atomic<std::size_t>> count;
  OpenFile(int f, std::shared_ptr<std::atomic<std::size_t>> c) : fd(f), count(std::move(c)) { ++*count; }
  ~OpenFile() {
    ::close(fd);
    --*count;
  }
  OpenFile(const OpenFile&) = delete;
  OpenFile& operator=(const OpenFile&) = delete;
};

/// The segment descriptors kept open, least recently used closed first. One descriptor
/// per retained segment would let a thousand segments exhaust the process's limit, and
/// then the daemon could neither accept a connection nor open its spool again.
class FileCache {
 public:
  FileCache(std::size_t limit, std::shared_ptr<std::atomic<std::size_t>> count);
  /// `open_missing` false: a file that is not open already is not opened (that may wait
  /// for the disk) and comes back null.
  Expected<std::shared_ptr<OpenFile>> get(std::uint64_t seq, const std::filesystem::path& path,
                                          bool open_missing = true);
  void insert(std::uint64_t seq, std::shared_ptr<OpenFile> f);
  void drop(std::uint64_t seq);

 private:
  using Entry = std::pair<std::uint64_t, std::shared_ptr<OpenFile>>;
  void insert_locked(std::uint64_t seq, std::shared_ptr<OpenFile> f);
  void drop_locked(std::uint64_t seq);
  std::mutex mu_;
  std::size_t limit_;
  std::shared_ptr<std::atomic<std::size_t>> count_;
  std::list<Entry> lru_;
  std::unordered_map<std::uint64_t, std::list<Entry>::iterator> pos_;
};

struct Extent {
  std::uint64_t seq = 0;
  std::uint64_t offset = 0;  ///< of the content within the segment file
  std::uint32_t length = 0;
  /// The CHUNK record's frame CRC: recovery reads only record headers, so the content is
  /// checked against it when it is read (delivery, compaction) instead.
  std::uint32_t crc = 0;
};

/// Bytes of the CHUNK record that holds an extent.
inline std::uint64_t chunk_record_bytes(const Extent& e) { return kFrameHeaderSize + kChunkPrefix + e.length; }

/// The frame CRC of CHUNK `index` of message `id` over `content` (what encode_frame_header
/// computes), built piece by piece so content can be checked while it streams.
std::uint32_t chunk_crc_start(MessageId id, std::uint32_t index, std::uint32_t length);

/// Segments [first, last] that hold records of one message (0 = none yet).
struct Range {
  std::uint64_t first = 0;
  std::uint64_t last = 0;
};

struct Queued {
  /// The envelope in its binary form (encode_envelope): one allocation of about a hundred
  /// bytes instead of an Envelope's several hundred, since a large backlog is held here
  /// for its whole life and decoded only when the queue manager takes it over.
  std::string envelope;
  std::uint32_t recipient_count = 0;  ///< of that envelope: what record() checks indices against
  std::uint64_t size = 0;
  std::vector<Extent> extents;
  Range range;
  std::uint64_t commit_seq = 0;    ///< segment of its COMMIT record
  std::uint32_t commit_bytes = 0;  ///< size of that record
  /// Segments that may still hold an older copy (before compaction moved it): its
  /// FINISHED record must outlive them.
  std::vector<Range> stale;
  bool damaged = false;  ///< its content failed its check; never copied, kept for the queue manager
  /// Empty while nothing but kPending is known (most messages: no allocation); once a state
  /// is recorded, one entry per envelope recipient, in order.
  std::vector<RecipientState> recipients;
};

/// Journal bytes a compacted journal spends on one message's states (0: none to keep).
std::uint64_t kept_state_bytes(const std::vector<RecipientState>& recipients);

/// A message being received: written to the current segment, not committed.
struct Pending {
  Range range;
  std::uint64_t commit_seq = 0;
  std::uint32_t commit_bytes = 0;
  std::uint32_t chunks = 0;
  std::uint64_t size = 0;
  std::uint32_t digest = 0;
  std::vector<Extent> extents;
  bool committing = false;  ///< its COMMIT is in the batch being written
  bool poisoned = false;    ///< an fdatasync failed after its data was written: cannot be acked
};

/// One call of the public API, queued for the writer thread.
struct Op {
  enum class Kind { kAppend, kCommit, kAbort, kFinish, kRecord };
  Kind kind = Kind::kAppend;
  MessageId id = 0;
  // Each with a default, so that an operation names only the fields it uses.
  std::string data = {};  ///< content (append) or encoded envelope (commit)
  std::string content = {};  ///< commit: the last piece of content, written with the commit record
  std::uint32_t recipient_count = 0;  ///< commit: of the envelope in `data`
  bool bad_envelope = false;          ///< commit: an envelope no reader could decode back
  std::vector<RecipientState> states = {};  ///< record
  Completion<void> done = {};
};

/// Runs one fdatasync on its own thread, so the writer can sync a segment and the journal
/// at the same time: on one file system the two flushes mostly share a device flush, and a
/// batch with both commits and finishes costs about one sync instead of two in a row.
class BackgroundSync {
 public:
  BackgroundSync() = default;
  ~BackgroundSync();
  BackgroundSync(const BackgroundSync&) = delete;
  BackgroundSync& operator=(const BackgroundSync&) = delete;
  void start(int fd);
  /// The errno of the fdatasync started last, 0 on success.
  int wait();

 private:
  void loop();
  std::mutex mu_;
  std::condition_variable cv_;
  std::thread thread_;
  int fd_ = -1;
  int err_ = 0;
  bool pending_ = false;
  bool done_ = false;
  bool quit_ = false;
};

}  // namespace bridgehead::spool::detail

namespace bridgehead::spool {

// Every file that includes this private header already works in terms of the format's
// names; saying detail:: at each of them would only bury what the code does.
using namespace detail;

struct Spool::Impl {
  SpoolOptions opt;
  RecoveryReport report;
  int dir_fd = -1;

  // Ids: high 32 bits the boot generation, low 32 bits a counter.
  std::mutex id_mu;
  std::uint64_t generation = 0;
  std::uint64_t counter = 0;
  std::atomic<MessageId> last_id{0};

  // What readers see. Only the writer thread changes it, in short critical sections after
  // a batch is durable, never around I/O.
  mutable std::shared_mutex index_mu;
  std::map<MessageId, Queued> queued;
  std::map<std::uint64_t, std::shared_ptr<SegmentFile>> seg_files;
  std::shared_ptr<std::atomic<std::size_t>> open_files = std::make_shared<std::atomic<std::size_t>>(0);
  std::unique_ptr<FileCache> files;  ///< made at open, with the configured bound

  std::mutex q_mu;
  std::condition_variable q_cv;
  std::vector<Op> ops;
  bool stopping = false;
  std::thread writer;
  BackgroundSync journal_sync;  ///< writer thread only

  // Writer thread only.
  std::unordered_map<MessageId, Pending> inflight;
  std::map<std::uint64_t, std::uint64_t> refs;  ///< segment -> messages (pending or queued) in it
  /// Finished messages whose records are still on disk: every range that held a copy.
  std::unordered_map<MessageId, std::vector<Range>> finished_keep;
  /// Sum of kept_state_bytes over `queued`: what a compacted journal spends on states.
  std::uint64_t state_bytes = 0;
  /// Segments written since their last fdatasync, with their descriptors: held open so
  /// the sync is on the descriptor the writes went through and sees their errors.
  std::map<std::uint64_t, std::shared_ptr<OpenFile>> dirty;
  std::shared_ptr<SegmentFile> cur;  ///< null: the next write starts a fresh segment
  std::shared_ptr<OpenFile> cur_file;
  /// Per segment: its size, the bytes of queued messages' records in it, and the queued
  /// messages whose range covers it (those compaction must move to free it).
  struct SegStat {
    std::uint64_t size = 0;
    std::uint64_t live = 0;
    std::set<MessageId> members;
  };
  std::map<std::uint64_t, SegStat> segstat;
  bool compaction_wanted = true;  ///< something changed since the last look for mostly-dead segments
  /// SpoolOptions::hold_compaction until resume_compaction(): no segment is made or removed
  /// by compaction while the daemon, still root, hands the directory to its service user.
  std::atomic<bool> compaction_held{false};
  /// Why reclaiming is failing, per step ("unlink", "journal"); cleared when the step works.
  mutable std::mutex degraded_mu;
  std::map<std::string, std::string> degraded;
  std::unordered_set<MessageId> damaged_reads;  ///< under degraded_mu
  std::uint64_t cur_size = 0;
  std::uint64_t next_seg = 1;
  int journal_fd = -1;
  std::uint64_t journal_seq = 0;
  std::uint64_t journal_size = 0;
  bool journal_broken = false;  ///< its tail could not be cut back after a failure: start anew

  std::atomic<std::uint64_t> bytes_written{0};
  std::atomic<std::uint64_t> fault_limit{0};  ///< absolute bytes_written at which writes fail
  std::atomic<std::uint64_t> commits{0}, syncs{0}, commit_batches{0}, finishes{0}, write_errors{0};
  std::atomic<std::size_t> receiving{0};  ///< inflight.size() after the last batch, for stats()
  std::atomic<std::uint64_t> disk_total{0}, live_total{0}, compacted{0}, damaged_total{0};

  Impl() = default;
  ~Impl();
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  std::filesystem::path file(std::string_view name) const { return opt.dir / std::string(name); }

  /// The test seam's verdict on `step`: 0, or the errno it is to fail with.
  int fault(std::string_view step) const { return opt.fault_hook ? opt.fault_hook(step) : 0; }

  // ---- spool.cpp: state people see, files written whole, ids

  /// Puts the spool in degraded with `why` for `step` (logged once per new cause), or,
  /// with an empty `why`, clears that step.
  void set_degraded(const std::string& step, const std::string& why);
  /// A read found damaged content: counted and said once per message (any thread).
  void note_damaged_read(MessageId id, const std::filesystem::path& path);
  Expected<void> fsync_dir();
  /// Writes `content` as `name` in the spool directory, durably: never a partial file
  /// under that name.
  Expected<void> write_atomically(std::string_view name, std::string_view content);
  /// Sets `content` aside, durably, as damaged/<name> for a person to salvage. Returns the
  /// file's path.
  Expected<std::filesystem::path> write_damaged(const std::string& name, std::string_view content);
  Expected<void> persist_generation(std::uint64_t gen);
  MessageId next_id();

  // ---- group_commit.cpp: the writer thread and its batches

  struct Undo {
    MessageId id = 0;
    bool existed = false;
    Pending before;  ///< extents left empty; see extents_size
    std::size_t extents_size = 0;
  };

  struct Batch {
    std::vector<std::optional<Error>> result;  ///< per op: its own error (unknown id, ...)
    std::deque<std::array<char, kFrameHeaderSize + kCommitPrefix>> bufs;  ///< stable addresses
    std::deque<std::string> records;  ///< encoded RECIPIENT_STATE records, stable addresses
    std::vector<iovec> seg_iov;
    std::uint64_t seg_iov_offset = 0;
    std::vector<iovec> journal_iov;
    std::shared_ptr<SegmentFile> cur_at_start;
    std::shared_ptr<OpenFile> cur_file_at_start;
    std::uint64_t seg_good = 0;
    std::uint64_t journal_good = 0;
    std::vector<std::uint64_t> created;
    std::unordered_map<MessageId, Undo> undo;
    std::vector<MessageId> commits;
    std::unordered_set<MessageId> committing;
    std::vector<MessageId> finishing;
    std::unordered_set<MessageId> finishing_set;
    std::vector<std::size_t> recording;  ///< indexes of the record ops that write a record
    std::vector<MessageId> aborts;
    /// Compaction: copies of queued messages written in this batch, applied once synced.
    struct Copy {
      MessageId id = 0;
      std::vector<Extent> extents;
      Range range;
      std::uint64_t commit_seq = 0;
      std::uint32_t commit_bytes = 0;
    };
    std::vector<Copy> copies;
    std::deque<std::string> copy_data;  ///< content read back and envelopes, stable addresses
    bool sync_failed = false;
    bool rolled = false;
  };

  /// pwritev of everything in `iov` at `offset`; honours the fault seam. Returns 0 or errno.
  int write_all(int fd, std::uint64_t offset, std::vector<iovec> iov);
  Expected<void> flush_segment(Batch& b);
  Expected<void> open_new_segment(Batch& b);
  Expected<void> make_room(Batch& b, std::uint64_t bytes);
  /// Queues one record for the current segment; returns the file offset of its payload.
  std::uint64_t add_record(Batch& b, std::uint8_t type, std::string_view prefix, std::string_view body,
                           std::uint32_t* crc_out);
  /// Why op (an append or commit) may not write to its message: an id not begun in this
  /// run, one already committed, or one whose commit is in this batch.
  std::optional<Error> check_writable(const Batch& b, const Op& op) const;
  Pending& pending_for(Batch& b, MessageId id);
  Expected<void> plan_append(Batch& b, std::size_t i, Op& op);
  /// Plans the CHUNK records of `content` (which must outlive the batch: it is written
  /// straight from there by pwritev).
  Expected<void> plan_chunks(Batch& b, MessageId id, std::string_view data);
  Expected<void> plan_commit(Batch& b, std::size_t i, Op& op);
  Expected<void> plan_finish(Batch& b, std::size_t i, Op& op);
  Expected<void> plan_record(Batch& b, std::size_t i, Op& op);
  void run_batch(std::vector<Op>& batch);
  /// Aborts take effect whatever happened to the batch; then space is reclaimed, before
  /// the completions run so a finished message's space is free when finish() reports it.
  void apply_aborts_and_reclaim(Batch& b, bool failed);
  /// stats().receiving: messages in flight, not counting those this batch aborts.
  void publish_receiving(const Batch& b);
  void succeed_batch(Batch& b, std::vector<Op>& batch, bool synced);
  void fail_batch(Batch& b, std::vector<Op>& batch, const Error& err);
  void writer_loop();
  void submit(Op op);

  // ---- compaction.cpp: live-data accounting, the journal, reclaiming segments

  /// Adds (+1) or removes (-1) a queued message's records from the per-segment counts.
  void account(MessageId id, const Queued& q, int sign);
  /// Publishes the totals stats() shows (writer thread, after each batch).
  void publish_totals();
  void ref_range(std::uint64_t from, std::uint64_t to, int delta);
  /// A message now has a record in segment `seq`: it pins every segment of its range.
  void touch(Range& r, std::uint64_t seq);
  /// Whether any segment of `r` still exists.
  bool any_on_disk(const Range& r) const;
  void delete_unused_segments();
  /// Replaces the states of some recipients of a queued message (in order: a later state
  /// of the same index wins). Caller holds index_mu exclusively, or is recovery.
  void apply_states(MessageId id, std::vector<RecipientState> states);
  /// Reads the content of queued message `id` back from its segments and checks every
  /// chunk against its CRC. nullopt (and the message marked damaged, or the error noted)
  /// when it cannot be read intact: such a message is never copied.
  std::optional<std::vector<std::string_view>> read_back(Batch& b, MessageId id, Queued& q);
  /// A queued message whose content fails its check: said once, loudly; it stays queued so
  /// the queue manager (whose read fails the same way) decides, and frees it on finish.
  void mark_damaged(MessageId id, Queued& q, const std::string& why);
  /// Plans a copy of queued message `id` into the current segment; returns its bytes (0:
  /// not copied, it cannot be read intact).
  Expected<std::uint64_t> plan_copy(Batch& b, MessageId id, Queued& q);
  /// Plans, into `b`, the copies that let mostly-dead segments go (a bounded amount a batch).
  Expected<void> plan_compaction(Batch& b);
  /// Appends the records a compacted journal keeps for the current state to `content`.
  void append_kept_records(std::string& content) const;
  std::uint64_t compacted_journal_size() const;
  /// Writes a fresh journal holding the FINISHED records still needed and the current
  /// recipient states of queued messages, then retires the old one(s).
  Expected<void> start_new_journal();
  void maybe_compact();

  // ---- recovery.cpp: rebuilding all of the above from the directory at open

  Expected<void> recover();
  class Recovery;
};

}  // namespace bridgehead::spool
