// Personality and data model: runtime parameters of every codec.
#pragma once

#include <cstdint>
#include <string_view>

namespace evshim::abi {

enum class Personality : uint8_t { kIllumos, kFreebsd, kDragonfly, kOpenbsd };
enum class DataModel : uint8_t { kLp64, kIlp32 };

constexpr std::string_view PersonalityName(Personality p) {
  switch (p) {
    case Personality::kIllumos: return "illumos";
    case Personality::kFreebsd: return "freebsd";
    case Personality::kDragonfly: return "dragonfly";
    case Personality::kOpenbsd: return "openbsd";
  }
  return "?";
}

constexpr std::string_view DataModelName(DataModel m) {
  switch (m) {
    case DataModel::kLp64: return "lp64";
    case DataModel::kIlp32: return "ilp32";
  }
  return "?";
}

constexpr size_t PointerSize(DataModel m) { return m == DataModel::kLp64 ? 8 : 4; }

}  // namespace evshim::abi
