// `evshim run` in fast mode preloads libevshim-signals.so (shim/inproc/
// signals_preload.c; docs/design.md "A copy that survives a fault", The
// wrappers preloaded): the foreign libraries' signal wrappers, global from
// the start, so that an engine a kqueue library loads later with
// dlopen(RTLD_LOCAL) attaches to them and uses its fault-surviving copy.
//
// Only into an image whose loader can take it: an ELF of the launcher's own
// class, byte order and machine, whose program interpreter is the
// launcher's loader. A 32-bit program's loader would print "wrong ELF class
// ... ignored", a static one never reads LD_PRELOAD (and would keep the
// changed variable), musl's would try a glibc library, a script's
// interpreter may be anything; and not into a program that needs a
// sanitizer runtime (ASan's aborts when a preloaded library comes first).
// The user's LD_PRELOAD comes first (a sanitizer runtime must stay first;
// the engine's gating then says off), and its value is saved in
// EVSHIM_USER_LD_PRELOAD for the library to put back.
// Header-only: the launcher and its unit test (tests/unit/launch_preload_test.cc).
#pragma once

#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace evshim::cli {

inline constexpr const char* kSignalsLibraryName = "libevshim-signals.so";
inline constexpr const char* kUserLdPreloadVariable = "EVSHIM_USER_LD_PRELOAD";

#if defined(__x86_64__)
inline constexpr int kLauncherMachine = EM_X86_64;
#elif defined(__i386__)
inline constexpr int kLauncherMachine = EM_386;
#endif
inline constexpr unsigned char kLauncherClass = sizeof(void*) == 8 ? ELFCLASS64 : ELFCLASS32;

// The program interpreter (PT_INTERP) of the ELF image at `path` when it is
// of the launcher's class (ElfW: this process's), byte order and machine;
// "" for any other file, and for a static image (no loader reads its
// LD_PRELOAD).
inline std::string ProgramInterpreter(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  std::string interpreter;
  ElfW(Ehdr) eh;
  if (pread(fd, &eh, sizeof eh, 0) == static_cast<ssize_t>(sizeof eh) &&
      std::memcmp(eh.e_ident, ELFMAG, SELFMAG) == 0 && eh.e_ident[EI_CLASS] == kLauncherClass &&
      eh.e_ident[EI_DATA] == ELFDATA2LSB && eh.e_machine == kLauncherMachine &&
      (eh.e_type == ET_EXEC || eh.e_type == ET_DYN) && eh.e_phentsize == sizeof(ElfW(Phdr))) {
    for (unsigned i = 0; i < eh.e_phnum; ++i) {
      ElfW(Phdr) ph;
      const off_t at = static_cast<off_t>(eh.e_phoff + i * sizeof ph);
      if (pread(fd, &ph, sizeof ph, at) != static_cast<ssize_t>(sizeof ph)) break;
      if (ph.p_type != PT_INTERP) continue;
      if (ph.p_filesz == 0 || ph.p_filesz > 4096) break;
      std::string text(ph.p_filesz, '\0');
      if (pread(fd, text.data(), text.size(), static_cast<off_t>(ph.p_offset)) == static_cast<ssize_t>(text.size())) {
        interpreter = text.c_str();  // up to its NUL
      }
      break;
    }
  }
  close(fd);
  return interpreter;
}

// The DT_NEEDED names of the ELF image at `path` (of the launcher's class,
// byte order and machine; empty for anything else or what cannot be read).
inline std::vector<std::string> NeededLibraries(const std::string& path) {
  std::vector<std::string> needed;
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return needed;
  auto read_at = [fd](void* dst, size_t n, uint64_t at) {
    return pread(fd, dst, n, static_cast<off_t>(at)) == static_cast<ssize_t>(n);
  };
  ElfW(Ehdr) eh;
  std::vector<ElfW(Phdr)> ph;
  if (read_at(&eh, sizeof eh, 0) && std::memcmp(eh.e_ident, ELFMAG, SELFMAG) == 0 &&
      eh.e_ident[EI_CLASS] == kLauncherClass && eh.e_ident[EI_DATA] == ELFDATA2LSB &&
      eh.e_machine == kLauncherMachine && eh.e_phentsize == sizeof(ElfW(Phdr)) && eh.e_phnum < 256) {
    ph.resize(eh.e_phnum);
    if (!read_at(ph.data(), ph.size() * sizeof(ElfW(Phdr)), eh.e_phoff)) ph.clear();
  }
  // A virtual address of a loaded segment as a file offset.
  auto file_offset = [&ph](uint64_t vaddr, uint64_t* off) {
    for (const ElfW(Phdr)& p : ph) {
      if (p.p_type == PT_LOAD && vaddr >= p.p_vaddr && vaddr < p.p_vaddr + p.p_filesz) {
        *off = vaddr - p.p_vaddr + p.p_offset;
        return true;
      }
    }
    return false;
  };
  for (const ElfW(Phdr)& p : ph) {
    if (p.p_type != PT_DYNAMIC || p.p_filesz > (1u << 20)) continue;
    std::vector<ElfW(Dyn)> dyn(p.p_filesz / sizeof(ElfW(Dyn)));
    if (!read_at(dyn.data(), dyn.size() * sizeof(ElfW(Dyn)), p.p_offset)) break;
    uint64_t strtab = 0, strsz = 0, off = 0;
    for (const ElfW(Dyn)& d : dyn) {
      if (d.d_tag == DT_STRTAB) strtab = d.d_un.d_ptr;
      if (d.d_tag == DT_STRSZ) strsz = d.d_un.d_val;
    }
    if (strsz == 0 || strsz > (1u << 24) || !file_offset(strtab, &off)) break;
    std::string strings(strsz, '\0');
    if (!read_at(strings.data(), strings.size(), off)) break;
    for (const ElfW(Dyn)& d : dyn) {
      if (d.d_tag == DT_NEEDED && d.d_un.d_val < strsz) needed.emplace_back(strings.c_str() + d.d_un.d_val);
    }
    break;
  }
  close(fd);
  return needed;
}

// A sanitizer runtime's library name (GCC's libasan, libtsan, ...;
// clang's libclang_rt.*).
inline bool IsSanitizerRuntime(const std::string& name) {
  for (const char* prefix : {"libasan.", "libtsan.", "libhwasan.", "liblsan.", "libubsan.", "libclang_rt."}) {
    if (name.rfind(prefix, 0) == 0) return true;
  }
  return false;
}

// Whether the image at `path` takes the launcher's libraries from
// LD_PRELOAD: an ELF of its class, byte order and machine whose loader is
// the launcher's own by name (`launcher_interpreter`, its PT_INTERP; the
// directory may differ), and which needs no sanitizer runtime. Another C
// library's loader (musl's) would try to load a glibc library; ASan's
// runtime aborts when a preloaded library comes before it, and with any
// sanitizer runtime interposing first the engine's gating says off anyway.
inline bool TakesThePreload(const std::string& path, const std::string& launcher_interpreter) {
  auto base = [](const std::string& p) { return p.substr(p.rfind('/') + 1); };
  const std::string interpreter = ProgramInterpreter(path);
  if (interpreter.empty() || launcher_interpreter.empty() || base(interpreter) != base(launcher_interpreter)) {
    return false;
  }
  for (const std::string& n : NeededLibraries(path)) {
    if (IsSanitizerRuntime(n)) return false;
  }
  return true;
}

// The file execvp(3) runs for `name`: `name` itself if it holds a slash,
// else the first executable regular file of that name in PATH (glibc's
// default when PATH is unset). "" when there is none.
inline std::string FindProgram(const char* name, const char* path_variable) {
  if (std::strchr(name, '/') != nullptr) return name;
  std::string_view dirs = path_variable != nullptr ? path_variable : "/bin:/usr/bin";
  while (true) {
    const size_t colon = dirs.find(':');
    std::string dir(dirs.substr(0, colon));
    std::string candidate = (dir.empty() ? std::string(".") : dir) + "/" + name;
    struct stat st;
    if (access(candidate.c_str(), X_OK) == 0 && stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
      return candidate;
    }
    if (colon == std::string_view::npos) return "";
    dirs = dirs.substr(colon + 1);
  }
}

// Where libevshim-signals.so is for a launcher at `exe` (its real path):
// beside it (the build tree, where both are in shim/), at the configured
// libdir under the same root as the launcher's bindir (an install, also
// one staged with DESTDIR), or at the configured libdir. "" when none is
// there, or its path cannot stand in LD_PRELOAD (a space or colon).
inline std::string FindSignalsLibrary(const std::string& exe, std::string_view bindir, std::string_view libdir) {
  const std::string dir = exe.substr(0, exe.rfind('/'));
  std::string candidates[3] = {dir + "/" + kSignalsLibraryName, "", std::string(libdir) + "/" + kSignalsLibraryName};
  if (dir.size() >= bindir.size() && std::string_view(dir).substr(dir.size() - bindir.size()) == bindir) {
    candidates[1] = dir.substr(0, dir.size() - bindir.size()) + std::string(libdir) + "/" + kSignalsLibraryName;
  }
  for (const std::string& c : candidates) {
    if (c.empty() || c.find_first_of(" :") != std::string::npos) continue;
    if (access(c.c_str(), R_OK) == 0) return c;
  }
  return "";
}

// The environment the program gets: LD_PRELOAD with the library after the
// user's own entries, and the user's value saved ("" when unset, "=VALUE"
// when set, even to nothing) for the library's constructor to put back.
struct PreloadEnvironment {
  std::string ld_preload;
  std::string saved;
};
inline PreloadEnvironment PreloadEnvironmentFor(const char* user_ld_preload, const std::string& library) {
  PreloadEnvironment e;
  if (user_ld_preload == nullptr) {
    e.ld_preload = library;
    return e;
  }
  e.saved = std::string("=") + user_ld_preload;
  e.ld_preload = *user_ld_preload != '\0' ? std::string(user_ld_preload) + ":" + library : library;
  return e;
}

}  // namespace evshim::cli
