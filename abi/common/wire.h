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
  size_t size() const { return bytes_.size(); }

 private:
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
