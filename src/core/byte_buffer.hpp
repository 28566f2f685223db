// core/byte_buffer: a growable run of octets whose new space is not zero-filled. A content
// window of up to 512 KiB is filled by pread straight after it is grown; std::string's
// resize would first write every octet with zeros (a few percent of a large message's
// relay CPU, measured). Header-only, no I/O.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <memory>
#include <string_view>
#include <utility>

namespace bridgehead {

class ByteBuffer {
 public:
  ByteBuffer() = default;
  ByteBuffer(ByteBuffer&& other) noexcept { *this = std::move(other); }
  ByteBuffer& operator=(ByteBuffer&& other) noexcept {
    data_ = std::move(other.data_);
    size_ = std::exchange(other.size_, 0);
    capacity_ = std::exchange(other.capacity_, 0);
    return *this;
  }

  char* data() { return data_.get(); }
  const char* data() const { return data_.get(); }
  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  std::string_view view() const { return {data_.get(), size_}; }

  /// Makes the size `n`. The first min(size(), n) octets are kept; any beyond are
  /// unspecified until the caller writes them. Space is kept when the size shrinks.
  void resize_for_overwrite(std::size_t n) {
    if (n > capacity_) {
      const std::size_t grown = std::max(n, capacity_ + capacity_ / 2);
      auto bigger = std::make_unique_for_overwrite<char[]>(grown);
      if (size_ != 0) std::memcpy(bigger.get(), data_.get(), size_);
      data_ = std::move(bigger);
      capacity_ = grown;
    }
    size_ = n;
  }
  void clear() { size_ = 0; }

 private:
  std::unique_ptr<char[]> data_;
  std::size_t size_ = 0;
  std::size_t capacity_ = 0;
};

}  // namespace bridgehead
