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

/// Reads a whole file through mmap (recovery only).
class MappedFile {
 public:
  MappedFile() = default;
  ~MappedFile() {
    if (addr_ != nullptr) ::munmap(addr_, size_);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  Expected<void> map(int fd, const std::filesystem::path& path) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) return fail(io_error(errno, "cannot stat", path));
    size_ = static_cast<std::size_t>(st.st_size);
    if (size_ == 0) return {};
    void* a = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (a == MAP_FAILED) return fail(io_error(errno, "cannot map", path));
    addr_ = a;
    return {};
  }
  std::string_view view() const {
    return addr_ == nullptr ? std::string_view{} : std::string_view(static_cast<const char*>(addr_), size_);
  }

 private:
  void* addr_ = nullptr;
  std::size_t size_ = 0;
};

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

struct ScanOutcome {
  std::uint64_t end = 0;  ///< where valid data ends
  bool damaged = false;   ///< a record at `end` does not check out; nothing after it was read
  bool more = false;      ///< ...and a valid-looking frame follows somewhere after it
};

/// Walks the records of a journal from `start` up to the first one that does not check
/// out. Nothing after it is read as records: a RECIPIENT_STATE carries a remote server's
/// reply text, which could hold a well-formed FINISHED frame, and taking that for a record
/// would drop a message nobody delivered.
template <typename OnRecord>
Expected<ScanOutcome> scan_records(std::string_view data, std::size_t start, OnRecord&& on_record) {
  ScanOutcome out;
  std::size_t pos = start;
  while (pos < data.size()) {
    FrameHeader h;
    if (!record_at(data, pos, h)) {
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

void extend(Range& r, std::uint64_t seq) {
  if (r.first == 0) r.first = seq;
  r.last = std::max(r.last, seq);
}

}  // namespace

Expected<void> Spool::Impl::recover() {
  std::error_code ec;
  std::filesystem::create_directories(opt.dir, ec);
  if (ec) return fail(io_error(ec.value(), "cannot create spool directory", opt.dir));
  dir_fd = ::open(opt.dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) return fail(io_error(errno, "cannot open spool directory", opt.dir));
  if (::flock(dir_fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      return fail(Error::permanent(ErrorCode::kUnavailable,
                                   fmt::format("spool directory {} is in use by another process", opt.dir.string()),
                                   "stop the other Bridgehead instance or give this one its own spool directory"));
    }
    return fail(io_error(errno, "cannot lock spool directory", opt.dir));
  }

  std::vector<std::uint64_t> segs, journals;
  bool have_state = false;
  for (const auto& entry : std::filesystem::directory_iterator(opt.dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.size() > 4 && name.substr(name.size() - 4) == ".tmp") {
      ::unlink(entry.path().c_str());  // never renamed: an interrupted atomic write
    } else if (auto s = parse_file_name(name, "seg-", ".bhs")) {
      segs.push_back(*s);
    } else if (auto j = parse_file_name(name, "journal-", ".bhj")) {
      journals.push_back(*j);
    } else if (name == kStateName) {
      have_state = true;
    }
  }
  if (ec) return fail(io_error(ec.value(), "cannot list spool directory", opt.dir));
  // damaged/ is written with the durable-write helper: a crash can leave its temporary.
  durable::remove_interrupted_writes(opt.dir / "damaged");
  std::sort(segs.begin(), segs.end());
  std::sort(journals.begin(), journals.end());
  report.segments = segs.size();

  auto open_and_map = [&](const std::filesystem::path& path, int& fd, MappedFile& m) -> Expected<void> {
    fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) return fail(io_error(errno, "cannot open", path));
    return m.map(fd, path);
  };
  auto unknown_version = [](const std::filesystem::path& path, std::uint32_t v) {
    return corrupt(fmt::format("spool file {} has format version {}, this build reads versions {} to {}",
                               path.string(), v, kOldestFormatVersion, kFormatVersion));
  };
  auto cut = [&](int fd, const std::filesystem::path& path, std::uint64_t at, std::uint64_t size) -> Expected<void> {
    // The cut must be durable before anything new is written after it, or a later crash
    // could bring back the torn bytes in the middle of the file.
    if (::ftruncate(fd, static_cast<off_t>(at)) != 0 || ::fsync(fd) != 0) {
      return fail(io_error(errno, "cannot truncate torn tail of", path));
    }
    report.torn_bytes += size - at;
    report.notes.push_back(fmt::format("{}: truncated a torn tail of {} bytes at offset {}", path.string(), size - at, at));
    return {};
  };

  MessageId max_id = 0;

  // ---- state file
  std::uint64_t state_gen = 0;
  bool state_ok = false;
  if (have_state) {
    const auto path = file(kStateName);
    int fd = -1;
    MappedFile m;
    auto r = open_and_map(path, fd, m);
    const auto h = r ? decode_file_header(kStateMagic, m.view()) : FileHeader{};
    if (fd >= 0) ::close(fd);
    if (!r) return r;
    if (h.check == HeaderCheck::kUnknownVersion) return fail(unknown_version(path, h.version));
    if (h.check == HeaderCheck::kOk) {
      state_gen = h.sequence;
      state_ok = true;
    } else {
      // Written by rename after fsync, so damage here is the disk's: the ids on disk still
      // give a safe lower bound for the generation.
      report.notes.push_back(fmt::format("{}: damaged; the id generation was rebuilt from the spool files",
                                         path.string()));
    }
  }

  // ---- journals: the union of every FINISHED record in every journal file, and the
  // RECIPIENT_STATE records in the order they were written (oldest journal first; a
  // compacted journal starts with the states of the one it replaced), so a later state of
  // a recipient replaces an earlier one.
  std::unordered_set<MessageId> finished;
  std::size_t journal_records = 0;
  std::size_t state_records = 0;
  std::unordered_map<MessageId, std::vector<RecipientState>> recorded;  ///< latest per index, few each
  bool journal_damaged = false;
  for (std::size_t k = 0; k < journals.size(); ++k) {
    const auto path = file(journal_name(journals[k]));
    const bool last = k + 1 == journals.size();
    int fd = -1;
    std::optional<MappedFile> m(std::in_place);
    auto close_fd = [&] {
      if (fd >= 0) ::close(fd);
      fd = -1;
    };
    if (auto r = open_and_map(path, fd, *m); !r) {
      close_fd();
      return r;
    }
    const auto data = m->view();
    const auto h = decode_file_header(kJournalMagic, data);
    if (h.check == HeaderCheck::kUnknownVersion) {
      close_fd();
      return fail(unknown_version(path, h.version));
    }
    std::size_t start = kFileHeaderSize;
    if (h.check == HeaderCheck::kDamaged) {
      journal_damaged = true;
      if (last && data.size() < kFileHeaderSize) {
        report.torn_bytes += data.size();
        report.notes.push_back(fmt::format("{}: removed, its header was never completely written", path.string()));
        close_fd();
        ::unlink(path.c_str());
        continue;
      }
      report.notes.push_back(fmt::format("{}: damaged header; its records were read anyway", path.string()));
      start = std::min<std::size_t>(kFileHeaderSize, data.size());
    }
    auto scan = scan_records(data, start,
                             [&](const FrameHeader& fh, std::string_view payload, std::uint64_t) -> Expected<void> {
                               if (fh.type == kFinished && payload.size() == 8) {
                                 const MessageId id = get_u64(payload.data());
                                 finished.insert(id);
                                 max_id = std::max(max_id, id);
                                 ++journal_records;
                                 return {};
                               }
                               if (fh.type == kRecipientState) {
                                 auto d = decode_recipient_states(payload);
                                 if (!d) {
                                   // Its CRC is right, so this is not disk damage but a writer
                                   // that disagrees about the layout; the record is skippable,
                                   // and ignoring it only means those recipients are retried.
                                   report.notes.push_back(fmt::format(
                                       "{}: malformed recipient-state record ({} bytes) ignored; those "
                                       "recipients may be tried again",
                                       path.string(), payload.size()));
                                   return {};
                                 }
                                 max_id = std::max(max_id, d->id);
                                 ++state_records;
                                 auto& latest = recorded[d->id];
                                 for (auto& st : d->states) {
                                   auto same = std::find_if(latest.begin(), latest.end(),
                                                            [&](const RecipientState& x) { return x.index == st.index; });
                                   if (same != latest.end()) {
                                     *same = std::move(st);
                                   } else {
                                     latest.push_back(std::move(st));
                                   }
                                 }
                                 return {};
                               }
                               if (fh.flags & kFlagSkippable) return {};
                               return fail(corrupt(fmt::format(
                                   "spool journal {} has a record of type {} ({} bytes) that this build does not know",
                                   path.string(), fh.type, payload.size())));
                             });
    if (!scan) {
      close_fd();
      return fail(scan.error());
    }
    journal_damaged = journal_damaged || scan->damaged;
    const std::uint64_t size = data.size();
    if (scan->damaged && (!last || scan->more)) {
      // More than a torn write (or an older journal, which was complete): set the rest
      // aside for a person. Losing a FINISHED record means a second delivery and losing a
      // state a retry, never a lost message, so the rest is not guessed at.
      const std::string name = fmt::format("{}-at-{}.bytes", journal_name(journals[k]), scan->end);
      auto saved = write_damaged(name, data.substr(scan->end));
      if (!saved && last) {
        close_fd();
        return fail(saved.error());  // never cut what could not be set aside
      }
      report.notes.push_back(fmt::format(
          "{}: the record at offset {} does not check out; the {} bytes from there are not read as records (copy: {}); "
          "messages finished in them may be delivered again",
          path.string(), scan->end, size - scan->end, saved ? saved->string() : saved.error().describe()));
    }
    m.reset();
    const bool torn = scan->damaged && last;
    if (torn) {
      if (auto r = cut(fd, path, scan->end, size); !r) {
        close_fd();
        return r;
      }
    }
    if (last) {
      journal_fd = fd;
      journal_seq = journals[k];
      journal_size = torn ? scan->end : size;
    } else {
      close_fd();
    }
  }
  if (!journals.empty()) journal_seq = std::max(journal_seq, journals.back());

  // ---- segments, oldest first: a message's chunks precede its COMMIT in segment order.
  // A sealed segment was fdatasync'ed before the next one was created, so only its record
  // headers are read (and the small COMMIT records checked in full): recovery does not
  // read the content, which is checked against its chunk CRCs whenever it is read. Only
  // the newest segment can end in an unsynced, torn write, so it is checked in full.
  std::map<MessageId, ScanMsg> msgs;
  std::map<MessageId, DamagedMsg> damaged_msgs;
  std::map<std::uint64_t, std::shared_ptr<SegmentFile>> found;
  std::uint64_t first_damaged_seg = 0;
  for (std::size_t k = 0; k < segs.size(); ++k) {
    const std::uint64_t seq = segs[k];
    const auto path = file(segment_name(seq));
    const bool last = k + 1 == segs.size();
    int fd = -1;
    std::optional<MappedFile> m(std::in_place);
    auto close_fd = [&] {
      m.reset();
      if (fd >= 0) ::close(fd);
      fd = -1;
    };
    if (auto r = open_and_map(path, fd, *m); !r) {
      close_fd();
      return r;
    }
    const auto data = m->view();
    const auto h = decode_file_header(kSegmentMagic, data);
    if (h.check == HeaderCheck::kUnknownVersion) {
      close_fd();
      return fail(unknown_version(path, h.version));
    }
    std::size_t start = kFileHeaderSize;
    if (h.check == HeaderCheck::kDamaged) {
      if (last && (data.size() < kFileHeaderSize || data.substr(0, 8) != kSegmentMagic)) {
        // The newest segment is synced for the first time with its first commit; a header
        // that never made it means no commit in it was ever acknowledged.
        report.torn_bytes += data.size();
        report.notes.push_back(fmt::format("{}: removed, its header was never completely written", path.string()));
        close_fd();
        ::unlink(path.c_str());
        if (auto r = fsync_dir(); !r) return r;
        continue;
      }
      report.notes.push_back(fmt::format("{}: damaged header; its records were read anyway", path.string()));
      if (first_damaged_seg == 0) first_damaged_seg = seq;
      start = std::min<std::size_t>(kFileHeaderSize, data.size());
    }
    auto on_record = [&](const FrameHeader& fh, std::string_view payload, std::uint64_t at) -> Expected<void> {
      if (fh.type == kChunk && payload.size() >= kChunkPrefix) {
        const MessageId id = get_u64(payload.data());
        const std::uint32_t index = get_u32(payload.data() + 8);
        max_id = std::max(max_id, id);
        ScanMsg& sm = msgs[id];
        extend(sm.all, seq);
        // Chunk 0 starts a copy: the message as received, or a compaction's copy of it.
        if (index == 0) sm.cur = Attempt{};
        Attempt& a = sm.cur;
        extend(a.range, seq);
        if (a.broken) return {};
        if (index != a.chunks) {
          a.broken = true;  // a chunk before this one was lost to damage
          return {};
        }
        const auto len = static_cast<std::uint32_t>(payload.size() - kChunkPrefix);
        a.extents.push_back({seq, at + kChunkPrefix, len, fh.crc});
        a.digest = extend_digest(a.digest, fh.crc);
        a.size += len;
        ++a.chunks;
        return {};
      }
      if (fh.type == kCommit && payload.size() >= kCommitPrefix &&
          get_u32(payload.data() + 24) == payload.size() - kCommitPrefix) {
        const MessageId id = get_u64(payload.data());
        max_id = std::max(max_id, id);
        ScanMsg& sm = msgs[id];
        extend(sm.all, seq);
        Attempt a = std::move(sm.cur);
        sm.cur = Attempt{};
        extend(a.range, seq);
        sm.committed = true;
        if (finished.count(id) != 0) return {};
        std::string why;
        if (a.broken || a.chunks != get_u32(payload.data() + 16)) {
          why = fmt::format("{} of {} chunks readable", a.chunks, get_u32(payload.data() + 16));
        } else if (a.size != get_u64(payload.data() + 8)) {
          why = "size mismatch";
        } else if (a.digest != get_u32(payload.data() + 20)) {
          why = "chunk digest mismatch";
        }
        Expected<Envelope> env = fail(Error::permanent(ErrorCode::kCorrupt, "not read"));
        if (why.empty()) {
          env = deserialize_envelope(payload.substr(kCommitPrefix));
          if (!env) why = env.error().message;
        }
        if (!why.empty()) {
          // An earlier copy that checked out stays queued (a compaction copy that went
          // wrong); otherwise the message is set aside below.
          if (queued.count(id) == 0) {
            damaged_msgs[id] = DamagedMsg{why, std::string(payload.substr(kCommitPrefix)), std::move(a)};
          }
          return {};
        }
        // The last copy that checks out is the one used: a compaction wrote it after the
        // earlier one, which is garbage once the copy is durable.
        damaged_msgs.erase(id);
        Queued q;
        // Envelopes written before the binary form existed are kept in it from now on (a
        // compaction copy writes that form too).
        const std::string_view stored = payload.substr(kCommitPrefix);
        q.envelope = is_binary_envelope(stored) ? std::string(stored) : encode_envelope(*env);
        q.recipient_count = static_cast<std::uint32_t>(env->recipients.size());
        q.size = a.size;
        q.extents = std::move(a.extents);
        q.range = a.range;
        q.commit_seq = seq;
        q.commit_bytes = static_cast<std::uint32_t>(kFrameHeaderSize + payload.size());
        queued.insert_or_assign(id, std::move(q));
        return {};
      }
      if (fh.type == kChunk || fh.type == kCommit) {
        report.notes.push_back(fmt::format("{}: malformed record of type {} at offset {} skipped", path.string(),
                                           fh.type, at - kFrameHeaderSize));
        if (first_damaged_seg == 0) first_damaged_seg = seq;
        return {};
      }
      if (fh.flags & kFlagSkippable) return {};
      return fail(corrupt(fmt::format("spool segment {} has a record of type {} that this build does not know",
                                      path.string(), fh.type)));
    };
    std::size_t pos = start;
    std::optional<std::size_t> damage;  ///< where the first record that does not check out starts
    while (pos < data.size()) {
      FrameHeader fh;
      if (!(last ? record_at(data, pos, fh) : header_at(data, pos, fh))) {
        damage = pos;
        break;
      }
      if (auto r = on_record(fh, data.substr(pos + kFrameHeaderSize, fh.length), pos + kFrameHeaderSize); !r) {
        close_fd();
        return r;
      }
      pos += kFrameHeaderSize + fh.length;
    }
    std::uint64_t size = data.size();
    if (damage) {
      // Nothing after a record that does not check out is read as records: the next
      // valid-looking frame may be message content (a body can hold well-formed frames),
      // and taking it for a record after a torn write would queue a message nobody sent.
      // Only the newest segment can hold an unsynced write, and everything in it from the
      // first bad record on was never acknowledged; a later valid-looking frame means the
      // bytes may be more than a torn write (disk damage), so they are set aside first.
      const std::size_t at = *damage;
      bool more = false;
      for (std::size_t next = data.find(kRecordMagic, at + 1); next != std::string_view::npos && !more;
           next = data.find(kRecordMagic, next + 1)) {
        FrameHeader fh;
        more = record_at(data, next, fh);
      }
      if (!last || more) {
        const std::string name = fmt::format("{}-at-{}.bytes", segment_name(seq), at);
        const auto dest = opt.dir / "damaged" / name;
        std::string where = dest.string();
        if (!std::filesystem::exists(dest)) {
          auto saved = write_damaged(name, data.substr(at));
          if (!saved && last) {
            close_fd();
            return fail(saved.error());  // never cut what could not be set aside
          }
          if (!saved) where = fmt::format("not saved ({})", saved.error().describe());
        }
        report.notes.push_back(fmt::format(
            "{}: the record at offset {} does not check out; the {} bytes from there are not read as records "
            "(copy: {}); a message whose commit was in them is reported below",
            path.string(), at, data.size() - at, where));
        if (first_damaged_seg == 0) first_damaged_seg = seq;
      }
      if (last) {
        if (auto r = cut(fd, path, at, size); !r) {
          close_fd();
          return r;
        }
        size = at;
      }
    }
    close_fd();
    found.emplace(seq, std::make_shared<SegmentFile>(SegmentFile{seq, path}));
    segstat[seq].size = size;
    next_seg = seq + 1;
  }

  // A sealed segment's content is checked when read; set aside now what could not be
  // queued, so that no damaged message pins its segments (and their space) forever.
  seg_files = found;  // the salvage reads go through the file cache
  if (have_state && state_ok) {
    for (auto it = queued.begin(); it != queued.end();) {
      if ((it->first >> 32) <= state_gen) {
        ++it;
        continue;
      }
      // Every generation in use was persisted in `state` before its first id: a record
      // with a newer one is damage or forgery, never a message this spool accepted.
      Attempt a;
      a.extents = it->second.extents;
      a.range = it->second.range;
      damaged_msgs[it->first] = DamagedMsg{
          fmt::format("its id has generation {}, newer than the spool's state ({})", it->first >> 32, state_gen),
          it->second.envelope, std::move(a)};
      it = queued.erase(it);
    }
    if ((max_id >> 32) > state_gen) {
      report.notes.push_back(fmt::format(
          "records claim id generation {} but the spool's state says {}; the state's generation is used",
          max_id >> 32, state_gen));
    }
  }
  std::vector<Range> pinned;  ///< damaged messages that could not be set aside
  for (auto& [id, d] : damaged_msgs) {
    std::string out = fmt::format("Bridgehead spool {}: message {} set aside at recovery: {}\nenvelope: {}\n\n",
                                  opt.dir.string(), format_id(id), d.why, readable_envelope(d.envelope));
    for (const Extent& e : d.copy.extents) {
      auto f = files->get(e.seq, file(segment_name(e.seq)));
      std::string piece(e.length, '\0');
      if (!f || ::pread((*f)->fd, piece.data(), piece.size(), static_cast<off_t>(e.offset)) != static_cast<ssize_t>(piece.size())) {
        out += fmt::format("\n[{} bytes of segment {} could not be read]\n", e.length, e.seq);
        continue;
      }
      out += piece;
    }
    auto saved = write_damaged(format_id(id) + ".msg", out);
    if (saved) {
      ++report.damaged;
      report.notes.push_back(fmt::format(
          "message {} was committed but its content is damaged ({}); it is NOT queued; what could be read is "
          "in {}: deliver it by hand or ask the sender to resend",
          format_id(id), d.why, saved->string()));
    } else {
      pinned.push_back(d.copy.range);
      report.notes.push_back(fmt::format(
          "message {} was committed but its content is damaged ({}); it is NOT queued and could not be set "
          "aside ({}); its segments in {} are kept",
          format_id(id), d.why, saved.error().describe(), opt.dir.string()));
    }
  }

  for (auto& [id, sm] : msgs) {
    if (finished.count(id) != 0) {
      if (sm.committed) ++report.finished_skipped;
      continue;
    }
    if (auto q = queued.find(id); q != queued.end()) {
      // Older copies (compaction) may still be on disk: its FINISHED must outlive them.
      if (sm.all.first != q->second.range.first || sm.all.last != q->second.range.last) q->second.stale.push_back(sm.all);
      continue;
    }
    if (sm.committed) continue;  // set aside above
    ++report.incomplete_dropped;
    if (first_damaged_seg != 0 && sm.all.last >= first_damaged_seg) {
      report.notes.push_back(fmt::format(
          "message {} has content but no readable commit record; if its commit was in a damaged region it "
          "was acknowledged and is lost (see the copies in {}/damaged)",
          format_id(id), opt.dir.string()));
    }
  }
  report.messages = queued.size();

  // ---- recipient states of the queued messages; those of finished, damaged or unknown
  // messages are simply not carried over
  std::size_t states_kept = 0;
  bool states_out_of_range = false;
  for (auto& [id, latest] : recorded) {
    auto it = queued.find(id);
    if (it == queued.end()) continue;
    const std::size_t n = it->second.recipient_count;
    const auto bad = std::find_if(latest.begin(), latest.end(), [&](const RecipientState& st) { return st.index >= n; });
    if (bad != latest.end()) {
      // record() refuses such an index, so this journal was written by something else;
      // the rest of the states of the message are still good.
      states_out_of_range = true;
      report.notes.push_back(fmt::format("journal state for recipient {} of message {} ignored: it has {} recipients",
                                         bad->index, format_id(id), n));
    }
    apply_states(id, std::move(latest));
    if (!it->second.recipients.empty()) ++states_kept;
  }
  recorded.clear();

  // ---- ids: a new generation, durable before the first id of this run is handed out
  // With a readable state, its generation is the truth (see above); only without one do
  // the ids on disk give the lower bound.
  generation = (have_state && state_ok ? state_gen : std::max(state_gen, max_id >> 32)) + 1;
  if (generation > kCounterMask) return fail(corrupt("spool id generations are exhausted"));
  if (auto r = persist_generation(generation); !r) return r;
  last_id.store(generation << 32);

  // ---- runtime state: segment references, and FINISHED records still worth keeping
  for (const auto& [seq, f] : found) refs[seq] = 0;
  for (const auto& [id, q] : queued) {
    ref_range(q.range.first, q.range.last, +1);
    account(id, q, +1);
  }
  // A damaged message that could not be set aside keeps its segments: they are the only
  // copy, and the note about it repeats at every open until it is dealt with.
  for (const Range& r : pinned) ref_range(r.first, r.last, +1);
  for (const auto& [id, sm] : msgs) {
    if (finished.count(id) != 0) finished_keep[id] = {sm.all};
  }
  // No segment is current yet, so every segment without a queued message goes now.
  delete_unused_segments();
  publish_totals();

  // A journal that holds exactly what a compaction would write is kept as it is, so an
  // idle spool is not rewritten at every open; any superseded or unneeded record, or
  // damage, is reason enough. The rewrite carries every state still needed.
  const bool rewrite = journals.size() != 1 || journal_damaged || journal_records != finished_keep.size() ||
                       state_records != states_kept || states_out_of_range;
  if (rewrite && (!journals.empty() || !finished_keep.empty())) {
    if (auto r = start_new_journal(); !r) return r;
    // Only now that the new journal is durable may the ones it replaces go.
    for (std::uint64_t j : journals) ::unlink(file(journal_name(j)).c_str());
  }
  return {};
}

}  // namespace bridgehead::spool
