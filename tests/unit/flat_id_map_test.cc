// FlatIdMap (emul/flat_id_map.h): the per-watch indexes' hash map. Checked
// against std::unordered_map over random insertions (emplace, and
// insert_new for an id known absent) and erasures, where
// runs of colliding ids wrap around the table's end (the backward shift of
// an erasure must keep every remaining id findable).
#include "emul/flat_id_map.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <unordered_map>

namespace evshim::emul {
namespace {

void ExpectSame(const FlatIdMap<uint64_t>& flat, const std::unordered_map<uint64_t, uint64_t>& ref) {
  ASSERT_EQ(flat.size(), ref.size());
  for (const auto& [id, v] : ref) {
    auto it = flat.find(id);
    ASSERT_NE(it, flat.end()) << id;
    EXPECT_EQ(it->second, v) << id;
  }
  size_t seen = 0;
  for (const auto& [id, v] : flat) {
    ASSERT_EQ(ref.count(id), 1u) << id;
    EXPECT_EQ(ref.at(id), v);
    ++seen;
  }
  EXPECT_EQ(seen, ref.size());
}

TEST(FlatIdMap, MatchesUnorderedMapUnderRandomChanges) {
  std::mt19937_64 rng(15);
  for (uint64_t range : {20ULL, 200ULL, 5000ULL}) {
    FlatIdMap<uint64_t> flat;
    std::unordered_map<uint64_t, uint64_t> ref;
    for (int step = 0; step < 20000; ++step) {
      // Ids as the engines make them: counting up, some with a high tag bit.
      const uint64_t id = (rng() % range + 1) | ((rng() & 1) ? (uint64_t{1} << 47) : 0);
      if (rng() % 3 == 0) {
        EXPECT_EQ(flat.erase(id), ref.erase(id)) << id;
      } else {
        const uint64_t v = rng();
        if (ref.count(id) == 0 && rng() % 2 == 0) {
          flat.insert_new(id, v);  // known absent: no look-up
          ref.emplace(id, v);
        } else {
          EXPECT_EQ(flat.emplace(id, v).second, ref.emplace(id, v).second) << id;
        }
      }
      if (step % 997 == 0) ExpectSame(flat, ref);
    }
    ExpectSame(flat, ref);
    for (auto it = ref.begin(); it != ref.end(); it = ref.erase(it)) EXPECT_EQ(flat.erase(it->first), 1u);
    EXPECT_TRUE(flat.empty());
    EXPECT_EQ(flat.begin(), flat.end());
  }
}

// insert_new alone (Kqueues::Register's uids) grows the table as emplace
// does: never fuller than 7/8, every id found.
TEST(FlatIdMap, InsertNewGrowsAsEmplaceDoes) {
  FlatIdMap<uint64_t> flat;
  for (uint64_t id = 1; id <= 1000; ++id) {
    flat.insert_new(id | (uint64_t{1} << 63), id);
    ASSERT_EQ(flat.size(), id);
    ASSERT_LE(flat.size() * 8, flat.slot_count() * 7) << id;
  }
  for (uint64_t id = 1; id <= 1000; ++id) EXPECT_EQ(flat.at(id | (uint64_t{1} << 63)), id);
}

TEST(FlatIdMap, IndexingAndAt) {
  FlatIdMap<uint64_t> flat;
  flat[7] = 70;
  flat[7] += 1;
  EXPECT_EQ(flat.at(7), 71u);
  EXPECT_EQ(flat.count(8), 0u);
  EXPECT_THROW(flat.at(8), std::out_of_range);
  // The free slot's id is never stored.
  EXPECT_FALSE(flat.emplace(FlatIdMap<uint64_t>::kFree, 1).second);
  EXPECT_EQ(flat.size(), 1u);
}

// A map emptied and filled again at each call (the kqueue's knote and watch
// indexes under EV_ADD|EV_ONESHOT on a ready descriptor, bench `fdwait`)
// keeps its smallest table instead of allocating it every time; a larger
// one emptied gives its room back.
TEST(FlatIdMap, EmptiedSmallestTableIsKeptALargerOneGivenBack) {
  FlatIdMap<uint64_t> flat;
  EXPECT_EQ(flat.slot_count(), 0u);
  flat[1] = 1;
  const size_t smallest = flat.slot_count();
  EXPECT_GT(smallest, 0u);
  flat.erase(1);
  EXPECT_EQ(flat.slot_count(), smallest);
  flat[2] = 2;  // no new table
  EXPECT_EQ(flat.slot_count(), smallest);
  EXPECT_EQ(flat.at(2), 2u);
  for (uint64_t id = 10; id < 1000; ++id) flat[id] = id;
  EXPECT_GT(flat.slot_count(), smallest);
  flat.erase(2);
  for (uint64_t id = 10; id < 1000; ++id) flat.erase(id);
  EXPECT_TRUE(flat.empty());
  EXPECT_EQ(flat.slot_count(), 0u);
}

}  // namespace
}  // namespace evshim::emul
