#include "core/byte_buffer.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <string>

namespace bridgehead {
namespace {

TEST(ByteBuffer, GrowingKeepsWhatWasWrittenAndShrinkingKeepsTheSpace) {
  ByteBuffer b;
  EXPECT_TRUE(b.empty());
  b.resize_for_overwrite(5);
  std::memcpy(b.data(), "hello", 5);
  b.resize_for_overwrite(300000);  // grows: the first five octets move with it
  EXPECT_EQ(b.size(), 300000u);
  EXPECT_EQ(b.view().substr(0, 5), "hello");
  const char* before = b.data();
  b.resize_for_overwrite(2);
  EXPECT_EQ(b.view(), "he");
  b.resize_for_overwrite(300000);  // within the space it had: not reallocated
  EXPECT_EQ(b.data(), before);
  b.clear();
  EXPECT_TRUE(b.empty());
}

TEST(ByteBuffer, AMovedFromBufferIsEmptyAndUsable) {
  ByteBuffer a;
  a.resize_for_overwrite(3);
  std::memcpy(a.data(), "abc", 3);
  ByteBuffer b(std::move(a));
  EXPECT_EQ(b.view(), "abc");
  EXPECT_EQ(a.size(), 0u);  // NOLINT(bugprone-use-after-move): the moved-from state is specified
  a.resize_for_overwrite(4);
  std::memcpy(a.data(), "wxyz", 4);
  EXPECT_EQ(a.view(), "wxyz");
  b = std::move(a);
  EXPECT_EQ(b.view(), "wxyz");
}

}  // namespace
}  // namespace bridgehead
