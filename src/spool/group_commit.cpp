// Group commit: the writer thread takes every operation that piled up while it wrote the
// last batch, writes them together, makes them durable with one fdatasync per file and
// only then completes them. A batch that fails is undone whole and fails every operation.

#include "spool/spool_impl.hpp"

#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <thread>

#include <fmt/format.h>

namespace bridgehead::spool {

namespace detail {

BackgroundSync::~BackgroundSync() {
  {
    std::lock_guard lock(mu_);
    quit_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void BackgroundSync::start(int fd) {
  if (!thread_.joinable()) thread_ = std::thread([this] { loop(); });
  std::lock_guard lock(mu_);
  fd_ = fd;
  pending_ = true;
  done_ = false;
  cv_.notify_all();
}

int BackgroundSync::wait() {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return done_; });
  return err_;
}

void BackgroundSync::loop() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return quit_ || pending_; });
    if (quit_) return;
    const int fd = fd_;
    pending_ = false;
    lock.unlock();
    const int err = ::fdatasync(fd) == 0 ? 0 : errno;
    lock.lock();
    err_ = err;
    done_ = true;
    cv_.notify_all();
  }
}

}  // namespace detail

int Spool::Impl::write_all(int fd, std::uint64_t offset, std::vector<iovec> iov) {
  std::uint64_t total = 0;
  for (const auto& v : iov) total += v.iov_len;
  int fault = 0;
  if (const std::uint64_t limit = fault_limit.load(); limit != 0) {
    const std::uint64_t done = bytes_written.load();
    const std::uint64_t allowed = limit > done ? limit - done : 0;
    if (allowed < total) {
      // Emulates a disk that fills in the middle of the write: the allowed prefix lands,
      // then ENOSPC, so the truncate-back path is exercised exactly as in real life.
      std::uint64_t keep = allowed;
      std::size_t n = 0;
      for (; n < iov.size() && keep > 0; ++n) {
        if (iov[n].iov_len > keep) iov[n].iov_len = static_cast<std::size_t>(keep);
        keep -= iov[n].iov_len;
      }
      iov.resize(n);
      fault = ENOSPC;
    }
  }
  std::size_t i = 0;
  while (i < iov.size()) {
    if (iov[i].iov_len == 0) {
      ++i;
      continue;
    }
    const int cnt = static_cast<int>(std::min<std::size_t>(iov.size() - i, IOV_MAX));
    const ssize_t w = ::pwritev(fd, iov.data() + i, cnt, static_cast<off_t>(offset));
    if (w < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (w == 0) return ENOSPC;
    auto left = static_cast<std::uint64_t>(w);
    offset += left;
    bytes_written += left;
    while (left > 0) {
      if (iov[i].iov_len <= left) {
        left -= iov[i].iov_len;
        ++i;
      } else {
        iov[i].iov_base = static_cast<char*>(iov[i].iov_base) + left;
        iov[i].iov_len -= static_cast<std::size_t>(left);
        left = 0;
      }
    }
  }
  return fault;
}

Expected<void> Spool::Impl::flush_segment(Batch& b) {
  if (b.seg_iov.empty()) return {};
  const int err = write_all(cur_file->fd, b.seg_iov_offset, std::move(b.seg_iov));
  b.seg_iov.clear();
  b.seg_iov_offset = cur_size;
  if (err != 0) return fail(io_error(err, "cannot write spool segment", cur->path));
  return {};
}

Expected<void> Spool::Impl::open_new_segment(Batch& b) {
  if (cur) {
    if (auto r = flush_segment(b); !r) return r;
    // A segment is synced before the next one is created, so only the newest segment can
    // ever end in a torn tail; recovery relies on that to tell a torn tail from damage.
    if (dirty.count(cur->seq) != 0) {
      if (::fdatasync(cur_file->fd) != 0) {
        b.sync_failed = true;
        return fail(io_error(errno, "cannot sync spool segment", cur->path));
      }
      dirty.erase(cur->seq);
    }
    b.rolled = true;
  }
  const std::uint64_t seq = next_seg++;
  auto path = file(segment_name(seq));
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
  if (fd < 0) return fail(io_error(errno, "cannot create spool segment", path));
  auto handle = std::make_shared<OpenFile>(fd, open_files);
  auto seg = std::make_shared<SegmentFile>(SegmentFile{seq, path});
  // The new name must be durable before any commit in this file is acknowledged: a
  // synced file that no directory entry points to is lost in a crash.
  if (auto r = fsync_dir(); !r) {
    ::unlink(path.c_str());
    return r;
  }
  files->insert(seq, handle);
  {
    std::unique_lock lock(index_mu);
    seg_files[seq] = seg;
  }
  refs[seq] = 0;
  segstat[seq].size = kFileHeaderSize;
  dirty[seq] = handle;
  b.created.push_back(seq);
  cur = std::move(seg);
  cur_file = std::move(handle);
  cur_size = 0;
  b.seg_iov_offset = 0;
  auto& buf = b.bufs.emplace_back();
  const auto h = encode_file_header(kSegmentMagic, seq);
  std::copy(h.begin(), h.end(), buf.begin());
  b.seg_iov.push_back({buf.data(), kFileHeaderSize});
  cur_size = kFileHeaderSize;
  return {};
}

Expected<void> Spool::Impl::make_room(Batch& b, std::uint64_t bytes) {
  if (!cur) return open_new_segment(b);
  if (cur_size > kFileHeaderSize && cur_size + bytes > opt.segment_size) return open_new_segment(b);
  return {};
}

std::uint64_t Spool::Impl::add_record(Batch& b, std::uint8_t type, std::string_view prefix, std::string_view body,
                                      std::uint32_t* crc_out) {
  auto& buf = b.bufs.emplace_back();
  const auto h = encode_frame_header(type, 0, prefix, body);
  std::copy(h.begin(), h.end(), buf.begin());
  std::copy(prefix.begin(), prefix.end(), buf.begin() + kFrameHeaderSize);
  if (crc_out != nullptr) *crc_out = get_u32(h.data() + 12);
  b.seg_iov.push_back({buf.data(), kFrameHeaderSize + prefix.size()});
  if (!body.empty()) b.seg_iov.push_back({const_cast<char*>(body.data()), body.size()});
  const std::uint64_t payload_at = cur_size + kFrameHeaderSize;
  cur_size += kFrameHeaderSize + prefix.size() + body.size();
  segstat[cur->seq].size = cur_size;
  dirty[cur->seq] = cur_file;
  return payload_at;
}

std::optional<Error> Spool::Impl::check_writable(const Batch& b, const Op& op) const {
  const MessageId id = op.id;
  if ((id >> 32) != generation || id == 0 || id > last_id.load()) {
    return Error::permanent(ErrorCode::kInvalidArgument,
                            fmt::format("spool: message {} was not begun in this run", format_id(id)));
  }
  if (queued.count(id) != 0) {
    return Error::permanent(ErrorCode::kInvalidArgument,
                            fmt::format("spool: message {} is already committed", format_id(id)));
  }
  if (b.committing.count(id) != 0) {
    return Error::permanent(ErrorCode::kInvalidArgument,
                            op.kind == Op::Kind::kAppend
                                ? fmt::format("spool: append to message {} after its commit", format_id(id))
                                : fmt::format("spool: message {} committed twice", format_id(id)));
  }
  return std::nullopt;
}

Pending& Spool::Impl::pending_for(Batch& b, MessageId id) {
  auto [it, inserted] = inflight.try_emplace(id);
  if (b.undo.count(id) == 0) {
    Undo u;
    u.id = id;
    u.existed = !inserted;
    u.before = it->second;
    u.before.extents.clear();
    u.extents_size = it->second.extents.size();
    b.undo.emplace(id, std::move(u));
  }
  return it->second;
}

Expected<void> Spool::Impl::plan_append(Batch& b, std::size_t i, Op& op) {
  if (auto e = check_writable(b, op)) {
    b.result[i] = std::move(e);
    return {};
  }
  return plan_chunks(b, op.id, op.data);
}

Expected<void> Spool::Impl::plan_chunks(Batch& b, MessageId id, std::string_view data) {
  while (!data.empty()) {
    const std::string_view piece = data.substr(0, kMaxChunkContent);
    data.remove_prefix(piece.size());
    if (auto r = make_room(b, kFrameHeaderSize + kChunkPrefix + piece.size()); !r) return r;
    Pending& p = pending_for(b, id);
    char prefix[kChunkPrefix];
    put_u64(prefix, id);
    put_u32(prefix + 8, p.chunks);
    std::uint32_t crc = 0;
    const std::uint64_t at = add_record(b, kChunk, std::string_view(prefix, kChunkPrefix), piece, &crc);
    touch(p.range, cur->seq);
    p.extents.push_back({cur->seq, at + kChunkPrefix, static_cast<std::uint32_t>(piece.size()), crc});
    p.digest = extend_digest(p.digest, crc);
    p.size += piece.size();
    ++p.chunks;
  }
  return {};
}

Expected<void> Spool::Impl::plan_commit(Batch& b, std::size_t i, Op& op) {
  if (auto e = check_writable(b, op)) {
    b.result[i] = std::move(e);
    return {};
  }
  if (auto it = inflight.find(op.id); it != inflight.end() && it->second.poisoned) {
    b.result[i] = Error::transient_error(
        ErrorCode::kIo,
        fmt::format("spool: content of message {} may not have reached the disk (a sync failed)",
                    format_id(op.id)),
        "the client should send the message again");
    return {};
  }
  if (op.bad_envelope) {
    b.result[i] = Error::permanent(ErrorCode::kInvalidArgument,
                                   fmt::format("spool: envelope of message {} has a body type or RET value out of "
                                               "range", format_id(op.id)));
    return {};
  }
  if (op.data.size() > kMaxPayload - kCommitPrefix) {
    b.result[i] = Error::permanent(ErrorCode::kLimit, fmt::format("spool: envelope of message {} is too large",
                                                                 format_id(op.id)));
    return {};
  }
  // The last piece of content travels with the commit, so the two are planned into the
  // same batch: they reach the disk, or fail, together.
  if (!op.content.empty()) {
    if (auto r = plan_chunks(b, op.id, op.content); !r) return r;
  }
  if (auto r = make_room(b, kFrameHeaderSize + kCommitPrefix + op.data.size()); !r) return r;
  Pending& p = pending_for(b, op.id);
  char prefix[kCommitPrefix];
  put_u64(prefix, op.id);
  put_u64(prefix + 8, p.size);
  put_u32(prefix + 16, p.chunks);
  put_u32(prefix + 20, p.digest);
  put_u32(prefix + 24, static_cast<std::uint32_t>(op.data.size()));
  add_record(b, kCommit, std::string_view(prefix, kCommitPrefix), op.data, nullptr);
  touch(p.range, cur->seq);
  p.commit_seq = cur->seq;
  p.commit_bytes = static_cast<std::uint32_t>(kFrameHeaderSize + kCommitPrefix + op.data.size());
  p.committing = true;
  b.committing.insert(op.id);
  b.commits.push_back(op.id);
  return {};
}

Expected<void> Spool::Impl::plan_finish(Batch& b, std::size_t i, Op& op) {
  const bool known = queued.count(op.id) != 0 || b.committing.count(op.id) != 0;
  if (!known || b.finishing_set.count(op.id) != 0) {
    b.result[i] = Error::permanent(ErrorCode::kNotFound,
                                   fmt::format("spool: message {} is not queued", format_id(op.id)));
    return {};
  }
  if (journal_fd < 0 || journal_broken) {
    if (auto r = start_new_journal(); !r) return r;
    b.journal_good = journal_size;
  }
  auto& buf = b.bufs.emplace_back();
  char payload[8];
  put_u64(payload, op.id);
  const auto h = encode_frame_header(kFinished, 0, std::string_view(payload, 8), {});
  std::copy(h.begin(), h.end(), buf.begin());
  std::copy(payload, payload + 8, buf.begin() + kFrameHeaderSize);
  b.journal_iov.push_back({buf.data(), kFrameHeaderSize + 8});
  b.finishing.push_back(op.id);
  b.finishing_set.insert(op.id);
  return {};
}

Expected<void> Spool::Impl::plan_record(Batch& b, std::size_t i, Op& op) {
  // Only a message whose commit was acknowledged: a state refers to its envelope's
  // recipients, and the queue manager learns of a message from that acknowledgement.
  auto it = queued.find(op.id);
  if (it == queued.end() || b.finishing_set.count(op.id) != 0) {
    b.result[i] = Error::permanent(ErrorCode::kNotFound,
                                   fmt::format("spool: message {} is not queued", format_id(op.id)));
    return {};
  }
  const std::size_t n = it->second.recipient_count;
  for (const RecipientState& st : op.states) {
    if (st.index >= n || static_cast<std::uint8_t>(st.status) > static_cast<std::uint8_t>(RecipientStatus::kFailed)) {
      b.result[i] = Error::permanent(
          ErrorCode::kInvalidArgument,
          fmt::format("spool: recipient {} with status {} is not valid for message {}, which has {} recipients",
                      st.index, static_cast<int>(st.status), format_id(op.id), n));
      return {};
    }
  }
  if (op.states.empty()) return {};
  if (recipient_states_payload_size(op.states) > kMaxPayload) {
    b.result[i] = Error::permanent(ErrorCode::kLimit, fmt::format("spool: recipient states of message {} are too large",
                                                                 format_id(op.id)));
    return {};
  }
  if (journal_fd < 0 || journal_broken) {
    if (auto r = start_new_journal(); !r) return r;
    b.journal_good = journal_size;
  }
  const std::string payload = encode_recipient_states(op.id, op.states);
  // Skippable: a reader that predates per-recipient state just retries those recipients
  // (at-least-once), so an older build may still open this spool.
  const auto h = encode_frame_header(kRecipientState, kFlagSkippable, payload, {});
  auto& rec = b.records.emplace_back();
  rec.reserve(h.size() + payload.size());
  rec.append(h.data(), h.size());
  rec.append(payload);
  b.journal_iov.push_back({rec.data(), rec.size()});
  b.recording.push_back(i);
  return {};
}

void Spool::Impl::run_batch(std::vector<Op>& batch) {
  Batch b;
  b.result.resize(batch.size());
  b.cur_at_start = cur;
  b.cur_file_at_start = cur_file;
  b.seg_good = cur_size;
  b.seg_iov_offset = cur_size;
  b.journal_good = journal_size;

  std::optional<Error> err;
  for (std::size_t i = 0; i < batch.size() && !err; ++i) {
    Op& op = batch[i];
    Expected<void> r;
    switch (op.kind) {
      case Op::Kind::kAppend: r = plan_append(b, i, op); break;
      case Op::Kind::kCommit: r = plan_commit(b, i, op); break;
      case Op::Kind::kFinish: r = plan_finish(b, i, op); break;
      case Op::Kind::kRecord: r = plan_record(b, i, op); break;
      case Op::Kind::kAbort: b.aborts.push_back(op.id); break;
    }
    if (!r) err = r.error();
  }
  if (!err) {
    if (auto r = plan_compaction(b); !r) err = r.error();
  }
  if (!err) {
    if (auto r = flush_segment(b); !r) err = r.error();
  }
  if (!err && !b.copies.empty()) {
    if (const int e = fault("compaction-written"); e != 0) err = io_error(e, "cannot write spool segment", cur->path);
  }
  if (!err && !b.journal_iov.empty()) {
    std::uint64_t n = 0;
    for (const auto& v : b.journal_iov) n += v.iov_len;
    if (int e = write_all(journal_fd, journal_size, std::move(b.journal_iov)); e != 0) {
      err = io_error(e, "cannot write spool journal", file(journal_name(journal_seq)));
    } else {
      journal_size += n;
    }
  }
  if (!err) {
    publish_receiving(b);  // before the appends' completions: stats() agrees with them
    // Appends only promise "written": they do not wait for anyone's fdatasync.
    for (std::size_t i = 0; i < batch.size(); ++i) {
      if (batch[i].kind == Op::Kind::kAppend && batch[i].done) {
        batch[i].done(b.result[i] ? Expected<void>(fail(*b.result[i])) : Expected<void>());
        batch[i].done = nullptr;
      }
    }
  }
  bool synced = false;
  const bool journaled = !b.finishing.empty() || !b.recording.empty();
  // FINISHED must be durable before its completion: the queue manager deletes its own
  // delivery state on success, and a FINISHED lost in a crash means a duplicate delivery
  // (at-least-once), never a loss. RECIPIENT_STATE likewise: once record() reports
  // success the queue manager treats a delivered recipient as done. The journal syncs
  // alongside the segments: recovery ignores a FINISHED whose COMMIT is missing, and a
  // message is only ever finished in a later batch than the one that committed it.
  const bool journal_syncing = !err && journaled;
  if (journal_syncing) journal_sync.start(journal_fd);
  if (!err && (!b.commits.empty() || !b.copies.empty())) {
    // THE fdatasync that the 250 replies wait for: it covers every CHUNK and COMMIT of
    // every message committed in this batch, because (1) all of them were written above,
    // (2) earlier chunks of these messages live in segments that are either this one or
    // were fdatasync'ed when the next segment was created, and (3) a new segment's
    // directory entry was fsync'ed when it was created. Syncing every dirty segment,
    // not only the current one, also covers a segment sealed after a failed batch.
    for (auto it = dirty.begin(); it != dirty.end() && !err;) {
      if (::fdatasync(it->second->fd) != 0) {
        b.sync_failed = true;
        err = io_error(errno, "cannot sync spool segment", file(segment_name(it->first)));
        break;
      }
      it = dirty.erase(it);
    }
    synced = true;
  }
  if (journal_syncing) {
    // Always waited for, even after a segment failure: the fd must outlive the sync.
    if (const int e = journal_sync.wait(); e != 0) {
      b.sync_failed = true;
      if (!err) err = io_error(e, "cannot sync spool journal", file(journal_name(journal_seq)));
    }
    synced = true;
  }

  if (err) {
    fail_batch(b, batch, *err);
  } else {
    succeed_batch(b, batch, synced);
  }
  if (!err && journaled) maybe_compact();
  publish_totals();
}

void Spool::Impl::apply_aborts_and_reclaim(Batch& b, bool failed) {
  for (MessageId id : b.aborts) {
    if (auto it = inflight.find(id); it != inflight.end()) {
      ref_range(it->second.range.first, it->second.range.last, -1);
      inflight.erase(it);
    }
  }
  if (!b.aborts.empty() || !b.finishing.empty() || !b.copies.empty() || b.rolled || failed) {
    delete_unused_segments();
  }
  if (!b.finishing.empty() || b.rolled) compaction_wanted = true;
  publish_receiving(b);
}

void Spool::Impl::publish_receiving(const Batch& b) {
  std::set<MessageId> aborted;
  for (MessageId id : b.aborts) {
    if (inflight.count(id) != 0) aborted.insert(id);
  }
  receiving.store(inflight.size() - aborted.size());
}

void Spool::Impl::succeed_batch(Batch& b, std::vector<Op>& batch, bool synced) {
  std::vector<Op*> committed;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    if (batch[i].kind == Op::Kind::kCommit && !b.result[i]) committed.push_back(&batch[i]);
  }
  if (!b.copies.empty()) {
    // The copies are durable (the segment sync above covers them, and a new segment's
    // name was made durable when it was created): only from here may the old copies'
    // segments go. A crash before this point leaves both copies; recovery takes the last.
    (void)fault("compaction-synced");
  }
  {
    std::unique_lock lock(index_mu);
    for (Op* op : committed) {
      const MessageId id = op->id;
      auto it = inflight.find(id);
      Pending& p = it->second;
      // The record is on disk: its bytes are not needed by the batch any more.
      Queued q{std::move(op->data), op->recipient_count, p.size, std::move(p.extents), p.range,
               p.commit_seq, p.commit_bytes, {}, false, {}};
      account(id, q, +1);
      queued.emplace(id, std::move(q));
      inflight.erase(it);
    }
    for (auto& c : b.copies) {
      Queued& q = queued.at(c.id);
      account(c.id, q, -1);
      ref_range(q.range.first, q.range.last, -1);
      // The old copy stays on disk until its segments go; its FINISHED must outlive it.
      std::erase_if(q.stale, [&](const Range& r) { return !any_on_disk(r); });
      q.stale.push_back(q.range);
      q.extents = std::move(c.extents);
      q.range = c.range;
      q.commit_seq = c.commit_seq;
      q.commit_bytes = c.commit_bytes;
      account(c.id, q, +1);
    }
    compacted += b.copies.size();
    // States before finishes: a record planned before a finish of the same message in
    // this batch found it queued; the finish then drops the state with the message.
    for (std::size_t i : b.recording) apply_states(batch[i].id, std::move(batch[i].states));
    for (MessageId id : b.finishing) {
      auto it = queued.find(id);
      state_bytes -= kept_state_bytes(it->second.recipients);
      auto& keep = finished_keep[id];
      keep = std::move(it->second.stale);
      keep.push_back(it->second.range);
      account(id, it->second, -1);
      ref_range(it->second.range.first, it->second.range.last, -1);
      queued.erase(it);
    }
  }
  commits += b.commits.size();
  finishes += b.finishing.size();
  if (synced) ++syncs;
  if (!b.commits.empty()) ++commit_batches;
  apply_aborts_and_reclaim(b, false);
  for (std::size_t i = 0; i < batch.size(); ++i) {
    if (!batch[i].done) continue;
    batch[i].done(b.result[i] ? Expected<void>(fail(*b.result[i])) : Expected<void>());
  }
}

void Spool::Impl::fail_batch(Batch& b, std::vector<Op>& batch, const Error& err) {
  ++write_errors;
  // Copies that did not become durable are forgotten; the messages stay where they were.
  for (const auto& c : b.copies) ref_range(c.range.first, c.range.last, -1);
  if (!b.copies.empty()) compaction_wanted = true;
  for (auto& [id, u] : b.undo) {
    auto it = inflight.find(id);
    Pending& p = it->second;
    if (!u.existed) {
      ref_range(p.range.first, p.range.last, -1);
      inflight.erase(it);
      continue;
    }
    if (p.range.last > u.before.range.last) ref_range(u.before.range.last + 1, p.range.last, -1);
    p.extents.resize(u.extents_size);
    std::vector<Extent> keep = std::move(p.extents);
    p = u.before;
    p.extents = std::move(keep);
  }
  // Cut the files back to where this batch began, so the failed records can never be
  // read back, and later records follow good ones (recovery then sees no damage).
  for (auto it = b.created.rbegin(); it != b.created.rend(); ++it) {
    const auto path = file(segment_name(*it));
    ::unlink(path.c_str());
    std::unique_lock lock(index_mu);
    seg_files.erase(*it);
    refs.erase(*it);
    dirty.erase(*it);
    segstat.erase(*it);
    files->drop(*it);
  }
  if (!b.created.empty()) {
    // Make the unlink durable before a later segment with a higher number is created: a
    // resurrected empty segment would otherwise look like the torn newest one.
    (void)fsync_dir();
  }
  cur = b.cur_at_start;
  cur_file = b.cur_file_at_start;
  cur_size = b.seg_good;
  if (cur) {
    // After a failed fdatasync the kernel may have dropped dirty pages it could not
    // write: nothing written but unsynced in this file can be trusted, so the messages
    // being received are poisoned (their commit fails, the client resends) and writing
    // resumes in a fresh file. A failed write (ENOSPC) leaves earlier data intact, so
    // the file is cut back and reused. Either way the cut is tried, so that a sealed
    // segment ends where its last good batch did: recovery reads only record headers in
    // sealed segments and stops at the first one that does not check out.
    const bool cut = ::ftruncate(cur_file->fd, static_cast<off_t>(b.seg_good)) == 0;
    if (auto st = segstat.find(cur->seq); st != segstat.end() && cut) st->second.size = b.seg_good;
    if (b.sync_failed || !cut) {
      cur.reset();
      cur_file.reset();
    }
  }
  if (b.sync_failed) {
    for (auto& [id, p] : inflight) p.poisoned = true;
    dirty.clear();
    cur.reset();
    cur_file.reset();
  }
  if (journal_fd >= 0 && journal_size != b.journal_good) {
    journal_size = b.journal_good;
    if (::ftruncate(journal_fd, static_cast<off_t>(journal_size)) != 0) journal_broken = true;
  }
  if (b.sync_failed) journal_broken = true;
  apply_aborts_and_reclaim(b, true);
  for (std::size_t i = 0; i < batch.size(); ++i) {
    if (!batch[i].done) continue;
    batch[i].done(b.result[i] ? Expected<void>(fail(*b.result[i])) : Expected<void>(fail(err)));
  }
}

void Spool::Impl::writer_loop() {
  std::vector<Op> batch;
  for (;;) {
    {
      std::unique_lock lock(q_mu);
      // Compaction left to do runs in batches of its own when no operation comes.
      q_cv.wait(lock, [&] { return stopping || !ops.empty() || (compaction_wanted && !compaction_held.load()); });
      if (ops.empty() && stopping) return;  // stopping and drained
      batch.swap(ops);
    }
    // While this batch is written and synced, new operations pile up in `ops` and form
    // the next batch: that is the group commit.
    run_batch(batch);
    batch.clear();
  }
}

void Spool::Impl::submit(Op op) {
  {
    std::lock_guard lock(q_mu);
    ops.push_back(std::move(op));
  }
  q_cv.notify_one();
}

}  // namespace bridgehead::spool
