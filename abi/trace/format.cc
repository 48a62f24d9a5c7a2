#include "abi/trace/format.h"

#include <fmt/format.h>

#include <cstring>

namespace evshim::abi::trace {

bool CallView::Read(uint64_t addr, std::span<std::byte> out) const {
  if (memory_ == nullptr || addr == 0) return false;
  return memory_->Read(addr, out).ok();
}

bool CallView::Written(uint64_t addr, std::span<std::byte> out) const {
  // The latest write wins; a region must be covered by one write.
  for (auto it = writes_.rbegin(); it != writes_.rend(); ++it) {
    if (addr >= it->addr && addr - it->addr <= it->bytes.size() &&
        out.size() <= it->bytes.size() - (addr - it->addr)) {
      std::memcpy(out.data(), it->bytes.data() + (addr - it->addr), out.size());
      return true;
    }
  }
  return false;
}

std::string Hex(uint64_t v) { return v == 0 ? std::string("0") : fmt::format("{:#x}", v); }

std::string Pointer(uint64_t v) { return v == 0 ? std::string("NULL") : Hex(v); }

std::string Flags(uint32_t v, std::span<const FlagName> names) {
  if (v == 0) return "0";
  std::string out;
  uint32_t left = v;
  for (const FlagName& f : names) {
    if (f.bit != 0 && (left & f.bit) == f.bit) {
      if (!out.empty()) out += '|';
      out += f.name;
      left &= ~f.bit;
    }
  }
  if (left != 0) {
    if (!out.empty()) out += '|';
    out += Hex(left);
  }
  return out;
}

std::string Enum(int64_t v, std::span<const ValueName> names) {
  for (const ValueName& n : names) {
    if (n.value == v) return std::string(n.name);
  }
  return fmt::format("{}", v);
}

std::string Timespec(int64_t sec, int64_t nsec) {
  if (sec < 0 || nsec < 0 || nsec >= 1'000'000'000) return fmt::format("{{tv_sec={}, tv_nsec={}}}", sec, nsec);
  return fmt::format("{{{}.{:09}}}", sec, nsec);
}

std::string_view ErrnoName(int e) {
  const char* n = strerrorname_np(e);
  return n != nullptr ? std::string_view(n) : std::string_view("E?");
}

std::string_view ErrnoText(int e) {
  const char* d = strerrordesc_np(e);
  return d != nullptr ? std::string_view(d) : std::string_view("Unknown error");
}

std::string ErrorText(int e) {
  return fmt::format("-1 {} ({})", ErrnoName(e), ErrnoText(e));
}

void DefaultResult(const Answer& answer, ResultText& out) {
  if (answer.error != 0) {
    out.text = ErrorText(answer.error);
    out.failed = true;
    out.errname = ErrnoName(answer.error);
  } else {
    out.text = fmt::format("{}", answer.value);
  }
}

namespace {

constexpr std::string_view kArgNames[6] = {"arg0", "arg1", "arg2", "arg3", "arg4", "arg5"};

void GenericEnter(const CallView& call, CallText& out) {
  for (int i = 0; i < 6; ++i) out.args.push_back({kArgNames[i], Hex(call.args().Raw(i)), false});
}

void GenericExit(const CallView&, const CallText&, const Answer& answer, ResultText& out) {
  DefaultResult(answer, out);
}

}  // namespace

const Formatter kGenericFormatter{&GenericEnter, &GenericExit, {}};

}  // namespace evshim::abi::trace
