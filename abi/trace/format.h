// How a foreign call is shown by `evshim trace`: the formatter hook each
// personality plugs into the syscall table, and the helpers they share.
//
// Pure: formatters never make system calls. At entry they may read the
// caller's memory through CallView::Read (inputs: timeouts, change lists); at
// exit they see only what the handler reported writing (CallView::Written),
// never the target's memory, so what is shown is what the call produced.
// Tracing observes; it never decides (docs/trace.md "Design").
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "abi/common/args.h"
#include "abi/common/call.h"
#include "abi/common/data_model.h"

namespace evshim::abi::trace {

// One argument as shown. `name` is stable (it is the JSON "args" name);
// `output` marks an argument the call fills in: it is shown at exit,
// strace style, and a blocked call's first line stops before it.
struct Arg {
  std::string_view name;
  std::string value;
  bool output = false;
};

// The call as decoded at entry: "port_associate", and its arguments.
struct CallText {
  std::string name;
  std::vector<Arg> args;
};

// A region of the caller's memory the handler wrote (reported by the transport).
struct Write {
  uint64_t addr = 0;
  std::vector<std::byte> bytes;
};

// What the caller was answered, in the Linux convention the transport uses.
struct Answer {
  int64_t value = 0;
  int error = 0;  // host errno; 0 = success
};

// The result as shown at exit.
struct ResultText {
  std::string text;          // "0", "-1 ETIME (Timer expired)", "0 (nget=2)"
  bool failed = false;       // the program sees a failure (counted by -c)
  std::string_view errname;  // the errno the program sees ("ETIME"), or empty
  // Values for arguments marked `output` (index into CallText::args).
  std::vector<std::pair<size_t, std::string>> outputs;
};

class CallView {
 public:
  CallView(Personality p, DataModel m, const SyscallArgs& args, GuestMemory* memory,
           std::span<const Write> writes)
      : personality_(p), model_(m), args_(args), memory_(memory), writes_(writes) {}

  Personality personality() const { return personality_; }
  DataModel model() const { return model_; }
  const SyscallArgs& args() const { return args_; }
  size_t pointer_size() const { return PointerSize(model_); }

  // Entry only: reads the caller's memory. False when unreadable or unavailable.
  bool Read(uint64_t addr, std::span<std::byte> out) const;
  // Exit only: the bytes the call wrote at [addr, addr + out.size()), if it
  // wrote all of them.
  bool Written(uint64_t addr, std::span<std::byte> out) const;

 private:
  Personality personality_;
  DataModel model_;
  const SyscallArgs& args_;
  GuestMemory* memory_;
  std::span<const Write> writes_;
};

// A personality's formatter, referenced from its SyscallEntry (one per table
// entry; several entries may share one). Both functions are required.
struct Formatter {
  // Decodes the call at entry: its name (a multiplexed call such as portfs is
  // named by its opcode: "port_getn") and symbolic arguments.
  void (*enter)(const CallView& call, CallText& out);
  // Decodes the result and the outputs at exit.
  void (*exit)(const CallView& call, const CallText& entered, const Answer& answer, ResultText& out);
  // Every name `enter` can produce (for `-e NAME` validation and the docs).
  std::span<const std::string_view> names;
};

// --- shared helpers for formatters ---

struct FlagName {
  uint32_t bit;
  std::string_view name;
};
struct ValueName {
  int64_t value;
  std::string_view name;
};

// "0x2a"; zero is "0".
std::string Hex(uint64_t v);
// A pointer: "NULL" or "0x7ffd1234".
std::string Pointer(uint64_t v);
// "POLLIN|POLLOUT", unknown bits as "|0x1000", zero as "0".
std::string Flags(uint32_t v, std::span<const FlagName> names);
// The value's name, or the value in decimal.
std::string Enum(int64_t v, std::span<const ValueName> names);
// "{1.500000000}" (seconds.nanoseconds); an out-of-range nsec is shown raw.
std::string Timespec(int64_t sec, int64_t nsec);
// Host errno names: "ETIME" / "Timer expired". Unknown: "E123" / "Unknown error".
std::string_view ErrnoName(int e);
std::string_view ErrnoText(int e);
// "-1 ETIME (Timer expired)".
std::string ErrorText(int e);
// The default result: the value in decimal, or the error.
void DefaultResult(const Answer& answer, ResultText& out);

// The formatter used when an entry has none: the table's name, raw arguments.
extern const Formatter kGenericFormatter;

}  // namespace evshim::abi::trace
