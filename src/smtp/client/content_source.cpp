#include "smtp/client/content_source.hpp"

#include <algorithm>

#include "core/text.hpp"
#include "smtp/client/wire_encoding.hpp"

namespace bridgehead::smtp::client {

StringContentSource::StringContentSource(std::string_view content, std::size_t piece_size)
    : content_(content),
      piece_size_(std::max<std::size_t>(piece_size, 1)),
      info_{message_size(content), has_8bit(content)} {}

net::awaitable<Expected<std::string_view>> StringContentSource::next_piece() {
  const std::string_view piece = content_.substr(pos_, piece_size_);
  pos_ += piece.size();
  co_return piece;
}

net::awaitable<Expected<std::string>> read_whole(ContentSource& source) {
  std::string whole;
  whole.reserve(source.info().wire_size);
  for (;;) {
    auto piece = co_await source.next_piece();
    if (!piece) co_return tl::unexpected(std::move(piece.error()));
    if (piece->empty()) co_return whole;
    whole.append(*piece);
  }
}

}  // namespace bridgehead::smtp::client
