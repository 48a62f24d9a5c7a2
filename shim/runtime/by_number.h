// Records indexed by a descriptor number (LocalWatches' live files,
// LinuxHost's kept watches). Numbers are dense (open takes the lowest free
// one), so the numbers below `kIndexed` live in fixed chunks of `kChunk`
// records, indexed by number: no hashing, no heap node and no bucket per
// record. A chunk is allocated by its first record and freed with its last;
// the table of chunk pointers shrinks with its highest chunks, so a number
// once used does not keep its pointers forever. Other numbers (from
// `kIndexed` on, only with fs.nr_open raised; negative ones) go to a map, so
// a huge number never sizes the table. A record never moves: a pointer to
// it stays valid until it is erased.
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <unordered_map>
#include <vector>

namespace evshim::shim {

template <typename T, int kIndexed, int kChunk = 64>
class ByNumber {
  static_assert(kChunk > 0 && kChunk <= 64 && (kChunk & (kChunk - 1)) == 0,
                "a chunk's records are one bit each of a 64-bit mask");
  static_assert(kIndexed > 0 && kIndexed % kChunk == 0, "the index ends at a chunk's end");

 public:
  ByNumber() = default;
  ~ByNumber() {
    for (Chunk* c : table_) {
      if (c != Empty()) delete c;
    }
  }
  ByNumber(const ByNumber&) = delete;
  ByNumber& operator=(const ByNumber&) = delete;

  // Inline and short: callers find a record several times per call. The
  // table never reaches kIndexed's chunk, so one compare sends both a
  // number past the table and one past the index away; a missing chunk is
  // the shared empty one (no record), not a null to test.
  T* Find(int number) {
    const auto u = static_cast<uint32_t>(number);
    const size_t c = u / kChunk;
    if (c >= chunks_) [[unlikely]] return FindBeyond(number);
    Chunk* chunk = table_[c];
    const size_t i = u % kChunk;
    return (chunk->present >> i) & 1 ? &chunk->items[i] : nullptr;
  }
  const T* Find(int number) const { return const_cast<ByNumber*>(this)->Find(number); }

  // Enters `value` under `number`, or replaces the record there.
  T& Put(int number, const T& value) {
    const auto u = static_cast<uint32_t>(number);
    if (u >= static_cast<uint32_t>(kIndexed)) {
      auto [it, fresh] = beyond_.insert_or_assign(number, value);
      if (fresh) ++size_;
      return it->second;
    }
    const size_t c = u / kChunk;
    if (c >= table_.size()) {
      table_.resize(c + 1, Empty());
      chunks_ = table_.size();
    }
    if (table_[c] == Empty()) table_[c] = new Chunk;
    Chunk& chunk = *table_[c];
    const size_t i = u % kChunk;
    const uint64_t bit = uint64_t{1} << i;
    if ((chunk.present & bit) == 0) {
      chunk.present |= bit;
      ++size_;
    }
    chunk.items[i] = value;
    return chunk.items[i];
  }

  // Whether a record was there.
  bool Erase(int number) {
    const auto u = static_cast<uint32_t>(number);
    if (u >= static_cast<uint32_t>(kIndexed)) {
      const size_t gone = beyond_.erase(number);
      size_ -= gone;
      return gone != 0;
    }
    const size_t c = u / kChunk;
    if (c >= table_.size()) return false;
    Chunk& chunk = *table_[c];
    const size_t i = u % kChunk;
    const uint64_t bit = uint64_t{1} << i;
    if ((chunk.present & bit) == 0) return false;  // also the empty chunk's
    --size_;
    chunk.present &= ~bit;
    chunk.items[i] = T{};
    if (chunk.present == 0) {
      delete table_[c];
      table_[c] = Empty();
      while (!table_.empty() && table_.back() == Empty()) table_.pop_back();
      chunks_ = table_.size();
    }
    return true;
  }

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  // f(number, record): the indexed numbers in ascending order, then the
  // map's. `f` must not enter or erase records.
  template <typename F>
  void ForEach(F&& f) {
    for (size_t c = 0; c < table_.size(); ++c) {
      Chunk& chunk = *table_[c];
      for (uint64_t left = chunk.present; left != 0; left &= left - 1) {
        const int i = std::countr_zero(left);
        f(static_cast<int>(c * kChunk) + i, chunk.items[static_cast<size_t>(i)]);
      }
    }
    for (auto& [number, value] : beyond_) f(number, value);
  }
  template <typename F>
  void ForEach(F&& f) const {
    const_cast<ByNumber*>(this)->ForEach(
        [&f](int number, T& value) { f(number, static_cast<const T&>(value)); });
  }

  // Tests: the chunks allocated, and the table's length in chunks.
  size_t chunks_for_test() const {
    size_t n = 0;
    for (const Chunk* c : table_) n += c != Empty();
    return n;
  }
  size_t table_for_test() const { return table_.size(); }

 private:
  struct Chunk {
    uint64_t present = 0;  // bit i: items[i] holds a record
    std::array<T, kChunk> items{};
  };
  // Out of line: past the table (a number not held, or one of the map's).
  [[gnu::noinline]] T* FindBeyond(int number) {
    if (static_cast<uint32_t>(number) < static_cast<uint32_t>(kIndexed) || beyond_.empty()) return nullptr;
    auto it = beyond_.find(number);
    return it == beyond_.end() ? nullptr : &it->second;
  }
  // The chunk of no record, shared by the table's holes (never written).
  static Chunk* Empty() {
    static Chunk empty;
    return &empty;
  }
  std::vector<Chunk*> table_;  // Empty(): no record in that chunk
  size_t chunks_ = 0;          // table_.size(), read by Find
  std::unordered_map<int, T> beyond_;
  size_t size_ = 0;
};

}  // namespace evshim::shim
