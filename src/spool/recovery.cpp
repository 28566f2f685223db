// Opening a spool: the journals and segments read back into the index, torn tails cut, and
// damage set aside in damaged/ for a person, never guessed at.

#include "spool/spool_impl.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <map>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include <fmt/format.h>

#include "core/durable_file.hpp"
#include "core/text.hpp"

namespace bridgehead::spool {

namespace {

/// Matches "<prefix><16 hex><suffix>" and returns the number.
std::optional<std::uint64_t> parse_file_name(std::string_view name, std::string_view prefix,
                                             std::string_view suffix) {
  if (name.size() != prefix.size() + 16 + suffix.size() || name.substr(0, prefix.size()) != prefix ||
      name.substr(name.size() - suffix.size()) != suffix) {
    return std::nullopt;
  }
  return parse_hex16(name.substr(prefix.size(), 16));
}

Error corrupt(std::string msg) {
  return Error::permanent(ErrorCode::kCorrupt, std::move(msg),
                          "run the Bridgehead version that wrote this spool, or move the file away "
                          "after saving a copy; nothing in it was discarded");
}

/// An envelope as stored, for a note people read: the JSON form when it decodes, else its
/// bytes with control characters escaped.
std::string readable_envelope(std::string_view stored) {
  if (auto env = deserialize_envelope(stored)) return serialize(*env);
  return escape_control(stored);
}

/// A spool file opened for reading and writing, mapped whole for reading (recovery only).
class MappedFile {
 public:
  /// Fails when it cannot be opened, or mapped.
  static Expected<MappedFile> open(const std::filesystem::path& path) {
    MappedFile f;
    f.fd_ = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (f.fd_ < 0) return fail(io_error(errno, "cannot open", path));
    struct stat st {};
    if (::fstat(f.fd_, &st) != 0) return fail(io_error(errno, "cannot stat", path));
    f.size_ = static_cast<std::size_t>(st.st_size);
    if (f.size_ == 0) return f;
    void* a = ::mmap(nullptr, f.size_, PROT_READ, MAP_PRIVATE, f.fd_, 0);
    if (a == MAP_FAILED) return fail(io_error(errno, "cannot map", path));
    f.addr_ = a;
    return f;
  }
  MappedFile(MappedFile&& o) noexcept
      : fd_(std::exchange(o.fd_, -1)), addr_(std::exchange(o.addr_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  MappedFile& operator=(MappedFile&&) = delete;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile() {
    unmap();
    if (fd_ >= 0) ::close(fd_);
  }
  std::string_view view() const {
    return addr_ == nullptr ? std::string_view{} : std::string_view(static_cast<const char*>(addr_), size_);
  }
  int fd() const { return fd_; }
  /// Ends the view; the descriptor stays open.
  void unmap() {
    if (addr_ != nullptr) ::munmap(addr_, size_);
    addr_ = nullptr;
  }
  /// Hands the descriptor over to the caller, who closes it.
  int release() {
    unmap();
    return std::exchange(fd_, -1);
  }

 private:
  MappedFile() = default;
  int fd_ = -1;
  void* addr_ = nullptr;
  std::size_t size_ = 0;
};

/// A spool file read back at open, and what its header says.
struct SpoolFile {
  MappedFile content;
  FileHeader header;
};

/// Opens and maps a spool file and decodes its header. A version this build does not read
/// fails with kCorrupt, the file untouched: it is never taken for damage and discarded.
Expected<SpoolFile> open_spool_file(const std::filesystem::path& path, std::string_view magic) {
  auto f = MappedFile::open(path);
  if (!f) return fail(f.error());
  const FileHeader h = decode_file_header(magic, f->view());
  if (h.check == HeaderCheck::kUnknownVersion) {
    return fail(corrupt(fmt::format("spool file {} has format version {}, this build reads versions {} to {}",
                                    path.string(), h.version, kOldestFormatVersion, kFormatVersion)));
  }
  return SpoolFile{std::move(*f), h};
}

bool record_at(std::string_view data, std::size_t pos, FrameHeader& h) {
  if (data.size() - pos < kFrameHeaderSize) return false;
  auto hdr = decode_frame_header(data.substr(pos, kFrameHeaderSize));
  if (!hdr || data.size() - pos - kFrameHeaderSize < hdr->length) return false;
  if (!frame_crc_ok(data.substr(pos, kFrameHeaderSize), *hdr,
                    data.substr(pos + kFrameHeaderSize, hdr->length))) {
    return false;
  }
  h = *hdr;
  return true;
}

/// Like record_at, for a sealed segment: the frame header must be valid and the payload
/// must fit, but a CHUNK's payload is not read (its CRC is checked when the content is
/// read); the other records are small and checked in full.
bool header_at(std::string_view data, std::size_t pos, FrameHeader& h) {
  if (data.size() - pos < kFrameHeaderSize) return false;
  auto hdr = decode_frame_header(data.substr(pos, kFrameHeaderSize));
  if (!hdr || data.size() - pos - kFrameHeaderSize < hdr->length) return false;
  if (hdr->type != kChunk &&
      !frame_crc_ok(data.substr(pos, kFrameHeaderSize), *hdr, data.substr(pos + kFrameHeaderSize, hdr->length))) {
    return false;
  }
  h = *hdr;
  return true;
}

struct ScanOutcome {
  std::uint64_t end = 0;  ///< where valid data ends
  bool damaged = false;   ///< a record at `end` does not check out; nothing after it was read
  bool more = false;      ///< ...and a valid-looking frame follows somewhere after it
};

enum class Check { kWhole, kHeaders };

/// Walks the records of a file from `start` up to the first one that does not check out
/// (kHeaders: see header_at). Nothing after it is read as records: the next valid-looking
/// frame may be message content (a body can hold well-formed frames) or a remote server's
/// reply text in a RECIPIENT_STATE (which could hold a FINISHED frame), and taking it for a
/// record would queue a message nobody sent or drop one nobody delivered.
template <typename OnRecord>
Expected<ScanOutcome> scan_records(std::string_view data, std::size_t start, Check check, OnRecord&& on_record) {
  ScanOutcome out;
  std::size_t pos = start;
  while (pos < data.size()) {
    FrameHeader h;
    if (!(check == Check::kWhole ? record_at(data, pos, h) : header_at(data, pos, h))) {
      out.damaged = true;
      out.end = pos;
      for (std::size_t next = data.find(kRecordMagic, pos + 1); next != std::string_view::npos && !out.more;
           next = data.find(kRecordMagic, next + 1)) {
        out.more = record_at(data, next, h);
      }
      return out;
    }
    auto r = on_record(h, data.substr(pos + kFrameHeaderSize, h.length), static_cast<std::uint64_t>(pos + kFrameHeaderSize));
    if (!r) return fail(r.error());
    pos += kFrameHeaderSize + h.length;
  }
  out.end = data.size();
  return out;
}

/// One copy of a message as read from the segments: its chunks since a chunk 0.
struct Attempt {
  Range range;
  std::uint32_t chunks = 0;
  std::uint64_t size = 0;
  std::uint32_t digest = 0;
  std::vector<Extent> extents;
  bool broken = false;
};

struct ScanMsg {
  Range all;     ///< every segment with any record of the message (all its copies)
  Attempt cur;   ///< the copy being read
  bool committed = false;
};

/// A committed message that cannot be queued, to be set aside in damaged/.
struct DamagedMsg {
  std::string why;
  std::string envelope;  ///< as stored (JSON), possibly unreadable
  Attempt copy;
};

void extend(Range& r, std::uint64_t seq) {
  if (r.first == 0) r.first = seq;
  r.last = std::max(r.last, seq);
}

/// Why copy `a` of a message does not match its COMMIT record `payload`, or empty.
std::string why_unusable(const Attempt& a, std::string_view payload) {
  const std::uint32_t chunks = get_u32(payload.data() + 16);
  if (a.broken || a.chunks != chunks) return fmt::format("{} of {} chunks readable", a.chunks, chunks);
  if (a.size != get_u64(payload.data() + 8)) return "size mismatch";
  if (a.digest != get_u32(payload.data() + 20)) return "chunk digest mismatch";
  return {};
}

}  // namespace

/// The open of a spool, step by step. Each step adds to what the ones before it found; run()
/// lists them in their order, which matters: the journals are read before the segments so
/// that a finished message is never queued, and the index is complete before a single
/// segment is deleted or the journal rewritten.
class Spool::Impl::Recovery {
 public:
  explicit Recovery(Impl& spool) : spool_(spool), report_(spool.report) {}

  Expected<void> run() {
    if (auto r = lock_directory(); !r) return r;
    if (auto r = list_directory(); !r) return r;
    if (auto r = read_state_file(); !r) return r;
    if (auto r = read_journals(); !r) return r;
    if (auto r = read_segments(); !r) return r;
    // A sealed segment's content is checked when read; set aside now what could not be
    // queued, so that no damaged message pins its segments (and their space) forever.
    spool_.seg_files = found_;  // the salvage reads go through the file cache
    set_aside_newer_generations();
    set_aside_damaged();
    count_unqueued();
    apply_recorded_states();
    if (auto r = start_generation(); !r) return r;
    rebuild_references();
    return rewrite_journal();
  }

 private:
  Expected<void> lock_directory();
  Expected<void> list_directory();
  Expected<void> read_state_file();
  Expected<void> read_journals();
  /// Opens each file of `seqs` (named by `name`), oldest first, and hands it to `read`
  /// with whether it is the newest one.
  template <typename Read>
  Expected<void> read_files(const std::vector<std::uint64_t>& seqs, std::string (*name)(std::uint64_t),
                            std::string_view magic, Read&& read) {
    for (std::size_t k = 0; k < seqs.size(); ++k) {
      const auto path = file(name(seqs[k]));
      auto f = open_spool_file(path, magic);
      if (!f) return fail(f.error());
      if (auto r = read(seqs[k], k + 1 == seqs.size(), path, *f); !r) return r;
    }
    return {};
  }
  Expected<void> read_journal(std::uint64_t seq, bool last, const std::filesystem::path& path, SpoolFile& f);
  Expected<void> on_journal_record(const FrameHeader& fh, std::string_view payload, const std::filesystem::path& path);
  void note_states(DecodedStates d);
  Expected<void> read_segments();
  Expected<void> read_segment(std::uint64_t seq, bool last, const std::filesystem::path& path, SpoolFile& f);
  /// The newest file, whose header never made it to the disk: nothing in it was acknowledged.
  void remove_headless(const std::filesystem::path& path, std::size_t size);
  /// Where the records of a file with a damaged header are read from: they are read anyway.
  std::size_t read_despite_header(const std::filesystem::path& path, std::string_view data);
  Expected<void> on_segment_record(std::uint64_t seq, const FrameHeader& fh, std::string_view payload, std::uint64_t at,
                                   const std::filesystem::path& path);
  void on_chunk(std::uint64_t seq, const FrameHeader& fh, std::string_view payload, std::uint64_t at);
  void on_commit(std::uint64_t seq, std::string_view payload);
  /// Queues copy `a` of message `id`, whose COMMIT record `payload` is in segment `seq`.
  void queue_copy(MessageId id, std::uint64_t seq, Attempt a, const Envelope& env, std::string_view payload);
  /// Copies the bytes of a file from `at` on to damaged/ (and says so in a note). Fails
  /// only for the newest file (`last`), whose tail is cut next.
  Expected<void> set_aside_journal_tail(std::uint64_t seq, std::string_view data, std::size_t at, bool last);
  Expected<void> set_aside_segment_tail(std::uint64_t seq, std::string_view data, std::size_t at, bool last);
  Expected<void> cut_torn_tail(int fd, const std::filesystem::path& path, std::uint64_t at, std::uint64_t size);
  void set_aside_newer_generations();
  void set_aside_damaged();
  /// The text of damaged/<id>.msg: why, the envelope, and what of the content can be read.
  std::string salvage(MessageId id, const DamagedMsg& d);
  void count_unqueued();
  void apply_recorded_states();
  Expected<void> start_generation();
  void rebuild_references();
  Expected<void> rewrite_journal();

  std::filesystem::path file(std::string_view name) const { return spool_.file(name); }

  Impl& spool_;
  RecoveryReport& report_;
  MessageId max_id_ = 0;  ///< the highest id any record names

  // The directory's files.
  std::vector<std::uint64_t> segs_, journals_;
  bool have_state_ = false;
  std::uint64_t state_gen_ = 0;
  bool state_ok_ = false;

  // The journals.
  std::unordered_set<MessageId> finished_;
  std::size_t journal_records_ = 0;
  std::size_t state_records_ = 0;
  std::unordered_map<MessageId, std::vector<RecipientState>> recorded_;  ///< latest per index, few each
  bool journal_damaged_ = false;

  // The segments.
  std::map<MessageId, ScanMsg> msgs_;
  std::map<MessageId, DamagedMsg> damaged_msgs_;
  std::map<std::uint64_t, std::shared_ptr<SegmentFile>> found_;
  std::uint64_t first_damaged_seg_ = 0;

  // What follows from both.
  std::vector<Range> pinned_;  ///< damaged messages that could not be set aside
  std::size_t states_kept_ = 0;
  bool states_out_of_range_ = false;
};

Expected<void> Spool::Impl::recover() { return Recovery(*this).run(); }

Expected<void> Spool::Impl::Recovery::lock_directory() {
  const auto& dir = spool_.opt.dir;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return fail(io_error(ec.value(), "cannot create spool directory", dir));
  spool_.dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (spool_.dir_fd < 0) return fail(io_error(errno, "cannot open spool directory", dir));
  if (::flock(spool_.dir_fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      return fail(Error::permanent(ErrorCode::kUnavailable,
                                   fmt::format("spool directory {} is in use by another process", dir.string()),
                                   "stop the other Bridgehead instance or give this one its own spool directory"));
    }
    return fail(io_error(errno, "cannot lock spool directory", dir));
  }
  return {};
}

Expected<void> Spool::Impl::Recovery::list_directory() {
  const auto& dir = spool_.opt.dir;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.size() > 4 && name.substr(name.size() - 4) == ".tmp") {
      ::unlink(entry.path().c_str());  // never renamed: an interrupted atomic write
    } else if (auto s = parse_file_name(name, "seg-", ".bhs")) {
      segs_.push_back(*s);
    } else if (auto j = parse_file_name(name, "journal-", ".bhj")) {
      journals_.push_back(*j);
    } else if (name == kStateName) {
      have_state_ = true;
    }
  }
  if (ec) return fail(io_error(ec.value(), "cannot list spool directory", dir));
  // damaged/ is written with the durable-write helper: a crash can leave its temporary.
  durable::remove_interrupted_writes(dir / "damaged");
  std::sort(segs_.begin(), segs_.end());
  std::sort(journals_.begin(), journals_.end());
  report_.segments = segs_.size();
  return {};
}

Expected<void> Spool::Impl::Recovery::read_state_file() {
  if (!have_state_) return {};
  const auto path = file(kStateName);
  auto f = open_spool_file(path, kStateMagic);
  if (!f) return fail(f.error());
  if (f->header.check == HeaderCheck::kOk) {
    state_gen_ = f->header.sequence;
    state_ok_ = true;
  } else {
    // Written by rename after fsync, so damage here is the disk's: the ids on disk still
    // give a safe lower bound for the generation.
    report_.notes.push_back(fmt::format("{}: damaged; the id generation was rebuilt from the spool files",
                                        path.string()));
  }
  return {};
}

// The union of every FINISHED record in every journal file, and the RECIPIENT_STATE
// records in the order they were written (oldest journal first; a compacted journal starts
// with the states of the one it replaced), so a later state of a recipient replaces an
// earlier one.
Expected<void> Spool::Impl::Recovery::read_journals() {
  auto read = [this](std::uint64_t seq, bool last, const std::filesystem::path& path, SpoolFile& f) {
    return read_journal(seq, last, path, f);
  };
  if (auto r = read_files(journals_, journal_name, kJournalMagic, read); !r) return r;
  if (!journals_.empty()) spool_.journal_seq = std::max(spool_.journal_seq, journals_.back());
  return {};
}

void Spool::Impl::Recovery::remove_headless(const std::filesystem::path& path, std::size_t size) {
  report_.torn_bytes += size;
  report_.notes.push_back(fmt::format("{}: removed, its header was never completely written", path.string()));
  ::unlink(path.c_str());
}

std::size_t Spool::Impl::Recovery::read_despite_header(const std::filesystem::path& path, std::string_view data) {
  report_.notes.push_back(fmt::format("{}: damaged header; its records were read anyway", path.string()));
  return std::min<std::size_t>(kFileHeaderSize, data.size());
}

Expected<void> Spool::Impl::Recovery::read_journal(std::uint64_t seq, bool last, const std::filesystem::path& path,
                                                  SpoolFile& f) {
  const auto data = f.content.view();
  std::size_t start = kFileHeaderSize;
  if (f.header.check == HeaderCheck::kDamaged) {
    journal_damaged_ = true;
    if (last && data.size() < kFileHeaderSize) {
      remove_headless(path, data.size());
      return {};
    }
    start = read_despite_header(path, data);
  }
  auto scan = scan_records(data, start, Check::kWhole,
                           [&](const FrameHeader& fh, std::string_view payload, std::uint64_t) {
                             return on_journal_record(fh, payload, path);
                           });
  if (!scan) return fail(scan.error());
  journal_damaged_ = journal_damaged_ || scan->damaged;
  const std::uint64_t size = data.size();
  if (scan->damaged && (!last || scan->more)) {
    // More than a torn write (or an older journal, which was complete).
    if (auto r = set_aside_journal_tail(seq, data, scan->end, last); !r) return r;
  }
  f.content.unmap();
  const bool torn = scan->damaged && last;
  if (torn) {
    if (auto r = cut_torn_tail(f.content.fd(), path, scan->end, size); !r) return r;
  }
  if (last) {
    spool_.journal_fd = f.content.release();
    spool_.journal_seq = seq;
    spool_.journal_size = torn ? scan->end : size;
  }
  return {};
}

Expected<void> Spool::Impl::Recovery::on_journal_record(const FrameHeader& fh, std::string_view payload,
                                                        const std::filesystem::path& path) {
  if (fh.type == kFinished && payload.size() == 8) {
    const MessageId id = get_u64(payload.data());
    finished_.insert(id);
    max_id_ = std::max(max_id_, id);
    ++journal_records_;
    return {};
  }
  if (fh.type == kRecipientState) {
    auto d = decode_recipient_states(payload);
    if (!d) {
      // Its CRC is right, so this is not disk damage but a writer that disagrees about the
      // layout; the record is skippable, and ignoring it only means those recipients are
      // retried.
      report_.notes.push_back(fmt::format(
          "{}: malformed recipient-state record ({} bytes) ignored; those recipients may be tried again",
          path.string(), payload.size()));
      return {};
    }
    note_states(std::move(*d));
    return {};
  }
  if (fh.flags & kFlagSkippable) return {};
  return fail(corrupt(fmt::format("spool journal {} has a record of type {} ({} bytes) that this build does not know",
                                  path.string(), fh.type, payload.size())));
}

void Spool::Impl::Recovery::note_states(DecodedStates d) {
  max_id_ = std::max(max_id_, d.id);
  ++state_records_;
  auto& latest = recorded_[d.id];
  for (auto& st : d.states) {
    auto same = std::find_if(latest.begin(), latest.end(), [&](const RecipientState& x) { return x.index == st.index; });
    if (same != latest.end()) {
      *same = std::move(st);
    } else {
      latest.push_back(std::move(st));
    }
  }
}

// Oldest first: a message's chunks precede its COMMIT in segment order. A sealed segment
// was fdatasync'ed before the next one was created, so only its record headers are read
// (and the small COMMIT records checked in full): recovery does not read the content,
// which is checked against its chunk CRCs whenever it is read. Only the newest segment can
// end in an unsynced, torn write, so it is checked in full.
Expected<void> Spool::Impl::Recovery::read_segments() {
  auto read = [this](std::uint64_t seq, bool last, const std::filesystem::path& path, SpoolFile& f) {
    return read_segment(seq, last, path, f);
  };
  return read_files(segs_, segment_name, kSegmentMagic, read);
}

Expected<void> Spool::Impl::Recovery::read_segment(std::uint64_t seq, bool last, const std::filesystem::path& path,
                                                  SpoolFile& f) {
  const auto data = f.content.view();
  std::size_t start = kFileHeaderSize;
  if (f.header.check == HeaderCheck::kDamaged) {
    if (last && (data.size() < kFileHeaderSize || data.substr(0, 8) != kSegmentMagic)) {
      // The newest segment is synced for the first time with its first commit; a header
      // that never made it means no commit in it was ever acknowledged.
      remove_headless(path, data.size());
      return spool_.fsync_dir();
    }
    start = read_despite_header(path, data);
    if (first_damaged_seg_ == 0) first_damaged_seg_ = seq;
  }
  auto scan = scan_records(data, start, last ? Check::kWhole : Check::kHeaders,
                           [&](const FrameHeader& fh, std::string_view payload, std::uint64_t at) {
                             return on_segment_record(seq, fh, payload, at, path);
                           });
  if (!scan) return fail(scan.error());
  std::uint64_t size = data.size();
  if (scan->damaged) {
    // Only the newest segment can hold an unsynced write, and everything in it from the
    // first bad record on was never acknowledged; a later valid-looking frame means the
    // bytes may be more than a torn write (disk damage), so they are set aside first.
    if (!last || scan->more) {
      if (auto r = set_aside_segment_tail(seq, data, scan->end, last); !r) return r;
    }
    if (last) {
      f.content.unmap();
      if (auto r = cut_torn_tail(f.content.fd(), path, scan->end, size); !r) return r;
      size = scan->end;
    }
  }
  found_.emplace(seq, std::make_shared<SegmentFile>(SegmentFile{seq, path}));
  spool_.segstat[seq].size = size;
  spool_.next_seg = seq + 1;
  return {};
}

Expected<void> Spool::Impl::Recovery::on_segment_record(std::uint64_t seq, const FrameHeader& fh,
                                                        std::string_view payload, std::uint64_t at,
                                                        const std::filesystem::path& path) {
  if (fh.type == kChunk && payload.size() >= kChunkPrefix) {
    on_chunk(seq, fh, payload, at);
    return {};
  }
  if (fh.type == kCommit && payload.size() >= kCommitPrefix &&
      get_u32(payload.data() + 24) == payload.size() - kCommitPrefix) {
    on_commit(seq, payload);
    return {};
  }
  if (fh.type == kChunk || fh.type == kCommit) {
    report_.notes.push_back(fmt::format("{}: malformed record of type {} at offset {} skipped", path.string(),
                                        fh.type, at - kFrameHeaderSize));
    if (first_damaged_seg_ == 0) first_damaged_seg_ = seq;
    return {};
  }
  if (fh.flags & kFlagSkippable) return {};
  return fail(corrupt(fmt::format("spool segment {} has a record of type {} that this build does not know",
                                  path.string(), fh.type)));
}

void Spool::Impl::Recovery::on_chunk(std::uint64_t seq, const FrameHeader& fh, std::string_view payload,
                                     std::uint64_t at) {
  const MessageId id = get_u64(payload.data());
  const std::uint32_t index = get_u32(payload.data() + 8);
  max_id_ = std::max(max_id_, id);
  ScanMsg& sm = msgs_[id];
  extend(sm.all, seq);
  // Chunk 0 starts a copy: the message as received, or a compaction's copy of it.
  if (index == 0) sm.cur = Attempt{};
  Attempt& a = sm.cur;
  extend(a.range, seq);
  if (a.broken) return;
  if (index != a.chunks) {
    a.broken = true;  // a chunk before this one was lost to damage
    return;
  }
  const auto len = static_cast<std::uint32_t>(payload.size() - kChunkPrefix);
  a.extents.push_back({seq, at + kChunkPrefix, len, fh.crc});
  a.digest = extend_digest(a.digest, fh.crc);
  a.size += len;
  ++a.chunks;
}

void Spool::Impl::Recovery::on_commit(std::uint64_t seq, std::string_view payload) {
  const MessageId id = get_u64(payload.data());
  max_id_ = std::max(max_id_, id);
  ScanMsg& sm = msgs_[id];
  extend(sm.all, seq);
  Attempt a = std::move(sm.cur);
  sm.cur = Attempt{};
  extend(a.range, seq);
  sm.committed = true;
  if (finished_.count(id) != 0) return;
  std::string why = why_unusable(a, payload);
  Expected<Envelope> env = fail(Error::permanent(ErrorCode::kCorrupt, "not read"));
  if (why.empty()) {
    env = deserialize_envelope(payload.substr(kCommitPrefix));
    if (!env) why = env.error().message;
  }
  if (!why.empty()) {
    // An earlier copy that checked out stays queued (a compaction copy that went wrong);
    // otherwise the message is set aside later.
    if (spool_.queued.count(id) == 0) {
      damaged_msgs_[id] = DamagedMsg{why, std::string(payload.substr(kCommitPrefix)), std::move(a)};
    }
    return;
  }
  // The last copy that checks out is the one used: a compaction wrote it after the earlier
  // one, which is garbage once the copy is durable.
  damaged_msgs_.erase(id);
  queue_copy(id, seq, std::move(a), *env, payload);
}

void Spool::Impl::Recovery::queue_copy(MessageId id, std::uint64_t seq, Attempt a, const Envelope& env,
                                       std::string_view payload) {
  Queued q;
  // Envelopes written before the binary form existed are kept in it from now on (a
  // compaction copy writes that form too).
  const std::string_view stored = payload.substr(kCommitPrefix);
  q.envelope = is_binary_envelope(stored) ? std::string(stored) : encode_envelope(env);
  q.recipient_count = static_cast<std::uint32_t>(env.recipients.size());
  q.size = a.size;
  q.extents = std::move(a.extents);
  q.range = a.range;
  q.commit_seq = seq;
  q.commit_bytes = static_cast<std::uint32_t>(kFrameHeaderSize + payload.size());
  spool_.queued.insert_or_assign(id, std::move(q));
}

// Losing a FINISHED record means a second delivery and losing a state a retry, never a
// lost message, so the rest of a damaged journal is not guessed at: a person gets it.
Expected<void> Spool::Impl::Recovery::set_aside_journal_tail(std::uint64_t seq, std::string_view data,
                                                             std::size_t at, bool last) {
  const std::string name = fmt::format("{}-at-{}.bytes", journal_name(seq), at);
  auto saved = spool_.write_damaged(name, data.substr(at));
  if (!saved && last) return fail(saved.error());  // never cut what could not be set aside
  report_.notes.push_back(fmt::format(
      "{}: the record at offset {} does not check out; the {} bytes from there are not read as records (copy: {}); "
      "messages finished in them may be delivered again",
      file(journal_name(seq)).string(), at, data.size() - at, saved ? saved->string() : saved.error().describe()));
  return {};
}

// Nothing after a record that does not check out was read as records (scan_records); the
// bytes from there may be all that is left of committed messages, so a person gets them.
Expected<void> Spool::Impl::Recovery::set_aside_segment_tail(std::uint64_t seq, std::string_view data,
                                                             std::size_t at, bool last) {
  const std::string name = fmt::format("{}-at-{}.bytes", segment_name(seq), at);
  const auto dest = spool_.opt.dir / "damaged" / name;
  std::string where = dest.string();
  if (!std::filesystem::exists(dest)) {
    auto saved = spool_.write_damaged(name, data.substr(at));
    if (!saved && last) return fail(saved.error());  // never cut what could not be set aside
    if (!saved) where = fmt::format("not saved ({})", saved.error().describe());
  }
  report_.notes.push_back(fmt::format(
      "{}: the record at offset {} does not check out; the {} bytes from there are not read as records "
      "(copy: {}); a message whose commit was in them is reported below",
      file(segment_name(seq)).string(), at, data.size() - at, where));
  if (first_damaged_seg_ == 0) first_damaged_seg_ = seq;
  return {};
}

Expected<void> Spool::Impl::Recovery::cut_torn_tail(int fd, const std::filesystem::path& path, std::uint64_t at,
                                                    std::uint64_t size) {
  // The cut must be durable before anything new is written after it, or a later crash
  // could bring back the torn bytes in the middle of the file.
  if (::ftruncate(fd, static_cast<off_t>(at)) != 0 || ::fsync(fd) != 0) {
    return fail(io_error(errno, "cannot truncate torn tail of", path));
  }
  report_.torn_bytes += size - at;
  report_.notes.push_back(fmt::format("{}: truncated a torn tail of {} bytes at offset {}", path.string(), size - at, at));
  return {};
}

void Spool::Impl::Recovery::set_aside_newer_generations() {
  if (!have_state_ || !state_ok_) return;
  auto& queued = spool_.queued;
  for (auto it = queued.begin(); it != queued.end();) {
    if ((it->first >> 32) <= state_gen_) {
      ++it;
      continue;
    }
    // Every generation in use was persisted in `state` before its first id: a record with
    // a newer one is damage or forgery, never a message this spool accepted.
    Attempt a;
    a.extents = it->second.extents;
    a.range = it->second.range;
    damaged_msgs_[it->first] = DamagedMsg{
        fmt::format("its id has generation {}, newer than the spool's state ({})", it->first >> 32, state_gen_),
        it->second.envelope, std::move(a)};
    it = queued.erase(it);
  }
  if ((max_id_ >> 32) > state_gen_) {
    report_.notes.push_back(fmt::format(
        "records claim id generation {} but the spool's state says {}; the state's generation is used",
        max_id_ >> 32, state_gen_));
  }
}

void Spool::Impl::Recovery::set_aside_damaged() {
  const auto& dir = spool_.opt.dir;
  for (auto& [id, d] : damaged_msgs_) {
    auto saved = spool_.write_damaged(format_id(id) + ".msg", salvage(id, d));
    if (saved) {
      ++report_.damaged;
      report_.notes.push_back(fmt::format(
          "message {} was committed but its content is damaged ({}); it is NOT queued; what could be read is "
          "in {}: deliver it by hand or ask the sender to resend",
          format_id(id), d.why, saved->string()));
    } else {
      pinned_.push_back(d.copy.range);
      report_.notes.push_back(fmt::format(
          "message {} was committed but its content is damaged ({}); it is NOT queued and could not be set "
          "aside ({}); its segments in {} are kept",
          format_id(id), d.why, saved.error().describe(), dir.string()));
    }
  }
}

std::string Spool::Impl::Recovery::salvage(MessageId id, const DamagedMsg& d) {
  std::string out = fmt::format("Bridgehead spool {}: message {} set aside at recovery: {}\nenvelope: {}\n\n",
                                spool_.opt.dir.string(), format_id(id), d.why, readable_envelope(d.envelope));
  for (const Extent& e : d.copy.extents) {
    auto f = spool_.files->get(e.seq, file(segment_name(e.seq)));
    std::string piece(e.length, '\0');
    if (!f || ::pread((*f)->fd, piece.data(), piece.size(), static_cast<off_t>(e.offset)) != static_cast<ssize_t>(piece.size())) {
      out += fmt::format("\n[{} bytes of segment {} could not be read]\n", e.length, e.seq);
      continue;
    }
    out += piece;
  }
  return out;
}

// Messages with records but not queued: finished, set aside, or never committed.
void Spool::Impl::Recovery::count_unqueued() {
  for (auto& [id, sm] : msgs_) {
    if (finished_.count(id) != 0) {
      if (sm.committed) ++report_.finished_skipped;
      continue;
    }
    if (auto q = spool_.queued.find(id); q != spool_.queued.end()) {
      // Older copies (compaction) may still be on disk: its FINISHED must outlive them.
      if (sm.all.first != q->second.range.first || sm.all.last != q->second.range.last) q->second.stale.push_back(sm.all);
      continue;
    }
    if (sm.committed) continue;  // set aside
    ++report_.incomplete_dropped;
    if (first_damaged_seg_ != 0 && sm.all.last >= first_damaged_seg_) {
      report_.notes.push_back(fmt::format(
          "message {} has content but no readable commit record; if its commit was in a damaged region it "
          "was acknowledged and is lost (see the copies in {}/damaged)",
          format_id(id), spool_.opt.dir.string()));
    }
  }
  report_.messages = spool_.queued.size();
}

// Those of finished, damaged or unknown messages are simply not carried over.
void Spool::Impl::Recovery::apply_recorded_states() {
  for (auto& [id, latest] : recorded_) {
    auto it = spool_.queued.find(id);
    if (it == spool_.queued.end()) continue;
    const std::size_t n = it->second.recipient_count;
    const auto bad = std::find_if(latest.begin(), latest.end(), [&](const RecipientState& st) { return st.index >= n; });
    if (bad != latest.end()) {
      // record() refuses such an index, so this journal was written by something else;
      // the rest of the states of the message are still good.
      states_out_of_range_ = true;
      report_.notes.push_back(fmt::format("journal state for recipient {} of message {} ignored: it has {} recipients",
                                          bad->index, format_id(id), n));
    }
    spool_.apply_states(id, std::move(latest));
    if (!it->second.recipients.empty()) ++states_kept_;
  }
  recorded_.clear();
}

// A new generation, durable before the first id of this run is handed out.
Expected<void> Spool::Impl::Recovery::start_generation() {
  // With a readable state, its generation is the truth (see set_aside_newer_generations);
  // only without one do the ids on disk give the lower bound.
  spool_.generation = (have_state_ && state_ok_ ? state_gen_ : std::max(state_gen_, max_id_ >> 32)) + 1;
  if (spool_.generation > kCounterMask) return fail(corrupt("spool id generations are exhausted"));
  if (auto r = spool_.persist_generation(spool_.generation); !r) return r;
  spool_.last_id.store(spool_.generation << 32);
  return {};
}

// Segment references, and FINISHED records still worth keeping.
void Spool::Impl::Recovery::rebuild_references() {
  for (const auto& [seq, f] : found_) spool_.refs[seq] = 0;
  for (const auto& [id, q] : spool_.queued) {
    spool_.ref_range(q.range.first, q.range.last, +1);
    spool_.account(id, q, +1);
  }
  // A damaged message that could not be set aside keeps its segments: they are the only
  // copy, and the note about it repeats at every open until it is dealt with.
  for (const Range& r : pinned_) spool_.ref_range(r.first, r.last, +1);
  for (const auto& [id, sm] : msgs_) {
    if (finished_.count(id) != 0) spool_.finished_keep[id] = {sm.all};
  }
  // No segment is current yet, so every segment without a queued message goes now.
  spool_.delete_unused_segments();
  spool_.publish_totals();
}

Expected<void> Spool::Impl::Recovery::rewrite_journal() {
  // A journal that holds exactly what a compaction would write is kept as it is, so an
  // idle spool is not rewritten at every open; any superseded or unneeded record, or
  // damage, is reason enough. The rewrite carries every state still needed.
  const bool rewrite = journals_.size() != 1 || journal_damaged_ || journal_records_ != spool_.finished_keep.size() ||
                       state_records_ != states_kept_ || states_out_of_range_;
  if (!rewrite || (journals_.empty() && spool_.finished_keep.empty())) return {};
  if (auto r = spool_.start_new_journal(); !r) return r;
  // Only now that the new journal is durable may the ones it replaces go.
  for (std::uint64_t j : journals_) ::unlink(file(journal_name(j)).c_str());
  return {};
}

}  // namespace bridgehead::spool
