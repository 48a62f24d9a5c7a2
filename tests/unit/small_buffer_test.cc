// SmallBuffer (abi/common/small_buffer.h): kevent's scratch lists. Inline
// up to N, the heap beyond with what was written kept, and a heap block
// kept when the list shrinks so that a reused buffer allocates once.
#include "abi/common/small_buffer.h"

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>

namespace evshim::abi {
namespace {

struct Rec {
  uint64_t a;
  uint32_t b;
  uint16_t c;
};

// Whether p lies inside the object itself (the inline room).
template <typename B>
bool Inside(const B& buf, const void* p) {
  auto* lo = reinterpret_cast<const std::byte*>(&buf);
  auto* q = static_cast<const std::byte*>(p);
  return q >= lo && q < lo + sizeof buf;
}

void Fill(SmallBuffer<Rec, 4>& buf, size_t from, size_t to) {
  for (size_t i = from; i < to; ++i) buf[i] = Rec{i * 3, static_cast<uint32_t>(i), static_cast<uint16_t>(i + 1)};
}

void ExpectFilled(const SmallBuffer<Rec, 4>& buf, size_t to) {
  for (size_t i = 0; i < to; ++i) {
    EXPECT_EQ(buf[i].a, i * 3) << i;
    EXPECT_EQ(buf[i].b, i) << i;
    EXPECT_EQ(buf[i].c, i + 1) << i;
  }
}

TEST(SmallBuffer, StartsEmptyWithItsInlineRoom) {
  SmallBuffer<Rec, 4> buf;
  EXPECT_EQ(buf.size(), 0u);
  EXPECT_EQ(buf.capacity(), 4u);
  EXPECT_FALSE(buf.on_heap());
  EXPECT_TRUE(Inside(buf, buf.data()));
  EXPECT_EQ(buf.span().size(), 0u);
}

TEST(SmallBuffer, UpToNStaysInline) {
  SmallBuffer<Rec, 4> buf;
  buf.resize(4);
  Fill(buf, 0, 4);
  EXPECT_EQ(buf.size(), 4u);
  EXPECT_FALSE(buf.on_heap());
  EXPECT_TRUE(Inside(buf, buf.data()));
  EXPECT_TRUE(Inside(buf, &buf[3]));
  ExpectFilled(buf, 4);
  EXPECT_EQ(buf.span().data(), buf.data());
  EXPECT_EQ(buf.span().size(), 4u);
}

TEST(SmallBuffer, SpillsToTheHeapKeepingWhatWasWritten) {
  SmallBuffer<Rec, 4> buf;
  buf.resize(3);
  Fill(buf, 0, 3);
  buf.resize(5);
  EXPECT_TRUE(buf.on_heap());
  EXPECT_FALSE(Inside(buf, buf.data()));
  EXPECT_GE(buf.capacity(), 5u);
  EXPECT_EQ(buf.size(), 5u);
  Fill(buf, 3, 5);
  ExpectFilled(buf, 5);
  // Growing again on the heap keeps it all too.
  buf.resize(200);
  EXPECT_GE(buf.capacity(), 200u);
  Fill(buf, 5, 200);
  ExpectFilled(buf, 200);
}

TEST(SmallBuffer, GrowsGeometrically) {
  SmallBuffer<Rec, 4> buf;
  buf.resize(5);
  EXPECT_EQ(buf.capacity(), 8u);  // at least double: a list grown by chunks
  const Rec* block = buf.data();
  buf.resize(8);
  EXPECT_EQ(buf.data(), block);
  buf.resize(9);
  EXPECT_EQ(buf.capacity(), 16u);
}

TEST(SmallBuffer, ShrinkKeepsTheHeapBlockForReuse) {
  SmallBuffer<Rec, 4> buf;
  buf.resize(64);
  Fill(buf, 0, 64);
  const Rec* block = buf.data();
  const size_t cap = buf.capacity();
  buf.resize(2);
  EXPECT_EQ(buf.size(), 2u);
  EXPECT_EQ(buf.data(), block);
  EXPECT_EQ(buf.capacity(), cap);
  ExpectFilled(buf, 2);
  buf.resize(0);
  buf.resize(64);  // no new block
  EXPECT_EQ(buf.data(), block);
  EXPECT_EQ(buf.capacity(), cap);
  ExpectFilled(buf, 2);
}

TEST(SmallBuffer, BytesAsKeventEncodes) {
  SmallBuffer<std::byte, 16> buf;
  buf.resize(16);
  EXPECT_FALSE(buf.on_heap());
  for (size_t i = 0; i < 16; ++i) buf[i] = static_cast<std::byte>(i);
  buf.resize(17);
  EXPECT_TRUE(buf.on_heap());
  for (size_t i = 0; i < 16; ++i) EXPECT_EQ(buf[i], static_cast<std::byte>(i)) << i;
}

}  // namespace
}  // namespace evshim::abi
