// queue: a message's content streamed from the spool to a delivery. The spool is read a
// window of whole chunks at a time, from the page cache on the I/O thread when it is all
// there (a message delivered soon after it arrived) and on the worker pool when the disk
// must be read; the client dot-stuffs each window onto the socket. A delivery holds one
// window and one write buffer, never the whole message, however large it is.
#pragma once

#include <memory>
#include <string>

#include "core/expected.hpp"
#include "net/asio.hpp"
#include "smtp/client/content_source.hpp"
#include "spool/spool.hpp"

namespace bridgehead::queue {

class SpoolContentSource final : public smtp::client::ContentSource {
 public:
  /// Octets read per trip to the pool, or per read from the page cache (one chunk more at
  /// most, a chunk being up to 1 MiB; the listener writes chunks of 256 to 384 KiB). A trip
  /// to the pool is two thread switches, which cost more CPU than the read itself.
  static constexpr std::size_t kWindow = 512 * 1024;

  /// Opens message `id` and reads its first window: on this thread from the page cache,
  /// else on `blocking` (empty: on this thread, for tests). Fails as Spool::open_content
  /// and read_next do.
  static net::awaitable<Expected<std::unique_ptr<SpoolContentSource>>> open(const spool::Spool& spool,
                                                                           spool::MessageId id,
                                                                           const net::asio::any_io_executor& blocking);

  /// The size is the spool's; whether it is 8-bit is not known without reading it all.
  smtp::client::ContentInfo info() const override;
  net::awaitable<Expected<std::string_view>> next_piece() override;

  /// The error a read failed with after the first window, if one did: the delivery was
  /// then broken off by the client (nothing partial delivered), through no fault of the
  /// destination's.
  const std::optional<Error>& read_error() const { return read_error_; }

 private:
  SpoolContentSource(spool::ContentReader reader, net::asio::any_io_executor blocking);
  net::awaitable<Expected<void>> fill();  ///< the next window into window_
  spool::ContentReader reader_;
  net::asio::any_io_executor blocking_;
  ByteBuffer window_;
  bool handed_ = false;  ///< window_ was handed out and must be refilled first
  std::optional<Error> read_error_;
};

}  // namespace bridgehead::queue
