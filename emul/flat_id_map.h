// A hash map from 64-bit ids to small values, stored in one array (open
// addressing, linear probing, deletion by backward shift): an entry costs
// its pair and the table's spare room, about 1.6 times the pair, where a
// std::unordered_map node costs a 16-byte-rounded heap chunk and a bucket
// (docs/design.md "Memory per watch"). For the per-watch indexes (knote by
// uid, knote by watch, the host's watches).
//
// Unlike std::unordered_map, an insertion or an erasure may move entries:
// an iterator or a reference into the map is valid only until the next
// change. Iteration order is unspecified. The id ~0 is reserved (a free slot).
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <utility>
#include <vector>

namespace evshim::emul {

template <typename V>
class FlatIdMap {
 public:
  using value_type = std::pair<uint64_t, V>;
  static constexpr uint64_t kFree = ~uint64_t{0};

  template <typename Slot>
  class Iter {
   public:
    Iter(Slot* at, Slot* end) : at_(at), end_(end) { Skip(); }
    Slot& operator*() const { return *at_; }
    Slot* operator->() const { return at_; }
    Iter& operator++() {
      ++at_;
      Skip();
      return *this;
    }
    bool operator==(const Iter& o) const { return at_ == o.at_; }

   private:
    friend class FlatIdMap;
    void Skip() {
      while (at_ != end_ && at_->first == kFree) ++at_;
    }
    Slot* at_;
    Slot* end_;
  };
  using iterator = Iter<value_type>;
  using const_iterator = Iter<const value_type>;

  iterator begin() { return iterator(slots_.data(), slots_.data() + slots_.size()); }
  iterator end() { return iterator(slots_.data() + slots_.size(), slots_.data() + slots_.size()); }
  const_iterator begin() const { return const_iterator(slots_.data(), slots_.data() + slots_.size()); }
  const_iterator end() const {
    return const_iterator(slots_.data() + slots_.size(), slots_.data() + slots_.size());
  }

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  size_t slot_count() const { return slots_.size(); }  // the table's room (tests)

  iterator find(uint64_t id) {
    const size_t at = Locate(id);
    return at == kNone ? end() : iterator(&slots_[at], slots_.data() + slots_.size());
  }
  const_iterator find(uint64_t id) const {
    const size_t at = Locate(id);
    return at == kNone ? end() : const_iterator(&slots_[at], slots_.data() + slots_.size());
  }
  size_t count(uint64_t id) const { return Locate(id) == kNone ? 0 : 1; }
  V& at(uint64_t id) {
    const size_t a = Locate(id);
    if (a == kNone) throw std::out_of_range("FlatIdMap::at");
    return slots_[a].second;
  }
  const V& at(uint64_t id) const {
    const size_t a = Locate(id);
    if (a == kNone) throw std::out_of_range("FlatIdMap::at");
    return slots_[a].second;
  }

  // As std::unordered_map::emplace: no change if `id` is present.
  std::pair<iterator, bool> emplace(uint64_t id, V value) {
    if (id == kFree) return {end(), false};  // reserved: never an id here
    if (const size_t a = Locate(id); a != kNone) return {Here(a), false};
    if ((size_ + 1) * 8 > slots_.size() * 7) Grow();
    size_t a = Slot(id);
    while (slots_[a].first != kFree) a = (a + 1) & Mask();
    slots_[a] = value_type(id, std::move(value));
    ++size_;
    return {Here(a), true};
  }
  V& operator[](uint64_t id) { return emplace(id, V{}).first->second; }
  // `id` is not in the map (nor kFree): the caller knows it (a uid just
  // made). Inserted without emplace's look-up and returned iterator.
  void insert_new(uint64_t id, V value) {
    if ((size_ + 1) * 8 > slots_.size() * 7) [[unlikely]] Grow();
    size_t a = Slot(id);
    while (slots_[a].first != kFree) a = (a + 1) & Mask();
    slots_[a] = value_type(id, std::move(value));
    ++size_;
  }

  size_t erase(uint64_t id) {
    size_t hole = Locate(id);
    if (hole == kNone) return 0;
    // Backward shift: each following entry of the run moves into the hole
    // unless its home slot lies cyclically in (hole, its slot].
    for (size_t next = (hole + 1) & Mask(); slots_[next].first != kFree; next = (next + 1) & Mask()) {
      const size_t home = Slot(slots_[next].first);
      const bool stays = hole <= next ? (hole < home && home <= next) : (hole < home || home <= next);
      if (stays) continue;
      slots_[hole] = std::move(slots_[next]);
      hole = next;
    }
    slots_[hole] = value_type(kFree, V{});
    --size_;
    // An emptied map gives its room back, but for the smallest table: a
    // map emptied and filled again at each call (one EV_ONESHOT knote, its
    // watch) would allocate and free it every time.
    if (size_ == 0 && slots_.size() > kSmallest) slots_ = {};
    return 1;
  }
  // Entries may move: the iterator is not valid afterwards.
  void erase(iterator it) { erase(it->first); }

 private:
  static constexpr size_t kNone = ~size_t{0};
  static constexpr size_t kSmallest = 16;  // Grow's first table
  size_t Mask() const { return slots_.size() - 1; }
  size_t Slot(uint64_t id) const {
    // Fibonacci hashing: ids counting up spread over the table.
    return static_cast<size_t>((id * 0x9e3779b97f4a7c15ULL) >> 32) & Mask();
  }
  iterator Here(size_t a) { return iterator(&slots_[a], slots_.data() + slots_.size()); }
  size_t Locate(uint64_t id) const {
    if (slots_.empty() || id == kFree) return kNone;
    for (size_t a = Slot(id);; a = (a + 1) & Mask()) {
      if (slots_[a].first == id) return a;
      if (slots_[a].first == kFree) return kNone;
    }
  }
  void Grow() {
    std::vector<value_type> old;
    old.swap(slots_);
    slots_.assign(old.empty() ? kSmallest : old.size() * 2, value_type(kFree, V{}));
    for (value_type& e : old) {
      if (e.first == kFree) continue;
      size_t a = Slot(e.first);
      while (slots_[a].first != kFree) a = (a + 1) & Mask();
      slots_[a] = std::move(e);
    }
  }

  std::vector<value_type> slots_;
  size_t size_ = 0;
};

}  // namespace evshim::emul
