// A call's scratch list: room for N elements inside the object (on the
// stack), the heap beyond.
#pragma once

#include <cstddef>
#include <cstring>
#include <memory>
#include <new>
#include <span>
#include <type_traits>

namespace evshim::abi {

// Elements are trivially copyable: they move by memcpy, need no
// destruction, and `resize` leaves the new ones unwritten (the caller fills
// them; a call that needs none zeroes nothing). A spilled buffer keeps its
// heap block when it shrinks, so a reused buffer allocates at most once.
template <typename T, size_t N>
class SmallBuffer {
  static_assert(std::is_trivially_copyable_v<T> && std::is_trivially_destructible_v<T>);
  static_assert(N > 0);
  static_assert(alignof(T) <= __STDCPP_DEFAULT_NEW_ALIGNMENT__);

 public:
  SmallBuffer() = default;
  SmallBuffer(const SmallBuffer&) = delete;
  SmallBuffer& operator=(const SmallBuffer&) = delete;
  ~SmallBuffer() {
    if (data_ != Inline()) ::operator delete(data_);
  }

  // The first min(size(), n) elements are kept; the others are unwritten.
  void resize(size_t n) {
    if (n > capacity_) Grow(n);
    size_ = n;
  }

  T* data() { return data_; }
  const T* data() const { return data_; }
  size_t size() const { return size_; }
  size_t capacity() const { return capacity_; }
  bool on_heap() const { return data_ != Inline(); }
  T& operator[](size_t i) { return data_[i]; }
  const T& operator[](size_t i) const { return data_[i]; }
  std::span<T> span() { return {data_, size_}; }

 private:
  T* Inline() { return std::launder(reinterpret_cast<T*>(inline_)); }
  const T* Inline() const { return std::launder(reinterpret_cast<const T*>(inline_)); }

  void Grow(size_t n) {
    // At least double: a list growing chunk by chunk reallocates rarely.
    const size_t cap = n > 2 * capacity_ ? n : 2 * capacity_;
    T* block = static_cast<T*>(::operator new(cap * sizeof(T)));
    if (size_ > 0) std::memcpy(static_cast<void*>(block), data_, size_ * sizeof(T));
    if (data_ != Inline()) ::operator delete(data_);
    data_ = block;
    capacity_ = cap;
  }

  alignas(T) std::byte inline_[N * sizeof(T)];
  T* data_ = Inline();
  size_t size_ = 0;
  size_t capacity_ = N;
};

}  // namespace evshim::abi
