// The public Spool: each call becomes an operation for the writer thread; readers see the
// index under a shared lock. Also the ids, and the files written whole (state, damaged/).

#include "spool/spool_impl.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <mutex>
#include <shared_mutex>
#include <stdexcept>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/durable_file.hpp"

namespace bridgehead::spool {

namespace {

constexpr std::size_t kReadPiece = 64u << 10;

/// Cuts `s` to at most `max` bytes without splitting a UTF-8 sequence.
void truncate_text(std::string& s, std::size_t max) {
  if (s.size() <= max) return;
  std::size_t n = max;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  s.resize(n);
}

}  // namespace

namespace detail {

std::string segment_name(std::uint64_t seq) { return fmt::format("seg-{:016x}.bhs", seq); }
std::string journal_name(std::uint64_t seq) { return fmt::format("journal-{:016x}.bhj", seq); }

std::optional<std::uint64_t> parse_hex16(std::string_view s) {
  if (s.size() != 16) return std::nullopt;
  std::uint64_t v = 0;
  for (char c : s) {
    int d = 0;
    if (c >= '0' && c <= '9') d = c - '0';
    else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
    else return std::nullopt;
    v = (v << 4) | static_cast<std::uint64_t>(d);
  }
  return v;
}

Error io_error(int err, std::string_view what, const std::filesystem::path& p) {
  return Error::from_errno(err, fmt::format("{} {}", what, p.string()));
}

Expected<Read> pread_exact(int fd, char* to, std::size_t length, std::uint64_t offset,
                           const std::filesystem::path& path, MessageId id, bool nowait) {
  std::size_t done = 0;
  while (done < length) {
    ssize_t n = 0;
    if (nowait) {
      iovec iov{to + done, length - done};
      n = ::preadv2(fd, &iov, 1, static_cast<off_t>(offset + done), RWF_NOWAIT);
      // Not in the page cache, or no answer the kernel can give without waiting (an end of
      // file is left to the blocking read to report, too).
      if ((n < 0 && (errno == EAGAIN || errno == EOPNOTSUPP || errno == ENOSYS)) || n == 0) return Read::kWouldBlock;
    } else {
      n = ::pread(fd, to + done, length - done, static_cast<off_t>(offset + done));
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail(io_error(errno, "cannot read spool segment", path));
    if (n == 0) {
      return fail(Error::permanent(ErrorCode::kCorrupt, fmt::format("spool segment {} is shorter than message {} needs",
                                                                    path.string(), format_id(id))));
    }
    done += static_cast<std::size_t>(n);
  }
  return Read::kDone;
}

FileCache::FileCache(std::size_t limit, std::shared_ptr<std::atomic<std::size_t>> count)
    : limit_(std::max<std::size_t>(limit, 2)), count_(std::move(count)) {}

Expected<std::shared_ptr<OpenFile>> FileCache::get(std::uint64_t seq, const std::filesystem::path& path,
                                                   bool open_missing) {
  std::lock_guard lock(mu_);
  if (auto it = pos_.find(seq); it != pos_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second);
    return it->second->second;
  }
  if (!open_missing) return std::shared_ptr<OpenFile>();
  const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return fail(Error::from_errno(errno, fmt::format("cannot open spool segment {}", path.string())));
  auto f = std::make_shared<OpenFile>(fd, count_);
  insert_locked(seq, f);
  return f;
}

void FileCache::insert(std::uint64_t seq, std::shared_ptr<OpenFile> f) {
  std::lock_guard lock(mu_);
  drop_locked(seq);
  insert_locked(seq, std::move(f));
}

void FileCache::drop(std::uint64_t seq) {
  std::lock_guard lock(mu_);
  drop_locked(seq);
}

void FileCache::insert_locked(std::uint64_t seq, std::shared_ptr<OpenFile> f) {
  lru_.emplace_front(seq, std::move(f));
  pos_[seq] = lru_.begin();
  while (lru_.size() > limit_) {
    pos_.erase(lru_.back().first);
    lru_.pop_back();
  }
}

void FileCache::drop_locked(std::uint64_t seq) {
  if (auto it = pos_.find(seq); it != pos_.end()) {
    lru_.erase(it->second);
    pos_.erase(it);
  }
}

std::uint32_t chunk_crc_start(MessageId id, std::uint32_t index, std::uint32_t length) {
  char fields[8];
  fields[0] = static_cast<char>(kChunk);
  fields[1] = 0;
  put_u16(fields + 2, 0);
  put_u32(fields + 4, static_cast<std::uint32_t>(kChunkPrefix + length));
  char prefix[kChunkPrefix];
  put_u64(prefix, id);
  put_u32(prefix + 8, index);
  return crc32c(crc32c(0, fields, 8), prefix, kChunkPrefix);
}

}  // namespace detail

std::string_view status_word(RecipientStatus s) {
  switch (s) {
    case RecipientStatus::kPending: return "pending";
    case RecipientStatus::kDeferred: return "deferred";
    case RecipientStatus::kDelivered: return "delivered";
    case RecipientStatus::kFailed: return "failed";
  }
  return "unknown";
}

std::string format_id(MessageId id) { return fmt::format("{:016x}", id); }

std::optional<MessageId> parse_id(std::string_view text) { return parse_hex16(text); }

std::string RecoveryReport::summary() const {
  std::string s = fmt::format("recovered {} message{} from {} segment{}", messages, messages == 1 ? "" : "s",
                              segments, segments == 1 ? "" : "s");
  if (finished_skipped != 0) s += fmt::format("; {} finished", finished_skipped);
  if (incomplete_dropped != 0) s += fmt::format("; dropped {} incomplete (never acknowledged)", incomplete_dropped);
  if (torn_bytes != 0) s += fmt::format("; truncated {} torn bytes", torn_bytes);
  if (!notes.empty()) s += fmt::format("; {} note{}", notes.size(), notes.size() == 1 ? "" : "s");
  return s;
}

Spool::Impl::~Impl() {
  if (journal_fd >= 0) ::close(journal_fd);
  if (dir_fd >= 0) ::close(dir_fd);  // also drops the flock
}

void Spool::Impl::set_degraded(const std::string& step, const std::string& why) {
  std::lock_guard lock(degraded_mu);
  auto it = degraded.find(step);
  if (why.empty()) {
    if (it != degraded.end()) {
      spdlog::info("spool: {} works again", step);
      degraded.erase(it);
    }
    return;
  }
  if (it == degraded.end() || it->second != why) spdlog::error("spool: {}", why);
  degraded[step] = why;
}

void Spool::Impl::note_damaged_read(MessageId id, const std::filesystem::path& path) {
  {
    std::lock_guard lock(degraded_mu);
    if (!damaged_reads.insert(id).second) return;
  }
  ++damaged_total;
  set_degraded("damage", fmt::format("message {} is damaged on disk (a chunk in {} fails its CRC); it cannot be "
                                     "delivered as it was received; see docs/spool.md on damaged messages",
                                     format_id(id), path.string()));
}

Expected<void> Spool::Impl::fsync_dir() { return durable::sync_directory(dir_fd, opt.dir); }

Expected<void> Spool::Impl::write_atomically(std::string_view name, std::string_view content) {
  // The name refers either to the old file or to the complete new one, never to a partial
  // file; the temporary name ends in ".tmp", which recovery removes as an interrupted write.
  return durable::write_file_durably(file(name), content, {.mode = 0640});
}

Expected<std::filesystem::path> Spool::Impl::write_damaged(const std::string& name, std::string_view content) {
  // Durable (and, when damaged/ is new, its entry in the spool directory too) before the
  // caller lets go of the segments the content came from.
  const auto dir = opt.dir / "damaged";
  if (::mkdir(dir.c_str(), 0750) == 0) {
    if (auto r = fsync_dir(); !r) return fail(r.error());
  } else if (errno != EEXIST) {
    return fail(io_error(errno, "cannot create", dir));
  }
  const auto path = dir / name;
  if (auto r = durable::write_file_durably(path, content, {.mode = 0640}); !r) return fail(r.error());
  return path;
}

Expected<void> Spool::Impl::persist_generation(std::uint64_t gen) {
  const auto h = encode_file_header(kStateMagic, gen);
  const std::string_view bytes(h.data(), h.size());
  auto written = write_atomically(kStateName, bytes);
  if (written || written.error().code != ErrorCode::kDiskFull) return written;
  // A full disk must not keep the spool from opening: its queued messages are what frees
  // the space once delivered. So the header is overwritten in place, in blocks the file
  // already has. A torn overwrite fails the header's CRC, and recovery then takes the
  // generation from the ids on disk, as for any damaged state file.
  const auto path = file(kStateName);
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return written;  // no state file yet: the first error says it all
  int err = write_all(fd, 0, {iovec{const_cast<char*>(bytes.data()), bytes.size()}});
  if (err == 0 && ::fdatasync(fd) != 0) err = errno;
  ::close(fd);
  if (err != 0) return fail(io_error(err, "cannot overwrite", path));
  spdlog::warn("spool {}: the disk is full; the id generation was written in place in {}", opt.dir.string(),
               path.string());
  return {};
}

MessageId Spool::Impl::next_id() {
  std::lock_guard lock(id_mu);
  if (counter == kCounterMask) {
    // Four billion messages in one run: move to a new generation, persisted first so no
    // later run can hand out the same ids.
    if (auto r = persist_generation(generation + 1); !r) {
      throw std::runtime_error("spool: cannot persist a new id generation: " + r.error().describe());
    }
    ++generation;
    counter = 0;
  }
  const MessageId id = (generation << 32) | ++counter;
  last_id.store(id);
  return id;
}

// ------------------------------------------------------------------ public interface

void Spool::resume_compaction() {
  {
    std::lock_guard lock(impl_->q_mu);
    impl_->compaction_held = false;
  }
  impl_->q_cv.notify_one();
}

Spool::Spool(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Spool::~Spool() {
  {
    std::lock_guard lock(impl_->q_mu);
    impl_->stopping = true;
  }
  impl_->q_cv.notify_one();
  if (impl_->writer.joinable()) impl_->writer.join();
}

Expected<std::unique_ptr<Spool>> Spool::open(SpoolOptions options) {
  if (options.dir.empty()) {
    return fail(Error::permanent(ErrorCode::kInvalidArgument, "spool: no directory given"));
  }
  auto impl = std::make_unique<Impl>();
  impl->compaction_held = options.hold_compaction;
  impl->opt = std::move(options);
  impl->files = std::make_unique<FileCache>(impl->opt.max_open_files, impl->open_files);
  if (impl->opt.fault_after_bytes != 0) impl->fault_limit = impl->opt.fault_after_bytes;
  if (auto r = impl->recover(); !r) return fail(r.error());
  Impl* raw = impl.get();
  impl->writer = std::thread([raw] { raw->writer_loop(); });
  return std::unique_ptr<Spool>(new Spool(std::move(impl)));
}

const RecoveryReport& Spool::recovery_report() const { return impl_->report; }

MessageId Spool::begin_message() { return impl_->next_id(); }

void Spool::append(MessageId id, std::string data, Completion<void> done) {
  impl_->submit({.kind = Op::Kind::kAppend, .id = id, .data = std::move(data), .done = std::move(done)});
}

void Spool::commit(MessageId id, Envelope envelope, Completion<void> done) {
  commit(id, std::string(), std::move(envelope), std::move(done));
}

void Spool::commit(MessageId id, std::string last_piece, Envelope envelope, Completion<void> done) {
  impl_->submit({.kind = Op::Kind::kCommit,
                 .id = id,
                 .data = encode_envelope(envelope),  // on the caller's thread: the writer thread is the bottleneck
                 .content = std::move(last_piece),
                 .recipient_count = static_cast<std::uint32_t>(envelope.recipients.size()),
                 // Refused rather than written: what is written must decode back (recovery
                 // would set it aside).
                 .bad_envelope = !has_valid_values(envelope),
                 .done = std::move(done)});
}

void Spool::abort(MessageId id) { impl_->submit({.kind = Op::Kind::kAbort, .id = id}); }

void Spool::finish(MessageId id, Completion<void> done) {
  impl_->submit({.kind = Op::Kind::kFinish, .id = id, .done = std::move(done)});
}

void Spool::record(MessageId id, std::vector<RecipientState> states, Completion<void> done) {
  // Cut here, on the caller's thread, so the state kept in memory is exactly what a
  // recovery reads back from the journal.
  for (auto& st : states) {
    truncate_text(st.reply, kMaxStateReply);
    truncate_text(st.remote, kMaxStateRemote);
  }
  impl_->submit({.kind = Op::Kind::kRecord, .id = id, .states = std::move(states), .done = std::move(done)});
}

std::vector<QueuedMessage> Spool::queued() const { return queued_after(0, SIZE_MAX); }

std::vector<QueuedMessage> Spool::queued_after(MessageId after, std::size_t max) const {
  std::shared_lock lock(impl_->index_mu);
  std::vector<QueuedMessage> out;
  out.reserve(std::min(max, impl_->queued.size()));
  auto it = after == 0 ? impl_->queued.begin() : impl_->queued.upper_bound(after);
  for (; it != impl_->queued.end() && out.size() < max; ++it) {
    const auto& [id, q] = *it;
    // Decoded when it entered the index (commit() refuses what does not decode back;
    // recovery sets it aside), so this cannot fail; if it ever did, say so.
    auto env = deserialize_envelope(q.envelope);
    if (!env) {
      spdlog::error("spool: message {} is queued but its envelope does not decode: {}", format_id(id),
                    env.error().describe());
      continue;
    }
    QueuedMessage& m = out.emplace_back(QueuedMessage{id, std::move(*env), q.size, q.recipients});
    if (m.recipients.empty()) {
      m.recipients.resize(q.recipient_count);
      for (std::size_t i = 0; i < m.recipients.size(); ++i) m.recipients[i].index = static_cast<std::uint32_t>(i);
    }
  }
  return out;
}

struct ContentReader::State {
  struct Part {
    std::shared_ptr<OpenFile> file;
    std::filesystem::path path;
    Extent extent;
  };
  Spool::Impl* spool = nullptr;
  MessageId id = 0;
  std::vector<Part> parts;
  std::size_t next = 0;  ///< the part read next
  std::uint64_t size = 0;
  bool ends_with_newline = true;
};

ContentReader::ContentReader(std::unique_ptr<State> state) : s_(std::move(state)) {}
ContentReader::ContentReader(ContentReader&&) noexcept = default;
ContentReader& ContentReader::operator=(ContentReader&&) noexcept = default;
ContentReader::~ContentReader() = default;

std::uint64_t ContentReader::size() const { return s_->size; }
bool ContentReader::ends_with_newline() const { return s_->ends_with_newline; }


Expected<bool> ContentReader::read_some(ByteBuffer& out, std::size_t want, bool nowait) {
  State& s = *s_;
  std::size_t used = 0;
  while (s.next < s.parts.size()) {
    const auto& [file, path, e] = s.parts[s.next];
    if (used > 0 && used + e.length > want) break;
    out.resize_for_overwrite(used + e.length);
    auto r = pread_exact(file->fd, out.data() + used, e.length, e.offset, path, s.id, nowait);
    if (!r) {
      out.clear();
      return fail(r.error());
    }
    if (*r == Read::kWouldBlock) {
      if (used > 0) break;  // what was read is handed out; the rest comes next time
      out.clear();
      return false;
    }
    // Recovery reads record headers only, so this is where content damage is found.
    const auto index = static_cast<std::uint32_t>(s.next);
    if (crc32c(chunk_crc_start(s.id, index, e.length), out.data() + used, e.length) != e.crc) {
      out.clear();
      s.spool->note_damaged_read(s.id, path);
      return fail(Error::permanent(
          ErrorCode::kCorrupt,
          fmt::format("spool: content of message {} in {} is damaged (chunk {} fails its CRC)", format_id(s.id),
                      path.string(), index),
          "the message cannot be delivered as it was received; see docs/spool.md on damaged messages"));
    }
    used += e.length;
    ++s.next;
  }
  out.resize_for_overwrite(used);
  return true;
}

Expected<void> ContentReader::read_next(ByteBuffer& out, std::size_t want) {
  auto r = read_some(out, want, false);
  if (!r) return fail(r.error());
  return {};
}

Expected<bool> ContentReader::try_read_next(ByteBuffer& out, std::size_t want) { return read_some(out, want, true); }

Expected<std::optional<ContentReader>> Spool::open_content_impl(MessageId id, bool nowait) const {
  auto st = std::make_unique<ContentReader::State>();
  st->spool = impl_.get();
  st->id = id;
  {
    std::shared_lock lock(impl_->index_mu);
    auto it = impl_->queued.find(id);
    if (it == impl_->queued.end()) {
      return fail(Error::permanent(ErrorCode::kNotFound, fmt::format("spool: message {} is not queued", format_id(id))));
    }
    auto& parts = st->parts;
    parts.reserve(it->second.extents.size());
    for (const Extent& e : it->second.extents) {
      auto f = impl_->seg_files.find(e.seq);
      if (f == impl_->seg_files.end()) {
        return fail(Error::permanent(ErrorCode::kInternal,
                                     fmt::format("spool: segment {} of message {} is missing", e.seq, format_id(id))));
      }
      // Opened under the shared lock: a segment is unlinked only after the writer took the
      // lock exclusively to forget it, so the file opened here is the right one. Holding
      // the OpenFile keeps the fd open even if the segment is deleted or its descriptor
      // closed in the cache meanwhile: the read still completes.
      auto file = parts.empty() || parts.back().extent.seq != e.seq
                      ? impl_->files->get(e.seq, f->second->path, !nowait)
                      : Expected<std::shared_ptr<OpenFile>>(parts.back().file);
      if (!file) return fail(file.error());
      if (!*file) return std::optional<ContentReader>();
      parts.push_back({std::move(*file), f->second->path, e});
      st->size += e.length;
    }
  }
  for (auto last = st->parts.rbegin(); last != st->parts.rend(); ++last) {
    if (last->extent.length == 0) continue;
    char c = 0;
    const Extent& e = last->extent;
    auto r = pread_exact(last->file->fd, &c, 1, e.offset + e.length - 1, last->path, id, nowait);
    if (!r) return fail(r.error());
    if (*r == Read::kWouldBlock) return std::optional<ContentReader>();
    st->ends_with_newline = c == '\n';
    break;
  }
  return std::optional<ContentReader>(ContentReader(std::move(st)));
}

Expected<ContentReader> Spool::open_content(MessageId id) const {
  auto r = open_content_impl(id, false);
  if (!r) return fail(r.error());
  return std::move(**r);
}

Expected<std::optional<ContentReader>> Spool::try_open_content(MessageId id) const {
  return open_content_impl(id, true);
}

Expected<void> Spool::read_content(MessageId id, const std::function<void(std::string_view)>& sink) const {
  auto reader = open_content(id);
  if (!reader) return fail(reader.error());
  ByteBuffer buf;
  for (;;) {
    if (auto r = reader->read_next(buf, kReadPiece); !r) return r;
    if (buf.empty()) return {};
    sink(buf.view());
  }
}

Spool::Stats Spool::stats() const {
  Stats s;
  s.commits = impl_->commits.load();
  s.syncs = impl_->syncs.load();
  s.bytes_written = impl_->bytes_written.load();
  s.write_errors = impl_->write_errors.load();
  s.finishes = impl_->finishes.load();
  s.commit_batches = impl_->commit_batches.load();
  s.receiving = impl_->receiving.load();
  s.disk_bytes = impl_->disk_total.load();
  s.live_bytes = impl_->live_total.load();
  s.compacted = impl_->compacted.load();
  s.damaged = impl_->damaged_total.load();
  s.open_files = impl_->open_files->load();
  {
    std::lock_guard dl(impl_->degraded_mu);
    for (const auto& [step, why] : impl_->degraded) {
      if (!s.degraded.empty()) s.degraded += "; ";
      s.degraded += why;
    }
  }
  std::shared_lock lock(impl_->index_mu);
  s.queued = impl_->queued.size();
  s.segments = impl_->seg_files.size();
  return s;
}

void Spool::set_fault_after_bytes(std::uint64_t bytes) {
  impl_->fault_limit = bytes == 0 ? 0 : impl_->bytes_written.load() + bytes;
}


}  // namespace bridgehead::spool
