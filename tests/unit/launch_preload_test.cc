// What `evshim run` decides before it preloads the signal wrappers
// (shim/cli/launch_preload.h): which images get them (a dynamic ELF of the
// launcher's class and machine only: a 32-bit program's loader would print
// "wrong ELF class ... ignored"), where the library is found, and the
// environment the program gets.
#include "shim/cli/launch_preload.h"

#include <gtest/gtest.h>

#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace {

using evshim::cli::FindI386SignalsLibrary;
using evshim::cli::FindProgram;
using evshim::cli::FindSignalsLibrary;
using evshim::cli::NeededLibraries;
using evshim::cli::ProgramInterpreter;
using evshim::cli::PreloadClassOf;
using evshim::cli::PreloadEnvironmentFor;

// The launcher's own class takes its own build (ELFCLASS64); nothing else
// in the tests below that edit this 64-bit program takes any.
bool TakesThePreload(const std::string& path, const std::string& loader) {
  const int c = PreloadClassOf(path, loader);
  EXPECT_TRUE(c == ELFCLASSNONE || c == ELFCLASS64) << path << " " << c;
  return c == ELFCLASS64;
}

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
  // Set-user-ID or set-group-ID: a loader in secure-execution mode ignores
  // a preload path with a slash (and would leave the variables changed).
  const std::string setuid = EditedCopyOfThisProgram(dir, "setuid", [](std::vector<char>&) {});
  chmod(setuid.c_str(), 04755);
  EXPECT_FALSE(TakesThePreload(setuid, loader));
  chmod(setuid.c_str(), 02755);
  EXPECT_FALSE(TakesThePreload(setuid, loader));
  // A script, by its "#!" interpreter: tested in ScriptsByTheirInterpreter.
  WriteFile(dir + "/short", {'\x7f', 'E', 'L', 'F'});
  EXPECT_FALSE(TakesThePreload(dir + "/short", loader));
  EXPECT_FALSE(TakesThePreload(dir + "/none", loader));
  EXPECT_FALSE(TakesThePreload("", loader));
  EXPECT_FALSE(TakesThePreload(dir + "/same", ""));
  for (const char* f : {"same", "asan", "class32", "i386", "bigendian", "static", "otherlibc", "setuid", "short"}) {
    unlink((dir + "/" + f).c_str());
  }
  rmdir(dir.c_str());
}

// A golden ELF image of either class, laid out as a linker lays out a
// small program: the header, the program headers (PT_INTERP when
// `interp` is not empty, one PT_LOAD over the whole file, PT_DYNAMIC), the
// interpreter's name, the string table and the dynamic section (DT_STRTAB,
// DT_STRSZ, a DT_NEEDED per name, DT_NULL).
template <typename Ehdr, typename Phdr, typename Dyn>
std::vector<char> GoldenElf(unsigned char elf_class, uint16_t machine, uint16_t type, const std::string& interp,
                            const std::vector<std::string>& needed) {
  const uint64_t base = 0x10000;
  const unsigned phnum = interp.empty() ? 2 : 3;
  const size_t interp_at = sizeof(Ehdr) + phnum * sizeof(Phdr);
  const size_t strtab_at = interp_at + interp.size() + 1;
  std::string strtab(1, '\0');
  std::vector<size_t> names;
  for (const std::string& n : needed) {
    names.push_back(strtab.size());
    strtab += n + '\0';
  }
  const size_t dyn_at = (strtab_at + strtab.size() + 7) / 8 * 8;
  std::vector<Dyn> dyn;
  auto add = [&](int64_t tag, uint64_t value) {
    Dyn d{};
    d.d_tag = tag;
    d.d_un.d_val = value;
    dyn.push_back(d);
  };
  add(DT_STRTAB, base + strtab_at);
  add(DT_STRSZ, strtab.size());
  for (size_t n : names) add(DT_NEEDED, n);
  add(DT_NULL, 0);
  const size_t total = dyn_at + dyn.size() * sizeof(Dyn);
  std::vector<char> b(total, '\0');
  Ehdr eh{};
  std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
  eh.e_ident[EI_CLASS] = elf_class;
  eh.e_ident[EI_DATA] = ELFDATA2LSB;
  eh.e_ident[EI_VERSION] = EV_CURRENT;
  eh.e_type = type;
  eh.e_machine = machine;
  eh.e_version = EV_CURRENT;
  eh.e_phoff = sizeof(Ehdr);
  eh.e_ehsize = sizeof(Ehdr);
  eh.e_phentsize = sizeof(Phdr);
  eh.e_phnum = static_cast<uint16_t>(phnum);
  std::memcpy(b.data(), &eh, sizeof eh);
  std::vector<Phdr> ph;
  auto segment = [&](uint32_t kind, size_t at, size_t size) {
    Phdr p{};
    p.p_type = kind;
    p.p_offset = at;
    p.p_vaddr = base + at;
    p.p_paddr = base + at;
    p.p_filesz = size;
    p.p_memsz = size;
    ph.push_back(p);
  };
  if (!interp.empty()) segment(PT_INTERP, interp_at, interp.size() + 1);
  segment(PT_LOAD, 0, total);
  segment(PT_DYNAMIC, dyn_at, dyn.size() * sizeof(Dyn));
  std::memcpy(b.data() + sizeof(Ehdr), ph.data(), ph.size() * sizeof(Phdr));
  std::memcpy(b.data() + interp_at, interp.c_str(), interp.size() + 1);
  std::memcpy(b.data() + strtab_at, strtab.data(), strtab.size());
  std::memcpy(b.data() + dyn_at, dyn.data(), dyn.size() * sizeof(Dyn));
  return b;
}
std::vector<char> I386Elf(const std::string& interp, const std::vector<std::string>& needed = {"libc.so.6"},
                          uint16_t type = ET_EXEC, uint16_t machine = EM_386) {
  return GoldenElf<Elf32_Ehdr, Elf32_Phdr, Elf32_Dyn>(ELFCLASS32, machine, type, interp, needed);
}
std::vector<char> X8664Elf(const std::string& interp, const std::vector<std::string>& needed = {"libc.so.6"},
                           uint16_t type = ET_DYN) {
  return GoldenElf<Elf64_Ehdr, Elf64_Phdr, Elf64_Dyn>(ELFCLASS64, EM_X86_64, type, interp, needed);
}

// The i386 build of the library (build32's) for an i386 program whose
// interpreter is glibc's i386 loader (by name: Debian's /lib/ld-linux.so.2,
// or another directory); never for a 32-bit image another loader would
// load (musl's, x32's), a static one, one that needs a sanitizer runtime,
// or a set-ID one. A 64-bit image naming the i386 loader takes nothing.
// The same golden layout of class 64 with the launcher's loader takes the
// launcher's own build, so the parser reads both classes alike.
TEST(LaunchPreload, AnI386ImageWithGlibcsI386LoaderTakesTheI386Build) {
  const std::string dir = TempDir();
  const std::string loader = ProgramInterpreter("/proc/self/exe");
  ASSERT_NE(loader, "");
  struct Case {
    const char* name;
    std::vector<char> bytes;
    int takes;
  } cases[] = {
      {"i386", I386Elf("/lib/ld-linux.so.2"), ELFCLASS32},
      {"i386pie", I386Elf("/lib/ld-linux.so.2", {"libdl.so.2", "libc.so.6"}, ET_DYN), ELFCLASS32},
      {"i386lib32", I386Elf("/usr/lib32/ld-linux.so.2"), ELFCLASS32},
      {"i386musl", I386Elf("/lib/ld-musl-i386.so.1"), ELFCLASSNONE},
      {"i386asan", I386Elf("/lib/ld-linux.so.2", {"libasan.so.8", "libc.so.6"}), ELFCLASSNONE},
      {"i386ubsan", I386Elf("/lib/ld-linux.so.2", {"libc.so.6", "libubsan.so.1"}), ELFCLASSNONE},
      {"i386static", I386Elf(""), ELFCLASSNONE},
      {"i386object", I386Elf("/lib/ld-linux.so.2", {"libc.so.6"}, ET_REL), ELFCLASSNONE},
      {"x32", I386Elf("/libx32/ld-linux-x32.so.2", {"libc.so.6"}, ET_EXEC, EM_X86_64), ELFCLASSNONE},
      {"x32i386loader", I386Elf("/lib/ld-linux.so.2", {"libc.so.6"}, ET_EXEC, EM_X86_64), ELFCLASSNONE},
      {"golden64", X8664Elf(loader), ELFCLASS64},
      {"golden64asan", X8664Elf(loader, {"libasan.so.8"}), ELFCLASSNONE},
      {"golden64i386loader", X8664Elf("/lib/ld-linux.so.2"), ELFCLASSNONE},
  };
  for (const Case& c : cases) {
    WriteFile(dir + "/" + c.name, c.bytes);
    EXPECT_EQ(PreloadClassOf(dir + "/" + c.name, loader), c.takes) << c.name;
  }
  EXPECT_EQ(ProgramInterpreter(dir + "/i386"), "/lib/ld-linux.so.2");
  EXPECT_EQ(NeededLibraries(dir + "/i386pie"), (std::vector<std::string>{"libdl.so.2", "libc.so.6"}));
  EXPECT_EQ(NeededLibraries(dir + "/golden64asan"), std::vector<std::string>{"libasan.so.8"});
  EXPECT_EQ(ProgramInterpreter(dir + "/i386static"), "");
  // Set-user-ID or set-group-ID: not taken, whatever the class.
  chmod((dir + "/i386").c_str(), 04755);
  EXPECT_EQ(PreloadClassOf(dir + "/i386", loader), ELFCLASSNONE);
  chmod((dir + "/i386").c_str(), 02755);
  EXPECT_EQ(PreloadClassOf(dir + "/i386", loader), ELFCLASSNONE);
  chmod((dir + "/i386").c_str(), 0755);
  // A script whose interpreter is an i386 program takes the i386 build.
  WriteFile(dir + "/script", {'#', '!'});
  std::ofstream(dir + "/script", std::ios::app) << dir << "/i386 -x\n";
  EXPECT_EQ(PreloadClassOf(dir + "/script", loader), ELFCLASS32);
  for (const Case& c : cases) unlink((dir + "/" + c.name).c_str());
  unlink((dir + "/script").c_str());
  rmdir(dir.c_str());
}

// Which build an image gets, and which it passes on: its own class's, only
// when that one is there and of that class (a loader prints "wrong ELF
// class" for the other's, "cannot be preloaded" for a missing one); the
// build of the other class is passed on when its path fits in the saved
// value (absolute, no ':', ' ' or '=').
TEST(LaunchPreload, EachClassGetsItsOwnBuildOnlyWhenItIsThere) {
  const std::string dir = TempDir();
  const std::string lib64 = dir + "/lib64.so", lib32 = dir + "/lib32.so", eq = dir + "/a=b.so";
  WriteFile(lib64, X8664Elf("", {}, ET_DYN));
  WriteFile(lib32, I386Elf("", {}, ET_DYN));
  WriteFile(eq, X8664Elf("", {}, ET_DYN));
  WriteFile(dir + "/exec32", I386Elf("", {}, ET_EXEC));
  const std::string missing = dir + "/missing.so", exec32 = dir + "/exec32";
  struct Case {
    const char* own;
    const char* other;
    int elf_class;
    const char* takes;
    const char* passes;
  } cases[] = {
      {lib64.c_str(), lib32.c_str(), ELFCLASS64, lib64.c_str(), lib32.c_str()},
      {lib64.c_str(), lib32.c_str(), ELFCLASS32, lib32.c_str(), lib64.c_str()},
      {lib64.c_str(), lib32.c_str(), ELFCLASSNONE, nullptr, nullptr},
      {lib64.c_str(), nullptr, ELFCLASS64, lib64.c_str(), nullptr},
      {lib64.c_str(), "", ELFCLASS64, lib64.c_str(), nullptr},
      {lib64.c_str(), nullptr, ELFCLASS32, nullptr, nullptr},
      {"", lib32.c_str(), ELFCLASS32, lib32.c_str(), nullptr},
      {nullptr, lib32.c_str(), ELFCLASS64, nullptr, nullptr},
      {lib64.c_str(), lib64.c_str(), ELFCLASS32, nullptr, nullptr},  // the wrong class: nothing
      {lib32.c_str(), lib32.c_str(), ELFCLASS64, nullptr, nullptr},
      {lib64.c_str(), exec32.c_str(), ELFCLASS32, nullptr, nullptr},  // not a shared object
      {lib64.c_str(), missing.c_str(), ELFCLASS32, nullptr, nullptr},
      {eq.c_str(), lib32.c_str(), ELFCLASS32, lib32.c_str(), nullptr},  // its path cannot be saved
      {lib64.c_str(), "relative/lib32.so", ELFCLASS64, lib64.c_str(), nullptr},
  };
  for (const Case& c : cases) {
    const evshim_preload_libraries libs = {c.own, c.other};
    const char* passed = "unset";
    const char* takes = evshim_preload_library_for(&libs, c.elf_class, &passed);
    const std::string label = std::string(c.own ? c.own : "NULL") + " " + (c.other ? c.other : "NULL") + " " +
                              std::to_string(c.elf_class);
    EXPECT_EQ(takes == nullptr ? "" : takes, std::string(c.takes == nullptr ? "" : c.takes)) << label;
    if (takes != nullptr) {
      EXPECT_EQ(passed == nullptr ? "" : passed, std::string(c.passes ? c.passes : "")) << label;
    }
  }
  for (const std::string& f : {lib64, lib32, eq, exec32}) unlink(f.c_str());
  rmdir(dir.c_str());
}

// The i386 build: named by EVSHIM_SIGNALS_PRELOAD32 (made absolute; the
// build tree), else at the install's i386 libdir under the launcher's root,
// then at the configured one.
TEST(LaunchPreload, FindsTheI386BuildByTheVariableOrInTheInstall) {
  const std::string root = TempDir();
  std::filesystem::create_directories(root + "/usr/local/bin");
  std::filesystem::create_directories(root + "/usr/local/lib32");
  std::filesystem::create_directories(root + "/build32/shim");
  WriteFile(root + "/usr/local/lib32/libevshim-signals.so", {'x'});
  WriteFile(root + "/build32/shim/libevshim-signals.so", {'x'});
  const std::string exe = root + "/usr/local/bin/evshim";
  EXPECT_EQ(FindI386SignalsLibrary((root + "/build32/shim/libevshim-signals.so").c_str(), exe, "/usr/local/bin",
                                   "/usr/local/lib32"),
            root + "/build32/shim/libevshim-signals.so");
  char cwd[PATH_MAX];
  ASSERT_NE(getcwd(cwd, sizeof cwd), nullptr);
  ASSERT_EQ(chdir((root + "/build32/shim").c_str()), 0);
  EXPECT_EQ(FindI386SignalsLibrary("libevshim-signals.so", exe, "/usr/local/bin", "/usr/local/lib32"),
            root + "/build32/shim/libevshim-signals.so");
  ASSERT_EQ(chdir(cwd), 0);
  // Named but not there: none (the install is not looked at).
  EXPECT_EQ(FindI386SignalsLibrary((root + "/nothere.so").c_str(), exe, "/usr/local/bin", "/usr/local/lib32"), "");
  for (const char* unset : {static_cast<const char*>(nullptr), ""}) {
    EXPECT_EQ(FindI386SignalsLibrary(unset, exe, "/usr/local/bin", "/usr/local/lib32"),
              root + "/usr/local/lib32/libevshim-signals.so");
    EXPECT_EQ(FindI386SignalsLibrary(unset, root + "/elsewhere/evshim", "/usr/local/bin", root + "/usr/local/lib32"),
              root + "/usr/local/lib32/libevshim-signals.so");
    EXPECT_EQ(FindI386SignalsLibrary(unset, root + "/elsewhere/evshim", "/usr/local/bin", "/nonexistent/lib32"), "");
  }
  std::filesystem::remove_all(root);
}

// A script takes the preload when its "#!" interpreter does (one level, as
// the kernel reads the line: 256 bytes, the name after spaces or tabs up to
// a space, tab or newline): `#!/usr/bin/env python3` preloads env, whose
// execvp then preloads python3 by the same rule.
void WriteText(const std::string& path, const std::string& text) { WriteFile(path, {text.begin(), text.end()}); }
TEST(LaunchPreload, ScriptsByTheirInterpreter) {
  const std::string dir = TempDir();
  const std::string loader = ProgramInterpreter("/proc/self/exe");
  ASSERT_NE(loader, "");
  const std::string sh = FindProgram("sh", nullptr), env = FindProgram("env", nullptr);
  ASSERT_TRUE(TakesThePreload(sh, loader)) << sh;  // a dynamic glibc program
  ASSERT_TRUE(TakesThePreload(env, loader)) << env;
  const std::string class32 = EditedCopyOfThisProgram(
      dir, "class32", [](std::vector<char>& b) { Header(b)->e_ident[EI_CLASS] = ELFCLASS32; });
  const std::string asan = EditedCopyOfThisProgram(dir, "asan", [](std::vector<char>& b) {
    const char from[] = "libstdc++.so.6";
    const char to[sizeof from] = "libasan.so.8";
    auto at = std::search(b.begin(), b.end(), from, from + sizeof from);
    if (at != b.end()) std::copy(to, to + sizeof to, at);
  });
  struct Case {
    const char* name;
    std::string text;
    bool takes;
  } cases[] = {
      {"sh", "#!" + sh + "\necho\n", true},
      {"spaces", "#! \t" + sh + " -e\n", true},
      {"env", "#!" + env + " python3\n", true},
      {"noline", "#!" + sh, true},  // the file ends: the name ends
      {"class32", "#!" + class32 + "\n", false},
      {"asan", "#!" + asan + "\n", false},
      {"script", "#!" + dir + "/sh\n", false},  // a script's script: one level only
      {"missing", "#!" + dir + "/none\n", false},
      {"empty", "#!\n", false},
      {"blank", "#!  \t\n", false},
      {"cut", "#!/" + std::string(300, 'x'), false},  // the 256 bytes cut the name
      {"notascript", "# " + sh + "\n", false},
  };
  for (const Case& c : cases) {
    WriteText(dir + "/" + c.name, c.text);
    EXPECT_EQ(TakesThePreload(dir + "/" + c.name, loader), c.takes) << c.name;
  }
  // The interpreter's name as the kernel reads it.
  const int fd = open((dir + "/spaces").c_str(), O_RDONLY);
  char name[EVSHIM_PRELOAD_NAME_MAX];
  ASSERT_EQ(evshim_script_interpreter(fd, name), 1);
  EXPECT_EQ(std::string(name), sh);
  close(fd);
  for (const Case& c : cases) unlink((dir + "/" + c.name).c_str());
  for (const char* f : {"/class32", "/asan", ""}) {
    if (*f != '\0') unlink((dir + f).c_str());
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
  // An empty entry: the working directory, the name alone (as glibc's
  // execvpe builds the path it passes to execve).
  ASSERT_EQ(chdir((dir + "/c").c_str()), 0);
  EXPECT_EQ(FindProgram("prog", ("/nonexistent::" + dir + "/b").c_str()), "prog");
  ASSERT_EQ(chdir("/"), 0);
  EXPECT_EQ(FindProgram("", path.c_str()), "");
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

// The other class's build is saved before the user's value, for the new
// image to pass on to its children of that class; read back, the two are
// apart again.
TEST(LaunchPreload, TheOtherClassesBuildIsSavedBeforeTheUsersValue) {
  const std::string lib = "/x/libevshim-signals.so", other = "/x32/libevshim-signals.so";
  auto unset = PreloadEnvironmentFor(nullptr, lib, other);
  EXPECT_EQ(unset.ld_preload, lib);
  EXPECT_EQ(unset.saved, other);
  auto empty = PreloadEnvironmentFor("", lib, other);
  EXPECT_EQ(empty.saved, other + "=");
  auto user = PreloadEnvironmentFor("/y/a=b.so", lib, other);
  EXPECT_EQ(user.ld_preload, "/y/a=b.so:" + lib);
  EXPECT_EQ(user.saved, other + "=/y/a=b.so");
  char read[PATH_MAX];
  EXPECT_EQ(evshim_saved_value_read(unset.saved.c_str(), read, sizeof read), nullptr);
  EXPECT_EQ(std::string(read), other);
  EXPECT_EQ(std::string(evshim_saved_value_read(empty.saved.c_str(), read, sizeof read)), "");
  EXPECT_EQ(std::string(read), other);
  EXPECT_EQ(std::string(evshim_saved_value_read(user.saved.c_str(), read, sizeof read)), "/y/a=b.so");
  EXPECT_EQ(std::string(read), other);
  // Without the other build: as before.
  EXPECT_EQ(evshim_saved_value_read("", read, sizeof read), nullptr);
  EXPECT_EQ(std::string(read), "");
  EXPECT_EQ(std::string(evshim_saved_value_read("=/y/z.so", read, sizeof read)), "/y/z.so");
  EXPECT_EQ(std::string(read), "");
  // One too long for the buffer: none (the user's value still read).
  const std::string longer = "/" + std::string(PATH_MAX, 'l') + "=u";
  EXPECT_EQ(std::string(evshim_saved_value_read(longer.c_str(), read, sizeof read)), "u");
  EXPECT_EQ(std::string(read), "");
}

// The environment a new image gets (preload_target.h): every entry of the
// environment passed to exec in its place, the user's LD_PRELOAD (that
// environment's, not this process's) first with the library after it, the
// user's value saved; given back by the constructor's setenv/unsetenv, the
// entries are the same, in the same order.
std::vector<std::string> Built(const std::vector<std::string>& given, const char* library, size_t* bytes = nullptr,
                               const char* other = nullptr) {
  std::vector<char*> envp;
  for (const std::string& v : given) envp.push_back(const_cast<char*>(v.c_str()));
  envp.push_back(nullptr);
  evshim_preload_env e;
  const size_t n = evshim_preload_env_measure(envp.data(), library, other, &e);
  if (bytes != nullptr) *bytes = n;
  if (n == 0) return {"unchanged"};
  std::vector<void*> buf((n + sizeof(void*) - 1) / sizeof(void*));
  char** env = evshim_preload_env_build(envp.data(), &e, buf.data());
  std::vector<std::string> out;
  const char* begin = static_cast<const char*>(static_cast<void*>(buf.data()));
  for (; *env != nullptr; ++env) {
    // Each entry is the given one, or written inside the buffer.
    const bool inside = *env >= begin && *env + std::strlen(*env) < begin + n;
    EXPECT_TRUE(inside || std::find(envp.begin(), envp.end(), *env) != envp.end());
    out.emplace_back(*env);
  }
  return out;
}

// What the library's constructor does with it (signals_preload.c): as glibc's
// setenv (in place) and unsetenv.
std::vector<std::string> GivenBack(std::vector<std::string> env) {
  auto find = [&](const std::string& name) {
    return std::find_if(env.begin(), env.end(), [&](const std::string& v) { return v.rfind(name + "=", 0) == 0; });
  };
  auto saved = find("EVSHIM_USER_LD_PRELOAD");
  if (saved == env.end()) return env;
  const std::string value = saved->substr(sizeof "EVSHIM_USER_LD_PRELOAD");
  env.erase(saved);
  auto ld = find("LD_PRELOAD");
  char other[PATH_MAX];
  const char* user = evshim_saved_value_read(value.c_str(), other, sizeof other);
  if (user == nullptr) {
    if (ld != env.end()) env.erase(ld);
  } else {
    *ld = "LD_PRELOAD=" + std::string(user);
  }
  return env;
}

TEST(PreloadEnvironment, TheChildsOwnPreloadFirstAndEverythingElseInPlace) {
  const char* lib = "/x/libevshim-signals.so";
  using V = std::vector<std::string>;
  const V unset = {"A=1", "PATH=/bin", "B="};
  EXPECT_EQ(Built(unset, lib), (V{"A=1", "PATH=/bin", "B=", "LD_PRELOAD=/x/libevshim-signals.so", "EVSHIM_USER_LD_PRELOAD="}));
  const V empty = {"A=1", "LD_PRELOAD=", "B=2"};
  EXPECT_EQ(Built(empty, lib), (V{"A=1", "LD_PRELOAD=/x/libevshim-signals.so", "B=2", "EVSHIM_USER_LD_PRELOAD=="}));
  const V user = {"LD_PRELOAD=libdl.so.2 /y/z.so", "A=1"};
  EXPECT_EQ(Built(user, lib),
            (V{"LD_PRELOAD=libdl.so.2 /y/z.so:/x/libevshim-signals.so", "A=1", "EVSHIM_USER_LD_PRELOAD==libdl.so.2 /y/z.so"}));
  // The child's environment decides, not this process's.
  setenv("LD_PRELOAD", "/parent/libp.so", 1);
  EXPECT_EQ(Built({"LD_PRELOAD=/child/libc1.so"}, lib),
            (V{"LD_PRELOAD=/child/libc1.so:/x/libevshim-signals.so", "EVSHIM_USER_LD_PRELOAD==/child/libc1.so"}));
  EXPECT_EQ(Built({}, lib), (V{"LD_PRELOAD=/x/libevshim-signals.so", "EVSHIM_USER_LD_PRELOAD="}));
  unsetenv("LD_PRELOAD");
  evshim_preload_env e;
  EXPECT_GT(evshim_preload_env_measure(nullptr, lib, nullptr, &e), 0u);  // execve's NULL: empty
  for (const V& given : {unset, empty, user, V{}}) EXPECT_EQ(GivenBack(Built(given, lib)), given);
  // With the other class's build saved for the child: after the user's
  // value's place, given back the same; one whose path cannot be saved is
  // left out.
  const char* other = "/x32/libevshim-signals.so";
  EXPECT_EQ(Built(user, lib, nullptr, other),
            (V{"LD_PRELOAD=libdl.so.2 /y/z.so:/x/libevshim-signals.so", "A=1",
               "EVSHIM_USER_LD_PRELOAD=/x32/libevshim-signals.so=libdl.so.2 /y/z.so"}));
  EXPECT_EQ(Built(unset, lib, nullptr, other).back(), "EVSHIM_USER_LD_PRELOAD=/x32/libevshim-signals.so");
  EXPECT_EQ(Built(unset, lib, nullptr, "/x=32/lib.so").back(), "EVSHIM_USER_LD_PRELOAD=");
  for (const V& given : {unset, empty, user, V{}}) EXPECT_EQ(GivenBack(Built(given, lib, nullptr, other)), given);
}

// Unchanged where the constructor could not give it back as it was (two
// LD_PRELOAD entries, a saved value already there), where it says
// supervised (the child's environment decides the mode), or where the
// library's path cannot stand in LD_PRELOAD.
TEST(PreloadEnvironment, UnchangedWhereItCannotBeGivenBackOrSaysSupervised) {
  using V = std::vector<std::string>;
  const char* lib = "/x/libevshim-signals.so";
  EXPECT_EQ(Built({"EVSHIM_SUPERVISED=1", "A=1"}, lib), V{"unchanged"});
  EXPECT_EQ(Built({"EVSHIM_SUPERVISED=0"}, lib).size(), 3u);
  EXPECT_EQ(Built({"EVSHIM_SUPERVISED="}, lib).size(), 3u);
  EXPECT_EQ(Built({"LD_PRELOAD=a.so", "LD_PRELOAD=b.so"}, lib), V{"unchanged"});
  EXPECT_EQ(Built({"EVSHIM_USER_LD_PRELOAD=", "A=1"}, lib), V{"unchanged"});
  EXPECT_EQ(Built({"A=1"}, "/a:b/libevshim-signals.so"), V{"unchanged"});
  EXPECT_EQ(Built({"A=1"}, "/a b/libevshim-signals.so"), V{"unchanged"});
  EXPECT_EQ(Built({"A=1"}, ""), V{"unchanged"});
  // A name that only begins like one is another variable.
  EXPECT_EQ(Built({"LD_PRELOADX=1", "EVSHIM_USER_LD_PRELOADX=2", "EVSHIM_SUPERVISED=10"}, lib).size(), 5u);
}

// Thousands of variables: every one kept, in place; the bytes are the
// pointer array and the two new entries.
TEST(PreloadEnvironment, ThousandsOfVariables) {
  std::vector<std::string> given;
  for (int i = 0; i < 20000; ++i) given.push_back("V" + std::to_string(i) + "=" + std::to_string(i * 7));
  given.insert(given.begin() + 12345, "LD_PRELOAD=/u/libu.so");
  size_t bytes = 0;
  const std::vector<std::string> built = Built(given, "/x/libevshim-signals.so", &bytes);
  ASSERT_EQ(built.size(), given.size() + 1);
  EXPECT_EQ(built[12345], "LD_PRELOAD=/u/libu.so:/x/libevshim-signals.so");
  EXPECT_EQ(built.back(), "EVSHIM_USER_LD_PRELOAD==/u/libu.so");
  EXPECT_EQ(GivenBack(built), given);
  EXPECT_GE(bytes, (given.size() + 2) * sizeof(char*));
  EXPECT_LT(bytes, (given.size() + 2) * sizeof(char*) + 200);
}

}  // namespace
