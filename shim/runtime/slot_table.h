// A table of per-watch records addressed by the watch's id, where the id
// names the record's slot (docs/design.md "Memory per watch"): a record
// costs its own bytes and a few more (`Entry`), with no hash table and no
// heap chunk of its own, where a FlatIdMap entry costs about 1.6 times its
// pair and a std::unordered_map node a chunk and a bucket.
//
// An id is `tag | generation << 32 | slot`: the low 32 bits are the slot,
// the high half is stored with the record and compared at each look-up, so
// an id whose record was erased finds nothing, even after its slot was
// reused (the generation counts the slot's uses, kGenerationBits wide; an
// id stale for that many reuses of its slot would alias, which no caller
// keeps that long: a host drops an id with its watch). NextId() chooses
// the id of the next record; Insert() also takes an id a caller chose
// (tests), as long as its slot is free and below kMaxSlots.
//
// Records live in chunks of kChunkSlots that never move (a T* stays valid
// until its record is erased). The table holds as many slots as the most
// records it held at once, plus a 4-byte free-slot entry each; it gives
// everything back when it empties. The slots come from the host's own
// counting, never from a guest's value.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <vector>

namespace evshim::shim {

template <typename T>
class SlotTable {
 public:
  static constexpr int kGenerationBits = 14;
  static constexpr uint32_t kMaxSlots = 1u << 30;

  // The id the next Insert should take, with `tag` (bits 46 to 62, which
  // the generation never reaches): the most recently freed slot, else a
  // new one, with the slot's next generation.
  uint64_t NextId(uint64_t tag) {
    while (!free_.empty() && Used(free_.back())) free_.pop_back();  // taken by an explicit Insert
    const uint32_t slot = free_.empty() ? handed_ : free_.back();
    uint32_t gen = slot < fresh_ ? ((EntryAt(slot).high & kGenerationMask) + 1) & kGenerationMask : 1;
    if (gen == 0) gen = 1;
    return tag | (static_cast<uint64_t>(gen) << 32) | slot;
  }

  // A default record under `id`; nullptr if the slot is taken or out of
  // range, or bit 63 is set.
  T* Insert(uint64_t id) {
    const uint64_t slot = id & 0xffffffffu;
    if (slot >= kMaxSlots || (id >> 63) != 0) return nullptr;
    while (fresh_ <= slot) Grow();
    Entry& e = EntryAt(static_cast<uint32_t>(slot));
    if (e.used) return nullptr;
    if (!free_.empty() && free_.back() == slot) free_.pop_back();
    // Slots skipped by an id chosen past the ones handed out are free.
    for (; handed_ < slot; ++handed_) free_.push_back(handed_);
    if (handed_ == slot) ++handed_;
    e.value = T{};
    e.high = static_cast<uint32_t>(id >> 32) & 0x7fffffffu;
    e.used = 1;
    ++size_;
    return &e.value;
  }

  T* Find(uint64_t id) {
    const uint64_t slot = id & 0xffffffffu;
    if (slot >= fresh_) return nullptr;
    Entry& e = EntryAt(static_cast<uint32_t>(slot));
    return e.used && (id >> 63) == 0 && static_cast<uint32_t>(e.high) == static_cast<uint32_t>(id >> 32) ? &e.value : nullptr;
  }
  const T* Find(uint64_t id) const { return const_cast<SlotTable*>(this)->Find(id); }
  T& at(uint64_t id) {
    T* v = Find(id);
    if (v == nullptr) throw std::out_of_range("SlotTable::at");
    return *v;
  }

  bool Erase(uint64_t id) {
    if (Find(id) == nullptr) return false;
    const auto slot = static_cast<uint32_t>(id & 0xffffffffu);
    Entry& e = EntryAt(slot);
    e.value = T{};
    e.used = 0;  // `high` stays: the slot's next generation follows it
    --size_;
    if (size_ == 0) {
      std::vector<std::unique_ptr<Chunk>>().swap(chunks_);  // an emptied table gives its room back
      std::vector<uint32_t>().swap(free_);
      fresh_ = 0;
      handed_ = 0;
    } else {
      free_.push_back(slot);
    }
    return true;
  }

  // For records linked to each other by slot (4 bytes where an id takes 8):
  // the slot of an id, and the record at a used slot and its id.
  static uint32_t SlotOf(uint64_t id) { return static_cast<uint32_t>(id); }
  T& AtSlot(uint32_t slot) { return EntryAt(slot).value; }
  uint64_t IdAt(uint32_t slot) { return (static_cast<uint64_t>(EntryAt(slot).high) << 32) | slot; }

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  // f(id, T&) for every record.
  template <typename F>
  void ForEach(F&& f) {
    for (uint32_t slot = 0; slot < handed_; ++slot) {
      Entry& e = EntryAt(slot);
      if (e.used) f((static_cast<uint64_t>(e.high) << 32) | slot, e.value);
    }
  }

 private:
  static constexpr uint32_t kGenerationMask = (1u << kGenerationBits) - 1;
  static constexpr uint32_t kChunkSlots = 64;
  // The record and 4 bytes: the id's high half below bit 63 (tag and
  // generation; a tag stays below bit 63) and whether the slot is in use.
  struct Entry {
    T value{};
    uint32_t high : 31 = 0;
    uint32_t used : 1 = 0;
  };
  struct Chunk {
    std::array<Entry, kChunkSlots> entries;
  };
  Entry& EntryAt(uint32_t slot) { return chunks_[slot / kChunkSlots]->entries[slot % kChunkSlots]; }
  bool Used(uint32_t slot) { return slot < fresh_ && EntryAt(slot).used; }
  void Grow() {
    chunks_.push_back(std::make_unique<Chunk>());
    fresh_ += kChunkSlots;
  }

  std::vector<std::unique_ptr<Chunk>> chunks_;
  std::vector<uint32_t> free_;  // freed slots, the most recent last
  uint32_t fresh_ = 0;          // slots made so far (whole chunks)
  uint32_t handed_ = 0;         // slots below this were used at some time (or are in free_)
  size_t size_ = 0;
};

}  // namespace evshim::shim
