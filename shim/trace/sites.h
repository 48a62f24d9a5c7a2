// Where a traced call came from: the syscall instruction (decoded with
// Capstone from the bytes just before seccomp_data.instruction_pointer) and
// the first return address on the stack that belongs to another object
// (its call instruction checked with Capstone), both as object+offset from
// /proc/PID/maps.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "abi/common/call.h"
#include "abi/common/data_model.h"

namespace evshim::shim::trace {

struct Location {
  uint64_t addr = 0;
  std::string object;  // basename of the mapped file, or "[vdso]", "[anon]"
  uint64_t offset = 0; // file offset of `addr` in `object`
  std::string Text() const;  // "libc.so.6+0x11ba5d"
};

struct Site {
  Location at;          // the syscall instruction
  std::string insn;     // "syscall", "int 0x80", "sysenter"
  std::optional<Location> caller;  // the code that called into `at.object`
};

// One entry of /proc/PID/maps.
struct Mapping {
  uint64_t start = 0, end = 0, file_offset = 0;
  bool exec = false;
  std::string path;
};
std::vector<Mapping> ParseMaps(std::string_view text);
std::optional<Location> Locate(std::span<const Mapping> maps, uint64_t addr);

// Decodes the one x86 instruction in `bytes` at `addr`; "" if it is not one
// instruction of exactly bytes.size() bytes.
std::string DecodeOne(abi::DataModel model, uint64_t addr, std::span<const std::byte> bytes);

class SiteFinder {
 public:
  SiteFinder();
  ~SiteFinder();
  SiteFinder(const SiteFinder&) = delete;
  SiteFinder& operator=(const SiteFinder&) = delete;

  // `ip` is the address after the syscall instruction; `memory` reads the
  // calling thread, which must still be stopped in the call.
  std::optional<Site> Find(pid_t pid, pid_t tid, abi::DataModel model, uint64_t ip,
                           abi::GuestMemory& memory);

 private:
  struct Handles;
  Handles* cs_;
};

}  // namespace evshim::shim::trace
