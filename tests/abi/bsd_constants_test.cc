// (6) Every value a BSD personality's foreign <sys/event.h> defines equals
// evshim's own tables: abi/<p>/constants.h, the struct kevent layouts of
// abi/bsd/kevent.h (LP64: this is an x86_64 build) and the syscall table.
// The header side comes from bsd_header_values.c, compiled once per
// personality against that personality's include directory alone. The
// name lists (bsd_names_<p>.def) are checked against both source files, so
// a constant added to one side only fails here.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>

#include "abi/bsd/kevent.h"
#include "abi/dragonfly/constants.h"
#include "abi/freebsd/constants.h"
#include "abi/openbsd/constants.h"
#include "abi/syscall_table.h"
#include "tests/abi/illumos_header_values.h"

extern "C" {
extern const evshim_header_value evshim_freebsd_header_values[];
extern const unsigned evshim_freebsd_header_value_count;
extern const evshim_header_value evshim_openbsd_header_values[];
extern const unsigned evshim_openbsd_header_value_count;
extern const evshim_header_value evshim_dragonfly_header_values[];
extern const unsigned evshim_dragonfly_header_value_count;
}

namespace evshim::abi {
namespace {

using Values = std::map<std::string, long long>;

int Nr(Personality p, Call c) {
  for (const SyscallEntry& e : AllSyscalls()) {
    if (e.personality == p && e.call == c) return e.nr_lp64;
  }
  return -1;
}

void AddLayout(Values& v, const bsd::KeventLayout& l, const std::string& type = "struct kevent") {
  v["sizeof(" + type + ")"] = static_cast<long long>(l.size);
  // Offset, width and signedness: what the codecs read the fields with.
  auto add = [&](const std::string& name, const WireField& f, bool with_sign = true) {
    v["offsetof(" + type + ", " + name + ")"] = static_cast<long long>(f.offset);
    v["width(" + type + ", " + name + ")"] = static_cast<long long>(f.width);
    if (with_sign) v["signed(" + type + ", " + name + ")"] = f.is_signed ? 1 : 0;
  };
  add("ident", l.ident);
  add("filter", l.filter);
  add("flags", l.flags);
  add("fflags", l.fflags);
  add("data", l.data);
  add("udata", l.udata, /*with_sign=*/false);  // a pointer
  if (l.has_ext()) {
    v["offsetof(" + type + ", ext)"] = static_cast<long long>(l.ext.offset);
    add("ext[0]", l.ext_element(0));
  }
}

Values FreebsdExpected() {
  Values v = {
#define X(n) {#n, static_cast<long long>(freebsd::n)},
#include "tests/abi/bsd_names_freebsd.def"
#undef X
  };
  AddLayout(v, bsd::kFreebsdLp64);
  v["sizeof(struct kevent_freebsd11)"] = static_cast<long long>(bsd::kFreebsd11Lp64.size);
  v["offsetof(struct kevent_freebsd11, data)"] = static_cast<long long>(bsd::kFreebsd11Lp64.data.offset);
  v["width(struct kevent_freebsd11, data)"] = static_cast<long long>(bsd::kFreebsd11Lp64.data.width);
  v["offsetof(struct kevent_freebsd11, udata)"] = static_cast<long long>(bsd::kFreebsd11Lp64.udata.offset);
  v["EVSHIM_SYS_kqueue"] = Nr(Personality::kFreebsd, Call::kKqueue);
  v["EVSHIM_SYS_kevent"] = Nr(Personality::kFreebsd, Call::kKevent);
  v["EVSHIM_SYS_kqueuex"] = Nr(Personality::kFreebsd, Call::kKqueuex);
  v["EVSHIM_SYS_freebsd11_kevent"] = Nr(Personality::kFreebsd, Call::kKevent11);
  return v;
}

Values OpenbsdExpected() {
  Values v = {
#define X(n) {#n, static_cast<long long>(openbsd::n)},
#include "tests/abi/bsd_names_openbsd.def"
#undef X
  };
  AddLayout(v, bsd::kOpenbsdLp64);
  v["EVSHIM_SYS_kqueue"] = Nr(Personality::kOpenbsd, Call::kKqueue);
  v["EVSHIM_SYS_kevent"] = Nr(Personality::kOpenbsd, Call::kKevent);
  v["EVSHIM_SYS_kqueue1"] = Nr(Personality::kOpenbsd, Call::kKqueuex);
  return v;
}

Values DragonflyExpected() {
  Values v = {
#define X(n) {#n, static_cast<long long>(dragonfly::n)},
#include "tests/abi/bsd_names_dragonfly.def"
#undef X
  };
  AddLayout(v, bsd::kDragonflyLp64);
  v["EVSHIM_SYS_kqueue"] = Nr(Personality::kDragonfly, Call::kKqueue);
  v["EVSHIM_SYS_kevent"] = Nr(Personality::kDragonfly, Call::kKevent);
  return v;
}

void Compare(const evshim_header_value* table, unsigned count, const Values& expected) {
  std::set<std::string> seen;
  for (unsigned i = 0; i < count; ++i) {
    auto it = expected.find(table[i].name);
    if (it == expected.end()) {
      ADD_FAILURE() << table[i].name << " is emitted but has no expected value";
      continue;
    }
    EXPECT_EQ(table[i].value, it->second) << table[i].name;
    seen.insert(table[i].name);
  }
  for (const auto& [name, value] : expected) {
    EXPECT_TRUE(seen.count(name)) << name << " is expected but the header table lacks it";
  }
}

TEST(BsdHeaders, FreebsdValuesMatchTheTables) {
  Compare(evshim_freebsd_header_values, evshim_freebsd_header_value_count, FreebsdExpected());
}
TEST(BsdHeaders, OpenbsdValuesMatchTheTables) {
  Compare(evshim_openbsd_header_values, evshim_openbsd_header_value_count, OpenbsdExpected());
}
TEST(BsdHeaders, DragonflyValuesMatchTheTables) {
  Compare(evshim_dragonfly_header_values, evshim_dragonfly_header_value_count, DragonflyExpected());
}

// --- the name lists are complete -----------------------------------------

std::string Slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  EXPECT_TRUE(f.good() || f.eof()) << path;
  return s.str();
}

bool IsIdent(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// The identifier that follows `prefix` (after spaces) on lines that start
// with `prefix`; for "constexpr", the identifier after the type and before '='.
std::set<std::string> Names(const std::string& text, const std::string& prefix) {
  std::set<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    size_t i = line.find_first_not_of(" \t");
    if (i == std::string::npos || line.compare(i, prefix.size(), prefix) != 0) continue;
    i += prefix.size();
    if (prefix == "constexpr ") {
      size_t eq = line.find(" =", i);
      if (eq == std::string::npos) continue;
      size_t start = eq;
      while (start > i && IsIdent(line[start - 1])) --start;
      std::string name = line.substr(start, eq - start);
      // Only the foreign spellings (all capitals), not evshim's kNames.
      if (!name.empty() && std::none_of(name.begin(), name.end(), [](char c) { return std::islower(static_cast<unsigned char>(c)); })) {
        out.insert(name);
      }
      continue;
    }
    while (i < line.size() && line[i] == ' ') ++i;
    size_t end = i;
    while (end < line.size() && IsIdent(line[end])) ++end;
    if (end > i) out.insert(line.substr(i, end - i));
  }
  return out;
}

class BsdNameLists : public ::testing::TestWithParam<const char*> {};

TEST_P(BsdNameLists, CoverConstantsAndHeader) {
  const std::string p = GetParam();
  const std::string root = EVSHIM_SOURCE_DIR;
  std::set<std::string> listed = Names(Slurp(root + "/tests/abi/bsd_names_" + p + ".def"), "X(");
  std::set<std::string> in_constants = Names(Slurp(root + "/abi/" + p + "/constants.h"), "constexpr ");
  std::set<std::string> in_header = Names(Slurp(root + "/abi/" + p + "/include/sys/event.h"), "#define ");
  // Not constants: include guards, the EV_SET macro, the system call
  // numbers (compared with the syscall table above), and kqueue1's fcntl
  // flags (glibc's O_CLOEXEC/O_NONBLOCK, from <fcntl.h>, not <sys/event.h>).
  for (auto it = in_header.begin(); it != in_header.end();) {
    it = it->rfind("EVSHIM_", 0) == 0 || *it == "EV_SET" ? in_header.erase(it) : std::next(it);
  }
  in_constants.erase("O_CLOEXEC");
  in_constants.erase("O_NONBLOCK");
  EXPECT_FALSE(listed.empty());
  EXPECT_EQ(listed, in_constants) << "bsd_names_" << p << ".def vs abi/" << p << "/constants.h";
  EXPECT_EQ(listed, in_header) << "bsd_names_" << p << ".def vs abi/" << p << "/include/sys/event.h";
}

INSTANTIATE_TEST_SUITE_P(All, BsdNameLists, ::testing::Values("freebsd", "openbsd", "dragonfly"));

}  // namespace
}  // namespace evshim::abi
