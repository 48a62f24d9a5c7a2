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
// the launcher's loader, with no sanitizer runtime, or a script whose "#!"
// interpreter is one. The user's LD_PRELOAD comes first (a sanitizer
// runtime must stay first; the engine's gating then says off), and its
// value is saved in EVSHIM_USER_LD_PRELOAD for the library to put back.
// Header-only: the launcher and its unit test (tests/unit/launch_preload_test.cc).
#pragma once

#include <climits>
#include <string>
#include <string_view>
#include <vector>

#include "shim/inproc/preload_target.h"

namespace evshim::cli {

inline constexpr const char* kSignalsLibraryName = EVSHIM_SIGNALS_LIBRARY_NAME;
inline constexpr const char* kUserLdPreloadVariable = EVSHIM_USER_LD_PRELOAD;

// The program interpreter (PT_INTERP) of the ELF image at `path` when it is
// of the launcher's class, byte order and machine; "" for any other file,
// and for a static image.
inline std::string ProgramInterpreter(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  evshim_elf_layout layout;
  char interpreter[EVSHIM_PRELOAD_NAME_MAX];
  const bool found = evshim_elf_layout_of(fd, &layout) && evshim_elf_interpreter(fd, &layout, interpreter);
  close(fd);
  return found ? interpreter : "";
}

// The DT_NEEDED names of the ELF image at `path` (of the launcher's class,
// byte order and machine; empty for anything else or what cannot be read).
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

// Whether the image at `path` takes the launcher's libraries from
// LD_PRELOAD, `launcher_interpreter` being the launcher's PT_INTERP
// (preload_target.h).
inline bool TakesThePreload(const std::string& path, const std::string& launcher_interpreter) {
  return evshim_takes_the_preload(path.c_str(), launcher_interpreter.c_str()) != 0;
}

// The file execvp(3) runs for `name` (preload_target.h). "" when there is none.
inline std::string FindProgram(const char* name, const char* path_variable) {
  char path[PATH_MAX];
  return evshim_find_program(name, path_variable, path, sizeof path) ? path : "";
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
// when set, even to nothing) for the library's constructor to put back
// (preload_target.h writes both).
struct PreloadEnvironment {
  std::string ld_preload;
  std::string saved;
};
inline PreloadEnvironment PreloadEnvironmentFor(const char* user_ld_preload, const std::string& library) {
  PreloadEnvironment e;
  e.ld_preload.resize(evshim_preload_value_size(user_ld_preload, library.c_str()));
  evshim_preload_value_write(e.ld_preload.data(), user_ld_preload, library.c_str());
  e.ld_preload.pop_back();  // its NUL
  e.saved.resize(evshim_saved_value_size(user_ld_preload));
  evshim_saved_value_write(e.saved.data(), user_ld_preload);
  e.saved.pop_back();
  return e;
}

}  // namespace evshim::cli
