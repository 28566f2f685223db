// Reclaiming space: live bytes per segment, copying queued messages forward out of mostly-
// dead segments, removing segments nothing needs, and rewriting the journal (FINISHED and
// recipient-state records) down to what it must keep.

#include "spool/spool_impl.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <mutex>
#include <shared_mutex>
#include <unordered_set>

#include <fmt/format.h>

namespace bridgehead::spool {

namespace {

bool is_default_state(const RecipientState& st, std::size_t i) {
  RecipientState fresh;
  fresh.index = static_cast<std::uint32_t>(i);
  return st == fresh;
}

/// The states of `recipients` that a compacted journal must keep (those that differ from
/// a fresh kPending); empty when there are none.
std::vector<RecipientState> states_to_keep(const std::vector<RecipientState>& recipients) {
  std::vector<RecipientState> out;
  for (std::size_t i = 0; i < recipients.size(); ++i) {
    if (!is_default_state(recipients[i], i)) out.push_back(recipients[i]);
  }
  return out;
}

}  // namespace

namespace detail {

std::uint64_t kept_state_bytes(const std::vector<RecipientState>& recipients) {
  std::size_t payload = kStatePrefix;
  bool any = false;
  for (std::size_t i = 0; i < recipients.size(); ++i) {
    if (is_default_state(recipients[i], i)) continue;
    any = true;
    payload += kStateEntryFixed + std::min(recipients[i].reply.size(), kMaxStateReply) +
               std::min(recipients[i].remote.size(), kMaxStateRemote);
  }
  return any ? kFrameHeaderSize + payload : 0;
}

}  // namespace detail

void Spool::Impl::account(MessageId id, const Queued& q, int sign) {
  auto add = [&](std::uint64_t seq, std::uint64_t bytes) {
    auto it = segstat.find(seq);
    if (it == segstat.end()) return;
    it->second.live = sign > 0 ? it->second.live + bytes : it->second.live - std::min(it->second.live, bytes);
  };
  for (const Extent& e : q.extents) add(e.seq, chunk_record_bytes(e));
  add(q.commit_seq, q.commit_bytes);
  for (std::uint64_t s = q.range.first; s != 0 && s <= q.range.last; ++s) {
    auto it = segstat.find(s);
    if (it == segstat.end()) continue;
    if (sign > 0) {
      it->second.members.insert(id);
    } else {
      it->second.members.erase(id);
    }
  }
}

void Spool::Impl::publish_totals() {
  std::uint64_t disk = 0;
  std::uint64_t live = 0;
  for (const auto& [seq, st] : segstat) {
    disk += st.size;
    live += st.live;
  }
  disk_total = disk;
  live_total = live;
}

void Spool::Impl::ref_range(std::uint64_t from, std::uint64_t to, int delta) {
  for (std::uint64_t s = from; s != 0 && s <= to; ++s) {
    auto it = refs.find(s);
    if (it != refs.end()) it->second = static_cast<std::uint64_t>(static_cast<std::int64_t>(it->second) + delta);
  }
}

void Spool::Impl::touch(Range& r, std::uint64_t seq) {
  if (r.first == 0) {
    r.first = r.last = seq;
    ref_range(seq, seq, +1);
  } else if (seq > r.last) {
    ref_range(r.last + 1, seq, +1);
    r.last = seq;
  }
}

std::optional<std::vector<std::string_view>> Spool::Impl::read_back(Batch& b, MessageId id, Queued& q) {
  std::vector<std::string_view> pieces;
  for (std::size_t i = 0; i < q.extents.size(); ++i) {
    const Extent& e = q.extents[i];
    auto seg = seg_files.find(e.seq);
    if (seg == seg_files.end()) return std::nullopt;
    auto f = files->get(e.seq, seg->second->path);
    if (!f) {
      set_degraded("compaction", fmt::format("cannot compact message {}: {}", format_id(id), f.error().describe()));
      return std::nullopt;
    }
    std::string& buf = b.copy_data.emplace_back(e.length, '\0');
    if (auto r = pread_exact((*f)->fd, buf.data(), e.length, e.offset, seg->second->path, id); !r) {
      set_degraded("compaction", fmt::format("cannot compact message {}: {}", format_id(id), r.error().describe()));
      return std::nullopt;
    }
    if (crc32c(chunk_crc_start(id, static_cast<std::uint32_t>(i), e.length), buf) != e.crc) {
      mark_damaged(id, q, fmt::format("chunk {} in {} fails its CRC", i, seg->second->path.string()));
      return std::nullopt;
    }
    pieces.push_back(buf);
  }
  return pieces;
}

void Spool::Impl::mark_damaged(MessageId id, Queued& q, const std::string& why) {
  if (q.damaged) return;
  q.damaged = true;
  {
    std::lock_guard lock(degraded_mu);
    if (!damaged_reads.insert(id).second) return;
  }
  ++damaged_total;
  set_degraded("damage", fmt::format("message {} is damaged on disk ({}); it cannot be delivered as it was "
                                     "received; see docs/spool.md on damaged messages",
                                     format_id(id), why));
}

// Copies a queued message forward into the current segment: the same CHUNK records (same
// id, indexes and CRCs, so the COMMIT's digest is unchanged) and a new COMMIT. Recovery
// takes the last copy whose COMMIT checks out; the journal's states and FINISHED record
// are by id, so they apply to either copy.
Expected<std::uint64_t> Spool::Impl::plan_copy(Batch& b, MessageId id, Queued& q) {
  auto pieces = read_back(b, id, q);
  if (!pieces) return 0;
  Batch::Copy c;
  c.id = id;
  std::uint64_t bytes = 0;
  std::uint32_t digest = 0;
  for (std::size_t i = 0; i < pieces->size(); ++i) {
    const std::string_view piece = (*pieces)[i];
    if (auto r = make_room(b, kFrameHeaderSize + kChunkPrefix + piece.size()); !r) return fail(r.error());
    char prefix[kChunkPrefix];
    put_u64(prefix, id);
    put_u32(prefix + 8, static_cast<std::uint32_t>(i));
    std::uint32_t crc = 0;
    const std::uint64_t at = add_record(b, kChunk, std::string_view(prefix, kChunkPrefix), piece, &crc);
    touch(c.range, cur->seq);
    c.extents.push_back({cur->seq, at + kChunkPrefix, static_cast<std::uint32_t>(piece.size()), crc});
    digest = extend_digest(digest, crc);
    bytes += kFrameHeaderSize + kChunkPrefix + piece.size();
  }
  // A copy: the index entry may change before the batch reaches the disk.
  const std::string& env = b.copy_data.emplace_back(q.envelope);
  if (auto r = make_room(b, kFrameHeaderSize + kCommitPrefix + env.size()); !r) return fail(r.error());
  char pp[kCommitPrefix];
  put_u64(pp, id);
  put_u64(pp + 8, q.size);
  put_u32(pp + 16, static_cast<std::uint32_t>(q.extents.size()));
  put_u32(pp + 20, digest);
  put_u32(pp + 24, static_cast<std::uint32_t>(env.size()));
  add_record(b, kCommit, std::string_view(pp, kCommitPrefix), env, nullptr);
  touch(c.range, cur->seq);
  c.commit_seq = cur->seq;
  c.commit_bytes = static_cast<std::uint32_t>(kFrameHeaderSize + kCommitPrefix + env.size());
  b.copies.push_back(std::move(c));
  return bytes + kFrameHeaderSize + kCommitPrefix + env.size();
}

// Compaction, in the writer's batches: a sealed segment in which less than two thirds of
// the bytes belong to queued messages has those messages copied forward, so that it (and
// the space of everything finished in it) can go. Every segment left is then at least
// two-thirds live, except the current one: segment files take at most 1.5 x the live
// data plus one segment. Each batch copies a bounded amount, so commits behind it wait
// little.
Expected<void> Spool::Impl::plan_compaction(Batch& b) {
  if (!compaction_wanted || compaction_held.load()) return {};
  compaction_wanted = false;
  const std::uint64_t budget = std::clamp<std::uint64_t>(opt.segment_size / 2, 64u << 10, 4u << 20);
  std::uint64_t used = 0;
  bool started = false;
  std::unordered_set<MessageId> planned;
  for (auto& [seq, st] : segstat) {
    if ((cur && seq == cur->seq) || st.members.empty() || st.live * 3 >= st.size * 2) continue;
    if (std::find(b.created.begin(), b.created.end(), seq) != b.created.end()) continue;
    const std::vector<MessageId> ids(st.members.begin(), st.members.end());
    for (MessageId id : ids) {
      auto it = queued.find(id);
      if (it == queued.end() || it->second.damaged || b.finishing_set.count(id) != 0 || planned.count(id) != 0) continue;
      if (used >= budget) {
        compaction_wanted = true;  // the rest in the next batch
        return {};
      }
      if (!started) {
        started = true;
        (void)fault("compaction-start");
      }
      planned.insert(id);
      auto copied = plan_copy(b, id, it->second);
      if (!copied) return fail(copied.error());
      used += *copied;
    }
  }
  return {};
}

void Spool::Impl::append_kept_records(std::string& content) const {
  std::vector<MessageId> ids;
  ids.reserve(finished_keep.size());
  for (const auto& [id, range] : finished_keep) ids.push_back(id);
  std::sort(ids.begin(), ids.end());
  for (MessageId id : ids) {
    char payload[8];
    put_u64(payload, id);
    const auto fh = encode_frame_header(kFinished, 0, std::string_view(payload, 8), {});
    content.append(fh.data(), fh.size());
    content.append(payload, 8);
  }
  for (const auto& [id, q] : queued) {
    if (q.recipients.empty()) continue;
    const auto keep = states_to_keep(q.recipients);
    if (keep.empty()) continue;
    const std::string payload = encode_recipient_states(id, keep);
    const auto fh = encode_frame_header(kRecipientState, kFlagSkippable, payload, {});
    content.append(fh.data(), fh.size());
    content.append(payload);
  }
}

std::uint64_t Spool::Impl::compacted_journal_size() const {
  return kFileHeaderSize + finished_keep.size() * (kFrameHeaderSize + 8) + state_bytes;
}

Expected<void> Spool::Impl::start_new_journal() {
  const std::uint64_t seq = journal_seq + 1;
  if (const int e = fault("journal-compact"); e != 0) {
    return fail(io_error(e, "cannot write", file(journal_name(seq))));
  }
  std::string content;
  content.reserve(compacted_journal_size());
  const auto h = encode_file_header(kJournalMagic, seq);
  content.append(h.data(), h.size());
  // The states are the in-memory ones, which only ever reflect synced records: a record
  // that is written but not yet synced is in no batch at this point (this runs between
  // batches, or while planning before any journal record of the batch is queued).
  append_kept_records(content);
  // tmp + fdatasync + rename + directory fsync: the new journal is complete before its
  // name exists, so a crash leaves the old journal, the new one, or both; recovery takes
  // the union of all journals, and every record it holds is true, so both is harmless.
  if (auto r = write_atomically(journal_name(seq), content); !r) return r;
  const auto path = file(journal_name(seq));
  const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return fail(io_error(errno, "cannot open", path));
  if (journal_fd >= 0) {
    ::close(journal_fd);
    // Harmless if it stays (recovery takes the union), but it is space that is never
    // given back, so a person must hear of it.
    const auto old = file(journal_name(journal_seq));
    if (::unlink(old.c_str()) != 0) {
      set_degraded("journal-unlink", io_error(errno, "cannot remove old spool journal", old).describe());
    } else {
      set_degraded("journal-unlink", "");
    }
  }
  journal_fd = fd;
  journal_seq = seq;
  journal_size = content.size();
  journal_broken = false;
  return {};
}

void Spool::Impl::apply_states(MessageId id, std::vector<RecipientState> states) {
  auto it = queued.find(id);
  if (it == queued.end()) return;
  Queued& q = it->second;
  state_bytes -= kept_state_bytes(q.recipients);
  if (q.recipients.empty()) {
    q.recipients.resize(q.recipient_count);
    for (std::size_t i = 0; i < q.recipients.size(); ++i) q.recipients[i].index = static_cast<std::uint32_t>(i);
  }
  for (auto& st : states) {
    if (st.index < q.recipients.size()) q.recipients[st.index] = std::move(st);
  }
  const std::uint64_t kept = kept_state_bytes(q.recipients);
  // Back to all-pending (a state reset): no need to hold the vector.
  if (kept == 0) {
    q.recipients.clear();
    q.recipients.shrink_to_fit();
  }
  state_bytes += kept;
}

bool Spool::Impl::any_on_disk(const Range& r) const {
  for (std::uint64_t s = r.first; s != 0 && s <= r.last; ++s) {
    if (refs.count(s) != 0) return true;
  }
  return false;
}

void Spool::Impl::delete_unused_segments() {
  std::vector<std::uint64_t> gone;
  for (const auto& [seq, n] : refs) {
    if (n == 0 && (!cur || cur->seq != seq)) gone.push_back(seq);
  }
  if (gone.empty()) return;
  std::optional<Error> failed;
  for (std::uint64_t seq : gone) {
    const auto path = file(segment_name(seq));
    int e = fault("unlink-segment");
    if (e == 0 && ::unlink(path.c_str()) != 0 && errno != ENOENT) e = errno;
    if (e != 0) {
      // The segment stays known (refs keeps it at 0) so its messages' FINISHED records
      // are kept and the unlink is tried again after later batches; a person must hear
      // of it, since the space is not coming back by itself.
      if (!failed) failed = io_error(e, "cannot remove spool segment", path);
      continue;
    }
    {
      std::unique_lock lock(index_mu);
      seg_files.erase(seq);
    }
    files->drop(seq);
    refs.erase(seq);
    dirty.erase(seq);
    segstat.erase(seq);
  }
  set_degraded("unlink", failed ? failed->describe() : "");
  // The unlinks must be durable before compaction drops the FINISHED records of these
  // segments' messages: a segment that came back after a crash without them would have
  // its messages delivered again.
  if (auto r = fsync_dir(); !r) {
    set_degraded("unlink-sync", r.error().describe());
    return;  // keep every FINISHED record: safe, only space is lost
  }
  set_degraded("unlink-sync", "");
  for (auto it = finished_keep.begin(); it != finished_keep.end();) {
    const bool on_disk = std::any_of(it->second.begin(), it->second.end(), [&](const Range& r) { return any_on_disk(r); });
    it = on_disk ? std::next(it) : finished_keep.erase(it);
  }
}

void Spool::Impl::maybe_compact() {
  const std::uint64_t needed = compacted_journal_size();
  if (journal_size > opt.journal_compact_bytes && journal_size > 2 * needed) {
    // A failure leaves the old journal in use (still correct); compaction is retried
    // after later batches, and the spool is degraded meanwhile.
    if (auto r = start_new_journal(); !r) {
      set_degraded("journal", fmt::format("cannot compact the spool journal: {}", r.error().describe()));
    } else {
      set_degraded("journal", "");
    }
  }
}

}  // namespace bridgehead::spool
