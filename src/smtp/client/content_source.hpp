// smtp/client: where the client reads a message's content from while it sends it. The
// content reaches the socket in bounded pieces (dot-stuffed on the way), so a delivery
// holds one piece and one write buffer instead of the whole message. Only a message for a
// next hop without 8BITMIME is read whole (to find out whether it is 8-bit at all, when the
// source cannot say), and converted on the worker pool if it is.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/expected.hpp"
#include "net/asio.hpp"

namespace bridgehead::smtp::client {

/// What the client must know about a message before MAIL FROM.
struct ContentInfo {
  std::uint64_t wire_size = 0;  ///< octets before dot-stuffing, as message_size() counts them (SIZE=)
  /// Any octet above 127 (8BITMIME or a downgrade needed); nullopt when the source cannot
  /// tell without reading it all (the client then reads it whole only for a next hop
  /// without 8BITMIME).
  std::optional<bool> eight_bit;
};

/// A message's content, read front to back once per delivery attempt.
class ContentSource {
 public:
  virtual ~ContentSource() = default;
  virtual ContentInfo info() const = 0;
  /// The next piece of the content; an empty view at the end. The view stays valid until
  /// the next call. Fails (transient) when the content cannot be read: the client then
  /// breaks the connection before the end of data, so nothing partial is delivered.
  virtual net::awaitable<Expected<std::string_view>> next_piece() = 0;
  /// The whole content when it is already in memory in one piece (no copy is needed to
  /// convert it); nullopt for a source that reads it (the default).
  virtual std::optional<std::string_view> contiguous() const { return std::nullopt; }
};

/// A ContentSource over content already in memory (the queue manager's copy), handed out
/// in pieces of at most `piece_size` octets. `content` must outlive the source.
class StringContentSource final : public ContentSource {
 public:
  static constexpr std::size_t kDefaultPieceSize = 64 * 1024;
  explicit StringContentSource(std::string_view content, std::size_t piece_size = kDefaultPieceSize);
  ContentInfo info() const override { return info_; }
  net::awaitable<Expected<std::string_view>> next_piece() override;
  std::optional<std::string_view> contiguous() const override { return content_; }

 private:
  std::string_view content_;
  std::size_t piece_size_;
  std::size_t pos_ = 0;
  ContentInfo info_;
};

/// Reads every remaining piece of `source` into one string (for the 7-bit downgrade, which
/// needs the whole message); fails with the source's error.
net::awaitable<Expected<std::string>> read_whole(ContentSource& source);

}  // namespace bridgehead::smtp::client
