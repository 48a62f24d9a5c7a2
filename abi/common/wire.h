// Explicit-offset readers and writers for foreign wire structs.
//
// Target bytes are never cast to a struct: every field is read at the offset
// the layout tables (and their static_asserts) give, little-endian.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

namespace evshim::abi {

// One field of a foreign wire struct, as its layout table gives it: where it
// starts, how many bytes it has (1, 2, 4 or 8; 0: the struct has no such
// field) and whether its C type is signed (read sign-extended).
struct WireField {
  size_t offset = 0;
  size_t width = 0;
  bool is_signed = false;
  constexpr size_t end() const { return offset + width; }
};
constexpr WireField Unsigned(size_t offset, size_t width) { return {offset, width, false}; }
constexpr WireField Signed(size_t offset, size_t width) { return {offset, width, true}; }

class ByteReader {
 public:
  explicit ByteReader(std::span<const std::byte> bytes) : bytes_(bytes) {}
  template <typename T>
  T Get(size_t offset) const {
    T v{};
    std::memcpy(&v, bytes_.data() + offset, sizeof(T));
    return v;
  }
  uint64_t GetPtr(size_t offset, size_t width) const {
    return width == 8 ? Get<uint64_t>(offset) : Get<uint32_t>(offset);
  }
  int64_t GetLong(size_t offset, size_t width) const {
    return width == 8 ? Get<int64_t>(offset) : Get<int32_t>(offset);
  }
  // The field's value widened to 64 bits: sign-extended if its type is signed.
  // Always inline: with a constant layout (the kevent codecs' shapes) the
  // switch folds to one load; link-time optimization had left it out of
  // line in the kevent handler, a call and a switch per field.
  [[gnu::always_inline]] uint64_t GetField(const WireField& f) const {
    switch (f.width) {
      case 1: return f.is_signed ? Widen(Get<int8_t>(f.offset)) : Get<uint8_t>(f.offset);
      case 2: return f.is_signed ? Widen(Get<int16_t>(f.offset)) : Get<uint16_t>(f.offset);
      case 4: return f.is_signed ? Widen(Get<int32_t>(f.offset)) : Get<uint32_t>(f.offset);
      case 8: return Get<uint64_t>(f.offset);
      default: return 0;  // absent
    }
  }
  size_t size() const { return bytes_.size(); }

 private:
  static uint64_t Widen(int64_t v) { return static_cast<uint64_t>(v); }
  std::span<const std::byte> bytes_;
};

class ByteWriter {
 public:
  explicit ByteWriter(std::span<std::byte> bytes) : bytes_(bytes) {}
  template <typename T>
  void Put(size_t offset, T v) {
    std::memcpy(bytes_.data() + offset, &v, sizeof(T));
  }
  // Pointer-sized field: truncates to 32 bits for ILP32, as the foreign kernel does.
  void PutPtr(size_t offset, size_t width, uint64_t v) {
    if (width == 8) {
      Put<uint64_t>(offset, v);
    } else {
      Put<uint32_t>(offset, static_cast<uint32_t>(v));
    }
  }
  // The low `f.width` bytes of `v` (the foreign kernel truncates alike).
  void PutField(const WireField& f, uint64_t v) {
    switch (f.width) {
      case 1: Put<uint8_t>(f.offset, static_cast<uint8_t>(v)); break;
      case 2: Put<uint16_t>(f.offset, static_cast<uint16_t>(v)); break;
      case 4: Put<uint32_t>(f.offset, static_cast<uint32_t>(v)); break;
      case 8: Put<uint64_t>(f.offset, v); break;
      default: break;  // absent
    }
  }
  void PutLong(size_t offset, size_t width, int64_t v) {
    if (width == 8) {
      Put<int64_t>(offset, v);
    } else {
      Put<int32_t>(offset, static_cast<int32_t>(v));
    }
  }

 private:
  std::span<std::byte> bytes_;
};

}  // namespace evshim::abi
