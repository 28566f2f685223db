#include "queue/spool_content.hpp"

#include "net/blocking.hpp"

namespace bridgehead::queue {

SpoolContentSource::SpoolContentSource(spool::ContentReader reader, net::asio::any_io_executor blocking)
    : reader_(std::move(reader)), blocking_(std::move(blocking)) {}

net::awaitable<Expected<std::unique_ptr<SpoolContentSource>>> SpoolContentSource::open(
    const spool::Spool& spool, spool::MessageId id, const net::asio::any_io_executor& blocking) {
  // A message delivered soon after it arrived is still in the page cache: then it is
  // opened and read here, without the two thread switches of a trip to the pool.
  auto cached = spool.try_open_content(id);
  if (!cached) co_return fail(cached.error());
  std::unique_ptr<SpoolContentSource> source;
  if (*cached) {
    source.reset(new SpoolContentSource(std::move(**cached), blocking));
  } else {
    auto work = [&spool, id, blocking]() -> Expected<std::unique_ptr<SpoolContentSource>> {
      auto reader = spool.open_content(id);
      if (!reader) return fail(reader.error());
      return std::unique_ptr<SpoolContentSource>(new SpoolContentSource(std::move(*reader), blocking));
    };
    Expected<std::unique_ptr<SpoolContentSource>> opened;
    if (blocking) {
      opened = co_await net::run_blocking(blocking, std::move(work));
    } else {
      opened = work();
    }
    if (!opened) co_return fail(opened.error());
    source = std::move(*opened);
  }
  if (auto r = co_await source->fill(); !r) co_return fail(r.error());
  co_return source;
}

net::awaitable<Expected<void>> SpoolContentSource::fill() {
  auto now = reader_.try_read_next(window_, kWindow);
  if (!now) co_return fail(now.error());
  if (*now) co_return Expected<void>{};
  // Not all in the page cache: read from the disk on the pool.
  auto work = [this] { return reader_.read_next(window_, kWindow); };
  if (!blocking_) co_return work();
  co_return co_await net::run_blocking(blocking_, std::move(work));
}

smtp::client::ContentInfo SpoolContentSource::info() const {
  return {.wire_size = reader_.size() + (reader_.ends_with_newline() ? 0 : 2), .eight_bit = std::nullopt};
}

net::awaitable<Expected<std::string_view>> SpoolContentSource::next_piece() {
  if (read_error_) co_return fail(*read_error_);
  if (handed_) {
    if (auto r = co_await fill(); !r) {
      read_error_ = r.error();
      co_return fail(r.error());
    }
  }
  handed_ = true;
  co_return window_.view();
}

}  // namespace bridgehead::queue
