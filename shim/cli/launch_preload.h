// `evshim run` in fast mode preloads libevshim-signals.so (shim/inproc/
// signals_preload.c; docs/design.md "A copy that survives a fault", The
// wrappers preloaded): the foreign libraries' signal wrappers, global from
// the start, so that an engine a kqueue library loads later with
// dlopen(RTLD_LOCAL) attaches to them and uses its fault-surviving copy.
//
// Only into an image whose loader can take it, by the rule the library
// itself applies when it passes the preload on across exec
// (shim/inproc/preload_target.h, C, stated once there): an ELF of the
// launcher's own class, byte order and machine whose program interpreter is
// the launcher's loader, or an i386 one whose interpreter is glibc's i386
// loader, with no sanitizer runtime, or a script whose "#!" interpreter is
// one; each gets the library built for its class, when that one is there.
// The user's LD_PRELOAD comes first (a sanitizer runtime must stay first;
// the engine's gating then says off), and its value is saved in
// EVSHIM_USER_LD_PRELOAD for the library to put back, after the path of
// the other class's library, which the program passes on to its children
// of that class.
// Header-only: the launcher and its unit test (tests/unit/launch_preload_test.cc).
#pragma once

#include <climits>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "shim/inproc/preload_target.h"

namespace evshim::cli {

inline constexpr const char* kSignalsLibraryName = EVSHIM_SIGNALS_LIBRARY_NAME;
inline constexpr const char* kUserLdPreloadVariable = EVSHIM_USER_LD_PRELOAD;

// The program interpreter (PT_INTERP) of the ELF image at `path` when it is
// an x86_64 or i386 little-endian one; "" for any other file, and for a
// static image.
inline std::string ProgramInterpreter(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  evshim_elf_layout layout;
  char interpreter[EVSHIM_PRELOAD_NAME_MAX];
  const bool found = evshim_elf_layout_of(fd, &layout) && evshim_elf_interpreter(fd, &layout, interpreter);
  close(fd);
  return found ? interpreter : "";
}

// The DT_NEEDED names of the ELF image at `path` (x86_64 or i386; empty for
// anything else or what cannot be read).
inline std::vector<std::string> NeededLibraries(const std::string& path) {
  std::vector<std::string> needed;
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return needed;
  evshim_elf_layout layout;
  if (evshim_elf_layout_of(fd, &layout)) {
    evshim_elf_each_needed(
        fd, &layout,
        [](const char* name, void* ctx) {
          static_cast<std::vector<std::string>*>(ctx)->emplace_back(name);
          return 0;
        },
        &needed);
  }
  close(fd);
  return needed;
}

// The ELF class of the library the image at `path` takes from LD_PRELOAD
// (ELFCLASS64: the launcher's own build; ELFCLASS32: the i386 build), or 0
// (ELFCLASSNONE) when it takes none, `launcher_interpreter` being the
// launcher's PT_INTERP (preload_target.h).
inline int PreloadClassOf(const std::string& path, const std::string& launcher_interpreter) {
  return evshim_preload_class(path.c_str(), launcher_interpreter.c_str());
}

// The file execvp(3) runs for `name` (preload_target.h). "" when there is none.
inline std::string FindProgram(const char* name, const char* path_variable) {
  char path[PATH_MAX];
  return evshim_find_program(name, path_variable, path, sizeof path) ? path : "";
}

// The first of `candidates` that is there and whose path can stand in
// LD_PRELOAD (preload_target.h); "" when none.
inline std::string FirstLibrary(const std::vector<std::string>& candidates) {
  for (const std::string& c : candidates) {
    if (evshim_library_path_fits(c.c_str()) && access(c.c_str(), R_OK) == 0) return c;
  }
  return "";
}

// The library in an install: at `libdir` under the root of the launcher's
// `bindir` (`exe` its real path; also an install staged with DESTDIR), then
// at `libdir` itself.
inline std::vector<std::string> InstalledLibraries(const std::string& exe, std::string_view bindir,
                                                   std::string_view libdir) {
  const std::string dir = exe.substr(0, exe.rfind('/'));
  std::vector<std::string> candidates;
  if (dir.size() >= bindir.size() && std::string_view(dir).substr(dir.size() - bindir.size()) == bindir) {
    candidates.push_back(dir.substr(0, dir.size() - bindir.size()) + std::string(libdir) + "/" + kSignalsLibraryName);
  }
  candidates.push_back(std::string(libdir) + "/" + kSignalsLibraryName);
  return candidates;
}

// Where libevshim-signals.so is for a launcher at `exe` (its real path):
// beside it (the build tree, where both are in shim/), else in the install
// (InstalledLibraries). "" when none is there, or its path cannot stand in
// LD_PRELOAD (a space, colon or '=', or not absolute).
inline std::string FindSignalsLibrary(const std::string& exe, std::string_view bindir, std::string_view libdir) {
  std::vector<std::string> candidates = {exe.substr(0, exe.rfind('/')) + "/" + kSignalsLibraryName};
  for (std::string& c : InstalledLibraries(exe, bindir, libdir)) candidates.push_back(std::move(c));
  return FirstLibrary(candidates);
}

// Where the i386 libevshim-signals.so is (build32's: `meson setup build32
// --cross-file scripts/vm/i386-cross.ini -Dtargets_only=true`):
// `variable` (EVSHIM_SIGNALS_PRELOAD32 in the launcher's environment: the
// build tree, whose build32 may lie anywhere) when set, made absolute; else
// in the install at `libdir32` (the option i386_libdir, by default lib32,
// which is also what Debian's i386 loader expands $LIB to). "" when none
// is there. Whether it is an i386 library is checked where it is used
// (evshim_preload_library_for).
inline std::string FindI386SignalsLibrary(const char* variable, const std::string& exe, std::string_view bindir,
                                          std::string_view libdir32) {
  if (variable == nullptr || variable[0] == '\0') return FirstLibrary(InstalledLibraries(exe, bindir, libdir32));
  char resolved[PATH_MAX];
  return realpath(variable, resolved) != nullptr ? FirstLibrary({resolved}) : "";
}

// The environment the program gets: LD_PRELOAD with `library` after the
// user's own entries, and the user's value saved ("" when unset, "=VALUE"
// when set, even to nothing) after `other` (the other class's library,
// empty for none) for the library's constructor to put back and keep
// (preload_target.h writes both).
struct PreloadEnvironment {
  std::string ld_preload;
  std::string saved;
};
inline PreloadEnvironment PreloadEnvironmentFor(const char* user_ld_preload, const std::string& library,
                                                const std::string& other = "") {
  PreloadEnvironment e;
  const char* passed = other.empty() ? nullptr : other.c_str();
  e.ld_preload.resize(evshim_preload_value_size(user_ld_preload, library.c_str()));
  evshim_preload_value_write(e.ld_preload.data(), user_ld_preload, library.c_str());
  e.ld_preload.pop_back();  // its NUL
  e.saved.resize(evshim_saved_value_size(user_ld_preload, passed));
  evshim_saved_value_write(e.saved.data(), user_ld_preload, passed);
  e.saved.pop_back();
  return e;
}

}  // namespace evshim::cli
