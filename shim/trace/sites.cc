#include "shim/trace/sites.h"

#include <capstone/capstone.h>
#include <fmt/format.h>

#include <array>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

namespace evshim::shim::trace {

std::string Location::Text() const { return fmt::format("{}+{:#x}", object, offset); }

std::vector<Mapping> ParseMaps(std::string_view text) {
  std::vector<Mapping> maps;
  std::istringstream in{std::string(text)};
  std::string line;
  while (std::getline(in, line)) {
    unsigned long long start = 0, end = 0, off = 0;
    char perms[8] = {};
    int path_at = -1;
    if (std::sscanf(line.c_str(), "%llx-%llx %7s %llx %*s %*s %n", &start, &end, perms, &off, &path_at) < 4) {
      continue;
    }
    Mapping m;
    m.start = start;
    m.end = end;
    m.file_offset = off;
    m.exec = perms[2] == 'x';
    if (path_at > 0 && static_cast<size_t>(path_at) < line.size()) m.path = line.substr(static_cast<size_t>(path_at));
    maps.push_back(std::move(m));
  }
  return maps;
}

std::optional<Location> Locate(std::span<const Mapping> maps, uint64_t addr) {
  for (const Mapping& m : maps) {
    if (addr < m.start || addr >= m.end) continue;
    Location l;
    l.addr = addr;
    if (m.path.empty()) {
      l.object = "[anon]";
      l.offset = addr - m.start;
    } else if (m.path[0] == '[') {
      l.object = m.path;
      l.offset = addr - m.start;
    } else {
      size_t slash = m.path.rfind('/');
      l.object = slash == std::string::npos ? m.path : m.path.substr(slash + 1);
      l.offset = addr - m.start + m.file_offset;
    }
    return l;
  }
  return std::nullopt;
}

struct SiteFinder::Handles {
  csh h64 = 0, h32 = 0;
  bool ok64 = false, ok32 = false;
};

namespace {

std::string Disasm(csh h, uint64_t addr, std::span<const std::byte> bytes) {
  cs_insn* insn = nullptr;
  size_t n = cs_disasm(h, reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), addr, 1, &insn);
  std::string out;
  if (n == 1 && insn[0].size == bytes.size()) {
    out = insn[0].mnemonic;
    if (insn[0].op_str[0] != '\0') out += std::string(" ") + insn[0].op_str;
  }
  if (n > 0) cs_free(insn, n);
  return out;
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace

std::string DecodeOne(abi::DataModel model, uint64_t addr, std::span<const std::byte> bytes) {
  csh h = 0;
  if (cs_open(CS_ARCH_X86, model == abi::DataModel::kLp64 ? CS_MODE_64 : CS_MODE_32, &h) != CS_ERR_OK) return "";
  std::string s = Disasm(h, addr, bytes);
  cs_close(&h);
  return s;
}

SiteFinder::SiteFinder() : cs_(new Handles) {
  cs_->ok64 = cs_open(CS_ARCH_X86, CS_MODE_64, &cs_->h64) == CS_ERR_OK;
  cs_->ok32 = cs_open(CS_ARCH_X86, CS_MODE_32, &cs_->h32) == CS_ERR_OK;
}

SiteFinder::~SiteFinder() {
  if (cs_->ok64) cs_close(&cs_->h64);
  if (cs_->ok32) cs_close(&cs_->h32);
  delete cs_;
}

std::optional<Site> SiteFinder::Find(pid_t pid, pid_t tid, abi::DataModel model, uint64_t ip,
                                     abi::GuestMemory& memory) {
  const bool lp64 = model == abi::DataModel::kLp64;
  if (!(lp64 ? cs_->ok64 : cs_->ok32) || ip < 2) return std::nullopt;
  csh h = lp64 ? cs_->h64 : cs_->h32;
  // Re-read on every call: an exec replaces the maps under the same pid.
  std::vector<Mapping> maps = ParseMaps(ReadFile(fmt::format("/proc/{}/maps", pid)));
  // Every x86 system-call instruction is two bytes: syscall, int 0x80, sysenter.
  std::array<std::byte, 2> code{};
  if (!memory.Read(ip - 2, code).ok()) return std::nullopt;
  Site site;
  site.insn = Disasm(h, ip - 2, code);
  if (site.insn.empty()) site.insn = "?";
  std::optional<Location> at = Locate(maps, ip - 2);
  if (!at) return std::nullopt;
  site.at = *at;

  // The caller: the stack pointer of a thread stopped in a system call is in
  // /proc/PID/task/TID/syscall ("nr a0..a5 sp pc").
  std::string sys = ReadFile(fmt::format("/proc/{}/task/{}/syscall", pid, tid));
  unsigned long long fields[9] = {};
  long long nr = 0;
  if (std::sscanf(sys.c_str(), "%lld %llx %llx %llx %llx %llx %llx %llx %llx", &nr, &fields[0], &fields[1],
                  &fields[2], &fields[3], &fields[4], &fields[5], &fields[6], &fields[7]) != 9) {
    return site;
  }
  const uint64_t sp = fields[6];
  const size_t width = lp64 ? 8 : 4;
  constexpr size_t kWords = 64;
  std::vector<std::byte> stack(kWords * width);
  if (!memory.Read(sp, stack).ok()) return site;
  for (size_t i = 0; i < kWords; ++i) {
    uint64_t w = 0;
    std::memcpy(&w, stack.data() + i * width, width);
    std::optional<Location> loc = Locate(maps, w);
    if (!loc || loc->object == site.at.object || loc->object == "[vdso]" || w < 8) continue;
    bool exec = false;
    for (const Mapping& m : maps) exec = exec || (w >= m.start && w < m.end && m.exec);
    if (!exec) continue;
    // A return address follows a call: try the call encodings' lengths.
    std::array<std::byte, 7> before{};
    if (!memory.Read(w - before.size(), before).ok()) continue;
    for (size_t len : {5u, 6u, 2u, 3u, 7u, 4u}) {
      std::string insn = Disasm(h, w - len, std::span(before).subspan(before.size() - len));
      if (insn.rfind("call", 0) == 0) {
        site.caller = loc;
        return site;
      }
    }
  }
  return site;
}

}  // namespace evshim::shim::trace
