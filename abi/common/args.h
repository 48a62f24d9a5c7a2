// Syscall arguments read through accessors that know the data model.
//
// An ILP32 process's arguments arrive zero-extended in 64-bit registers, and a
// 64-bit process may leave junk in the upper half of an `int` argument. Every
// accessor truncates to the C type the foreign prototype declares.
#pragma once

#include <array>
#include <cstdint>

#include "abi/common/data_model.h"

namespace evshim::abi {

class SyscallArgs {
 public:
  SyscallArgs(DataModel model, const std::array<uint64_t, 6>& raw) : model_(model), raw_(raw) {}

  DataModel model() const { return model_; }
  uint64_t Raw(int i) const { return raw_[i]; }
  // C `int`: low 32 bits, sign-extended.
  int32_t Int(int i) const { return static_cast<int32_t>(static_cast<uint32_t>(raw_[i])); }
  // C `unsigned int` / `uint_t`.
  uint32_t Uint(int i) const { return static_cast<uint32_t>(raw_[i]); }
  // C `long` / `intptr_t`: the data model's width, sign-extended.
  int64_t Long(int i) const {
    return model_ == DataModel::kLp64 ? static_cast<int64_t>(raw_[i]) : static_cast<int64_t>(Int(i));
  }
  // C `unsigned long` / `uintptr_t` / pointers: the data model's width, zero-extended.
  uint64_t Ulong(int i) const { return model_ == DataModel::kLp64 ? raw_[i] : (raw_[i] & 0xffffffffULL); }
  uint64_t Ptr(int i) const { return Ulong(i); }

 private:
  DataModel model_;
  std::array<uint64_t, 6> raw_;
};

}  // namespace evshim::abi
