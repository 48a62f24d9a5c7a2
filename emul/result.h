// Guest-visible outcomes.
//
// An `Errno` is what the foreign program will see (host errno numbering; the
// abi encoder turns it into the return convention). A supervisor fault (lost
// transport, unreadable memory for reasons that are not the guest's) is a
// different type, in shim/, and never travels through here.
#pragma once

#include <cerrno>
#include <utility>
#include <variant>

namespace evshim::emul {

struct Errno {
  int value;
  friend bool operator==(Errno, Errno) = default;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Errno e) : v_(e) {}                 // NOLINT
  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  const T& value() const& { return std::get<0>(v_); }
  T& value() & { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  const T& operator*() const& { return value(); }
  T& operator*() & { return value(); }
  const T* operator->() const { return &value(); }
  T* operator->() { return &value(); }
  Errno error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Errno> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Errno e) : err_(e.value) {}  // NOLINT
  bool ok() const { return err_ == 0; }
  explicit operator bool() const { return ok(); }
  Errno error() const { return Errno{err_}; }

 private:
  int err_ = 0;
};

inline Result<void> Ok() { return {}; }

}  // namespace evshim::emul

// Propagates a guest errno from an expression yielding Result<...>.
#define EVSHIM_TRY(expr)                       \
  do {                                         \
    auto evshim_try_r_ = (expr);               \
    if (!evshim_try_r_.ok()) return evshim_try_r_.error(); \
  } while (0)
