#include "queue/spool_content.hpp"

#include "net/blocking.hpp"

namespace bridgehead::queue {

SpoolContentSource::SpoolContentSource(spool::ContentReader reader, net::asio::any_io_executor blocking)
    : reader_(std::move(reader)), blocking_(std::move(blocking)) {}

net::awaitable<Expected<std::unique_ptr<SpoolContentSource>>> SpoolContentSource::open(
    const spool::Spool& spool, spool::MessageId id, const net::asio::any_io_executor& blocking) {
  auto work = [&spool, id, blocking]() -> Expected<std::unique_ptr<SpoolContentSource>> {
    auto reader = spool.open_content(id);
    if (!reader) return fail(reader.error());
    std::unique_ptr<SpoolContentSource> source(new SpoolContentSource(std::move(*reader), blocking));
    if (auto r = source->reader_.read_next(source->window_, kWindow); !r) return fail(r.error());
    return source;
  };
  // An if, not ?: around the co_await (GCC 12 frees such results twice).
  if (!blocking) co_return work();
  co_return co_await net::run_blocking(blocking, std::move(work));
}

smtp::client::ContentInfo SpoolContentSource::info() const {
  return {.wire_size = reader_.size() + (reader_.ends_with_newline() ? 0 : 2), .eight_bit = std::nullopt};
}

net::awaitable<Expected<std::string_view>> SpoolContentSource::next_piece() {
  if (read_error_) co_return fail(*read_error_);
  if (handed_) {
    auto work = [this] { return reader_.read_next(window_, kWindow); };
    Expected<void> r;
    if (blocking_) {
      r = co_await net::run_blocking(blocking_, std::move(work));
    } else {
      r = work();
    }
    if (!r) {
      read_error_ = r.error();
      co_return fail(r.error());
    }
  }
  handed_ = true;
  co_return std::string_view(window_);
}

}  // namespace bridgehead::queue
