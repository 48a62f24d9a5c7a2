// What `evshim run` decides before it preloads the signal wrappers
// (shim/cli/launch_preload.h): which images get them (a dynamic ELF of the
// launcher's class and machine only: a 32-bit program's loader would print
// "wrong ELF class ... ignored"), where the library is found, and the
// environment the program gets.
#include "shim/cli/launch_preload.h"

#include <gtest/gtest.h>

#include <elf.h>
#include <link.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace {

using evshim::cli::FindProgram;
using evshim::cli::FindSignalsLibrary;
using evshim::cli::NeededLibraries;
using evshim::cli::ProgramInterpreter;
using evshim::cli::TakesThePreload;
using evshim::cli::PreloadEnvironmentFor;

std::string TempDir() {
  char dir[] = "/tmp/evshim-launch-XXXXXX";
  EXPECT_NE(mkdtemp(dir), nullptr);
  return dir;
}

std::vector<char> ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

void WriteFile(const std::string& path, const std::vector<char>& bytes, mode_t mode = 0755) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  chmod(path.c_str(), mode);
}

// This test program (a 64-bit dynamic image of this machine), its header
// changed by `edit`.
template <typename Edit>
std::string EditedCopyOfThisProgram(const std::string& dir, const std::string& name, Edit edit) {
  std::vector<char> bytes = ReadFile("/proc/self/exe");
  EXPECT_GT(bytes.size(), sizeof(ElfW(Ehdr)));
  edit(bytes);
  const std::string path = dir + "/" + name;
  WriteFile(path, bytes);
  return path;
}

// ElfW: this program's own header and program headers, in `b`.
ElfW(Ehdr)* Header(std::vector<char>& b) { return reinterpret_cast<ElfW(Ehdr)*>(b.data()); }
ElfW(Phdr)* Interp(std::vector<char>& b) {
  for (unsigned i = 0; i < Header(b)->e_phnum; ++i) {
    auto* ph = reinterpret_cast<ElfW(Phdr)*>(b.data() + Header(b)->e_phoff + i * sizeof(ElfW(Phdr)));
    if (ph->p_type == PT_INTERP) return ph;
  }
  return nullptr;
}

TEST(LaunchPreload, OnlyADynamicImageOfTheLaunchersClassMachineAndLoaderWithoutASanitizer) {
  const std::string dir = TempDir();
  const std::string loader = ProgramInterpreter("/proc/self/exe");  // the test's own, glibc's
  ASSERT_NE(loader, "");
  // This program itself: yes, unless it needs a sanitizer runtime (the
  // sanitizer builds' test drivers).
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  const bool plain = false;
#else
  const bool plain = true;
#endif
  EXPECT_EQ(TakesThePreload(EditedCopyOfThisProgram(dir, "same", [](std::vector<char>&) {}), loader), plain);
  // The same loader in another directory.
  EXPECT_EQ(TakesThePreload(dir + "/same", "/elsewhere/" + loader.substr(loader.rfind('/') + 1)), plain);
  // A program that needs a sanitizer runtime: its libstdc++ entry renamed
  // in place to ASan's runtime (which aborts when a preload comes first).
  const std::vector<std::string> needed = NeededLibraries(dir + "/same");
  EXPECT_NE(std::find(needed.begin(), needed.end(), "libc.so.6"), needed.end());
  ASSERT_NE(std::find(needed.begin(), needed.end(), "libstdc++.so.6"), needed.end());
  const std::string asan = EditedCopyOfThisProgram(dir, "asan", [](std::vector<char>& b) {
    const char from[] = "libstdc++.so.6";  // 14 characters and its NUL
    const char to[sizeof from] = "libasan.so.8";
    auto at = std::search(b.begin(), b.end(), from, from + sizeof from);
    if (at != b.end()) std::copy(to, to + sizeof to, at);
  });
  const std::vector<std::string> asan_needed = NeededLibraries(asan);
  EXPECT_NE(std::find(asan_needed.begin(), asan_needed.end(), "libasan.so.8"), asan_needed.end());
  EXPECT_FALSE(TakesThePreload(asan, loader));
  // A 32-bit image: its loader cannot take the 64-bit library.
  EXPECT_FALSE(TakesThePreload(
      EditedCopyOfThisProgram(dir, "class32", [](std::vector<char>& b) { Header(b)->e_ident[EI_CLASS] = ELFCLASS32; }),
      loader));
  EXPECT_FALSE(TakesThePreload(
      EditedCopyOfThisProgram(dir, "i386", [](std::vector<char>& b) { Header(b)->e_machine = EM_386; }), loader));
  EXPECT_FALSE(TakesThePreload(
      EditedCopyOfThisProgram(dir, "bigendian", [](std::vector<char>& b) { Header(b)->e_ident[EI_DATA] = ELFDATA2MSB; }),
      loader));
  // Static: no program interpreter, no loader to read LD_PRELOAD.
  EXPECT_FALSE(TakesThePreload(EditedCopyOfThisProgram(dir, "static", [](std::vector<char>& b) {
                                 if (Interp(b) != nullptr) Interp(b)->p_type = PT_NULL;
                               }),
                               loader));
  // Another C library's loader (its name changed in place: ld-linux -> ld-muslx).
  const std::string other = EditedCopyOfThisProgram(dir, "otherlibc", [](std::vector<char>& b) {
    ElfW(Phdr)* ph = Interp(b);
    if (ph == nullptr) return;
    char* name = b.data() + ph->p_offset;
    char* ld = std::strstr(name, "ld-linux");
    if (ld != nullptr) std::memcpy(ld, "ld-muslx", 8);
  });
  EXPECT_NE(ProgramInterpreter(other).find("ld-muslx"), std::string::npos);
  EXPECT_FALSE(TakesThePreload(other, loader));
  // A script (its interpreter may be of any class), a short file, none.
  WriteFile(dir + "/script", {'#', '!', '/', 'b', 'i', 'n', '/', 's', 'h', '\n'});
  EXPECT_FALSE(TakesThePreload(dir + "/script", loader));
  WriteFile(dir + "/short", {'\x7f', 'E', 'L', 'F'});
  EXPECT_FALSE(TakesThePreload(dir + "/short", loader));
  EXPECT_FALSE(TakesThePreload(dir + "/none", loader));
  EXPECT_FALSE(TakesThePreload("", loader));
  EXPECT_FALSE(TakesThePreload(dir + "/same", ""));
  for (const char* f : {"same", "asan", "class32", "i386", "bigendian", "static", "otherlibc", "script", "short"}) {
    unlink((dir + "/" + f).c_str());
  }
  rmdir(dir.c_str());
}

// The file execvp would run: a name with a slash as given, else the first
// executable regular file in PATH (an empty entry is the current
// directory; a directory or a file without x is passed over).
TEST(LaunchPreload, FindsTheProgramAsExecvpDoes) {
  const std::string dir = TempDir();
  mkdir((dir + "/a").c_str(), 0755);
  mkdir((dir + "/b").c_str(), 0755);
  mkdir((dir + "/a/prog").c_str(), 0755);         // a directory
  WriteFile(dir + "/b/prog", {'x'}, 0644);        // not executable
  WriteFile(dir + "/b/other", {'x'}, 0755);
  mkdir((dir + "/c").c_str(), 0755);
  WriteFile(dir + "/c/prog", {'x'}, 0755);
  const std::string path = dir + "/a:" + dir + "/b:" + dir + "/c";
  EXPECT_EQ(FindProgram("prog", path.c_str()), dir + "/c/prog");
  EXPECT_EQ(FindProgram("other", path.c_str()), dir + "/b/other");
  EXPECT_EQ(FindProgram("missing", path.c_str()), "");
  EXPECT_EQ(FindProgram("./x/prog", path.c_str()), "./x/prog");
  EXPECT_EQ(FindProgram("sh", nullptr).empty(), false);  // glibc's default PATH: /bin:/usr/bin
  for (const char* f : {"/b/prog", "/b/other", "/c/prog"}) unlink((dir + f).c_str());
  for (const char* d : {"/a/prog", "/a", "/b", "/c", ""}) rmdir((dir + d).c_str());
}

// Beside the launcher (the build tree), at libdir under the root of the
// launcher's bindir (an install, also one staged with DESTDIR), or at the
// configured libdir; never a path LD_PRELOAD would split.
TEST(LaunchPreload, FindsTheLibraryBesideTheLauncherOrInTheInstall) {
  const std::string root = TempDir();
  for (const char* d : {"/usr", "/usr/local", "/usr/local/bin", "/usr/local/lib", "/build", "/a:b"}) {
    mkdir((root + d).c_str(), 0755);
  }
  WriteFile(root + "/usr/local/lib/libevshim-signals.so", {'x'});
  WriteFile(root + "/build/libevshim-signals.so", {'x'});
  WriteFile(root + "/a:b/libevshim-signals.so", {'x'});
  EXPECT_EQ(FindSignalsLibrary(root + "/build/evshim", "/usr/local/bin", "/usr/local/lib"),
            root + "/build/libevshim-signals.so");
  EXPECT_EQ(FindSignalsLibrary(root + "/usr/local/bin/evshim", "/usr/local/bin", "/usr/local/lib"),
            root + "/usr/local/lib/libevshim-signals.so");
  EXPECT_EQ(FindSignalsLibrary(root + "/usr/local/bin/evshim", "/usr/local/bin", root + "/usr/local/lib"),
            root + "/usr/local/lib/libevshim-signals.so");
  EXPECT_EQ(FindSignalsLibrary(root + "/elsewhere/evshim", "/usr/local/bin", "/nonexistent/lib"), "");
  EXPECT_EQ(FindSignalsLibrary(root + "/a:b/evshim", "/usr/local/bin", "/nonexistent/lib"), "");
  for (const char* f : {"/usr/local/lib/libevshim-signals.so", "/build/libevshim-signals.so",
                        "/a:b/libevshim-signals.so"}) {
    unlink((root + f).c_str());
  }
  for (const char* d : {"/usr/local/bin", "/usr/local/lib", "/usr/local", "/usr", "/build", "/a:b", ""}) {
    rmdir((root + d).c_str());
  }
}

// The user's entries first (a sanitizer runtime must stay first), the
// library last; the user's value saved exactly ("" unset, "=" + value).
TEST(LaunchPreload, TheUsersPreloadComesFirstAndIsSaved) {
  const std::string lib = "/x/libevshim-signals.so";
  auto unset = PreloadEnvironmentFor(nullptr, lib);
  EXPECT_EQ(unset.ld_preload, lib);
  EXPECT_EQ(unset.saved, "");
  auto empty = PreloadEnvironmentFor("", lib);
  EXPECT_EQ(empty.ld_preload, lib);
  EXPECT_EQ(empty.saved, "=");
  auto user = PreloadEnvironmentFor("libasan.so.8 /y/libz.so", lib);
  EXPECT_EQ(user.ld_preload, "libasan.so.8 /y/libz.so:" + lib);
  EXPECT_EQ(user.saved, "=libasan.so.8 /y/libz.so");
}

}  // namespace
