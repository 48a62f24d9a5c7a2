// ByNumber (shim/runtime/by_number.h): records by descriptor number, an
// index in chunks below kIndexed, a map beyond (and for negative numbers).
// Checked at the boundaries of both parts and of the chunks, against
// std::map over random puts and erasures.
#include "shim/runtime/by_number.h"

#include <gtest/gtest.h>

#include <climits>
#include <cstdint>
#include <map>
#include <random>
#include <utility>
#include <vector>

namespace evshim::shim {
namespace {

struct Rec {
  int value = 0;
};
using Small = ByNumber<Rec, 256>;  // 4 chunks of 64, then the map

std::vector<std::pair<int, int>> Listed(const Small& t) {
  std::vector<std::pair<int, int>> out;
  t.ForEach([&out](int n, const Rec& r) { out.emplace_back(n, r.value); });
  return out;
}

TEST(ByNumber, EmptyFindsNothing) {
  Small t;
  EXPECT_TRUE(t.empty());
  for (int n : {0, 1, 63, 64, 255, 256, 1000, -1, INT_MIN, INT_MAX}) EXPECT_EQ(t.Find(n), nullptr) << n;
  EXPECT_EQ(t.table_for_test(), 0u);
}

TEST(ByNumber, BoundaryNumbersOnBothSides) {
  Small t;
  // The chunks' edges, the index's last number, the map's first, the ends
  // of int, negative numbers (the map's too: no number is refused).
  const std::vector<int> numbers = {0, 63, 64, 127, 128, 255, 256, 257, INT_MAX, -1, -64, INT_MIN};
  for (int n : numbers) t.Put(n, Rec{n ^ 0x5a});
  EXPECT_EQ(t.size(), numbers.size());
  for (int n : numbers) {
    Rec* r = t.Find(n);
    ASSERT_NE(r, nullptr) << n;
    EXPECT_EQ(r->value, n ^ 0x5a) << n;
  }
  // Neighbours not put are absent.
  for (int n : {1, 62, 65, 126, 129, 254, 258, INT_MAX - 1, -2, -63, INT_MIN + 1}) EXPECT_EQ(t.Find(n), nullptr) << n;
  // The index holds 0..255 only: 4 chunks.
  EXPECT_EQ(t.chunks_for_test(), 4u);
  EXPECT_EQ(t.table_for_test(), 4u);
}

TEST(ByNumber, PutReplacesWithoutCounting) {
  Small t;
  t.Put(5, Rec{1});
  t.Put(5, Rec{2});
  t.Put(300, Rec{3});
  t.Put(300, Rec{4});
  t.Put(-3, Rec{5});
  t.Put(-3, Rec{6});
  EXPECT_EQ(t.size(), 3u);
  EXPECT_EQ(t.Find(5)->value, 2);
  EXPECT_EQ(t.Find(300)->value, 4);
  EXPECT_EQ(t.Find(-3)->value, 6);
}

TEST(ByNumber, RecordsDoNotMoveWhileOthersCome) {
  Small t;
  Rec* low = &t.Put(3, Rec{7});
  Rec* high = &t.Put(1000, Rec{8});
  for (int n = 4; n < 256; ++n) t.Put(n, Rec{n});
  for (int n = 1001; n < 1200; ++n) t.Put(n, Rec{n});
  EXPECT_EQ(t.Find(3), low);
  EXPECT_EQ(t.Find(1000), high);
  EXPECT_EQ(low->value, 7);
  EXPECT_EQ(high->value, 8);
}

TEST(ByNumber, EraseFreesTheChunkAndShrinksTheTable) {
  Small t;
  t.Put(10, Rec{1});
  t.Put(200, Rec{2});  // chunk 3: the table is 4 long
  t.Put(201, Rec{3});
  EXPECT_EQ(t.chunks_for_test(), 2u);
  EXPECT_EQ(t.table_for_test(), 4u);
  EXPECT_TRUE(t.Erase(200));
  EXPECT_FALSE(t.Erase(200));  // twice: nothing there
  EXPECT_EQ(t.Find(200), nullptr);
  EXPECT_EQ(t.Find(201)->value, 3);
  EXPECT_EQ(t.table_for_test(), 4u);  // 201 keeps its chunk
  EXPECT_TRUE(t.Erase(201));
  EXPECT_EQ(t.chunks_for_test(), 1u);
  EXPECT_EQ(t.table_for_test(), 1u);  // down to chunk 0, the highest left
  // A record erased and put again starts from the value put.
  t.Put(10, Rec{9});
  EXPECT_EQ(t.Find(10)->value, 9);
  EXPECT_TRUE(t.Erase(10));
  EXPECT_EQ(t.table_for_test(), 0u);
  EXPECT_TRUE(t.empty());
  // Never-put numbers on both sides, and negative ones.
  EXPECT_FALSE(t.Erase(5));
  EXPECT_FALSE(t.Erase(5000));
  EXPECT_FALSE(t.Erase(-1));
  t.Put(-1, Rec{1});
  t.Put(256, Rec{2});
  EXPECT_TRUE(t.Erase(-1));
  EXPECT_TRUE(t.Erase(256));
  EXPECT_TRUE(t.empty());
  EXPECT_EQ(t.Find(-1), nullptr);
  EXPECT_EQ(t.Find(256), nullptr);
}

TEST(ByNumber, ForEachVisitsBothPartsIndexFirstInOrder) {
  Small t;
  for (int n : {130, 2, 64, 999, 63, -7, 255}) t.Put(n, Rec{n + 1});
  const auto listed = Listed(t);
  ASSERT_EQ(listed.size(), 7u);
  // The index in ascending order, then the map's numbers in some order.
  const std::vector<std::pair<int, int>> indexed = {{2, 3}, {63, 64}, {64, 65}, {130, 131}, {255, 256}};
  EXPECT_EQ(std::vector(listed.begin(), listed.begin() + 5), indexed);
  std::map<int, int> beyond(listed.begin() + 5, listed.end());
  EXPECT_EQ(beyond, (std::map<int, int>{{-7, -6}, {999, 1000}}));
  // Records reached by ForEach can be changed in place.
  t.ForEach([](int, Rec& r) { r.value = -r.value; });
  EXPECT_EQ(t.Find(130)->value, -131);
  EXPECT_EQ(t.Find(-7)->value, 6);
}

TEST(ByNumber, SameAsAMapOverRandomPutsAndErasures) {
  Small t;
  std::map<int, int> ref;
  std::mt19937 rng(13);
  std::uniform_int_distribution<int> pick(-20, 400);  // both parts, every chunk
  for (int step = 0; step < 20000; ++step) {
    const int n = pick(rng);
    if (rng() % 3 == 0) {
      EXPECT_EQ(t.Erase(n), ref.erase(n) == 1) << n;
    } else {
      t.Put(n, Rec{step});
      ref[n] = step;
    }
    if (step % 997 == 0) {
      ASSERT_EQ(t.size(), ref.size());
      std::map<int, int> seen;
      t.ForEach([&seen](int m, const Rec& r) { EXPECT_TRUE(seen.emplace(m, r.value).second); });
      ASSERT_EQ(seen, ref);
    }
  }
  for (int n = -20; n <= 400; ++n) {
    auto it = ref.find(n);
    const Rec* r = t.Find(n);
    ASSERT_EQ(r != nullptr, it != ref.end()) << n;
    if (r != nullptr) {
      EXPECT_EQ(r->value, it->second) << n;
    }
  }
}

// The instances' bounds (LocalWatches::LiveFiles: 2^20, Linux's default
// fs.nr_open; LinuxHost::KeptWatches: 2^14): the last indexed number and
// the first mapped one.
TEST(ByNumber, TheHostsBounds) {
  ByNumber<Rec, 1 << 20> live;
  live.Put((1 << 20) - 1, Rec{1});
  live.Put(1 << 20, Rec{2});
  EXPECT_EQ(live.table_for_test(), size_t{(1 << 20) / 64});
  EXPECT_EQ(live.chunks_for_test(), 1u);
  EXPECT_EQ(live.Find((1 << 20) - 1)->value, 1);
  EXPECT_EQ(live.Find(1 << 20)->value, 2);
  ByNumber<Rec, 1 << 14> kept;
  kept.Put((1 << 14) - 1, Rec{3});
  kept.Put(1 << 14, Rec{4});
  EXPECT_EQ(kept.table_for_test(), size_t{(1 << 14) / 64});
  EXPECT_EQ(kept.chunks_for_test(), 1u);
  EXPECT_EQ(kept.Find(1 << 14)->value, 4);
  EXPECT_TRUE(kept.Erase((1 << 14) - 1));
  EXPECT_EQ(kept.table_for_test(), 0u);
  EXPECT_EQ(kept.size(), 1u);
}

}  // namespace
}  // namespace evshim::shim
