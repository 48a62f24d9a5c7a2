// (6) Every value the illumos foreign headers define equals evshim's own
// table: abi/illumos/constants.h, abi/illumos/layouts.h (LP64: this is an
// x86_64 build) and the syscall table. The header side comes from a C file
// compiled against the foreign headers alone (illumos_header_values.c).
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>

#include "abi/illumos/constants.h"
#include "abi/illumos/layouts.h"
#include "abi/syscall_table.h"
#include "tests/abi/illumos_header_values.h"

namespace evshim::abi::illumos {
namespace {

int TableNumber(Call call) {
  for (const SyscallEntry& e : AllSyscalls()) {
    if (e.personality == Personality::kIllumos && e.call == call) return e.nr_lp64;
  }
  return -1;
}

std::map<std::string, long long> Expected() {
  using L = long long;
  return {
      {"PORT_SOURCE_AIO", PORT_SOURCE_AIO},
      {"PORT_SOURCE_TIMER", PORT_SOURCE_TIMER},
      {"PORT_SOURCE_USER", PORT_SOURCE_USER},
      {"PORT_SOURCE_FD", PORT_SOURCE_FD},
      {"PORT_SOURCE_ALERT", PORT_SOURCE_ALERT},
      {"PORT_SOURCE_MQ", PORT_SOURCE_MQ},
      {"PORT_SOURCE_FILE", PORT_SOURCE_FILE},
      {"PORT_ALERT_SET", PORT_ALERT_SET},
      {"PORT_ALERT_UPDATE", PORT_ALERT_UPDATE},
      {"PORT_ALERT_INVALID", PORT_ALERT_INVALID},
      {"FILE_ACCESS", FILE_ACCESS},
      {"FILE_MODIFIED", FILE_MODIFIED},
      {"FILE_ATTRIB", FILE_ATTRIB},
      {"FILE_TRUNC", FILE_TRUNC},
      {"FILE_NOFOLLOW", FILE_NOFOLLOW},
      {"FILE_DELETE", FILE_DELETE},
      {"FILE_RENAME_TO", FILE_RENAME_TO},
      {"FILE_RENAME_FROM", FILE_RENAME_FROM},
      {"UNMOUNTED", UNMOUNTED},
      {"MOUNTEDOVER", MOUNTEDOVER},
      {"FILE_EXCEPTION", FILE_EXCEPTION},
      // layouts (LP64)
      {"sizeof(port_event_t)", static_cast<L>(kPortEventLp64.size)},
      {"offsetof(port_event_t, portev_events)", static_cast<L>(kPortEventLp64.events)},
      {"offsetof(port_event_t, portev_source)", static_cast<L>(kPortEventLp64.source)},
      {"offsetof(port_event_t, portev_pad)", static_cast<L>(kPortEventLp64.pad)},
      {"offsetof(port_event_t, portev_object)", static_cast<L>(kPortEventLp64.object)},
      {"offsetof(port_event_t, portev_user)", static_cast<L>(kPortEventLp64.user)},
      {"sizeof(port_notify_t)", static_cast<L>(kPortNotifyLp64.size)},
      {"offsetof(port_notify_t, portnfy_port)", static_cast<L>(kPortNotifyLp64.port)},
      {"offsetof(port_notify_t, portnfy_user)", static_cast<L>(kPortNotifyLp64.user)},
      {"sizeof(file_obj_t)", static_cast<L>(kFileObjLp64.size)},
      {"offsetof(file_obj_t, fo_atime)", static_cast<L>(kFileObjLp64.atime)},
      {"offsetof(file_obj_t, fo_mtime)", static_cast<L>(kFileObjLp64.mtime)},
      {"offsetof(file_obj_t, fo_ctime)", static_cast<L>(kFileObjLp64.ctime)},
      {"offsetof(file_obj_t, fo_pad)", static_cast<L>(kFileObjLp64.pad)},
      {"offsetof(file_obj_t, fo_name)", static_cast<L>(kFileObjLp64.name)},
      {"sizeof(timespec_t)", static_cast<L>(kTimespecLp64.size)},
      {"sizeof(uint_t)", 4},
      {"sizeof(ushort_t)", 2},
      // <sys/port_impl.h>: illumos's names for the same opcodes
      {"PORT_CREATE", PORT_CREATE},
      {"PORT_ASSOCIATE", PORT_ASSOCIATE},
      {"PORT_DISSOCIATE", PORT_DISSOCIATE},
      {"PORT_SEND", PORT_SEND},
      {"PORT_SENDN", PORT_SENDN},
      {"PORT_GET", PORT_GET},
      {"PORT_GETN", PORT_GETN},
      {"PORT_ALERT", PORT_ALERT},
      {"PORT_DISPATCH", PORT_DISPATCH},
      {"PORT_SYS_NOPORT", PORT_SYS_NOPORT},
      {"PORT_SYS_NOSHARE", PORT_SYS_NOSHARE},
      {"PORT_CODE_MASK", PORT_CODE_MASK},
      {"PORT_MAX_LIST", PORT_MAX_LIST},
      // the raw convention
      {"EVSHIM_SYS_portfs", TableNumber(Call::kPortfs)},
      {"EVSHIM_SYS_timer_create", TableNumber(Call::kTimerCreate)},
      {"EVSHIM_SYS_timer_delete", TableNumber(Call::kTimerDelete)},
      {"EVSHIM_SYS_timer_settime", TableNumber(Call::kTimerSettime)},
      {"EVSHIM_SYS_timer_gettime", TableNumber(Call::kTimerGettime)},
      {"EVSHIM_SYS_timer_getoverrun", TableNumber(Call::kTimerGetoverrun)},
      {"EVSHIM_PORT_CREATE", PORT_CREATE},
      {"EVSHIM_PORT_ASSOCIATE", PORT_ASSOCIATE},
      {"EVSHIM_PORT_DISSOCIATE", PORT_DISSOCIATE},
      {"EVSHIM_PORT_SEND", PORT_SEND},
      {"EVSHIM_PORT_SENDN", PORT_SENDN},
      {"EVSHIM_PORT_GET", PORT_GET},
      {"EVSHIM_PORT_GETN", PORT_GETN},
      {"EVSHIM_PORT_ALERT", PORT_ALERT},
      {"EVSHIM_PORT_DISPATCH", PORT_DISPATCH},
      {"EVSHIM_PORT_SYS_NOPORT", PORT_SYS_NOPORT},
      {"EVSHIM_PORT_FD_CLOSING", PORT_EVSHIM_FD_CLOSING},
      {"EVSHIM_PORT_SETTLE", PORT_EVSHIM_SETTLE},
      {"EVSHIM_PORT_ILP32_ETIME_BIT", kIlp32EtimeBit},
      {"EVSHIM_ILLUMOS_POLLWRBAND", POLLWRBAND},
      {"EVSHIM_ILLUMOS_POLLRDHUP", POLLRDHUP},
  };
}

TEST(IllumosHeaders, EveryValueMatchesTheTables) {
  const std::map<std::string, long long> expected = Expected();
  std::set<std::string> seen;
  for (unsigned i = 0; i < evshim_illumos_header_value_count; ++i) {
    const evshim_header_value& v = evshim_illumos_header_values[i];
    auto it = expected.find(v.name);
    if (it == expected.end()) {
      ADD_FAILURE() << v.name << " is emitted but has no expected value";
      continue;
    }
    EXPECT_EQ(v.value, it->second) << v.name;
    seen.insert(v.name);
  }
  for (const auto& [name, value] : expected) {
    EXPECT_TRUE(seen.count(name)) << name << " is expected but the header table lacks it";
  }
}

TEST(IllumosHeaders, I386NumbersArePinned) {
  // The i386 header value (1000) is asserted in illumos_header_values.c when
  // compiled -m32; here the table is pinned to the same literal.
  for (const SyscallEntry& e : AllSyscalls()) {
    if (e.personality != Personality::kIllumos) continue;
    const std::map<Call, std::pair<int, int>> pinned = {
        {Call::kPortfs, {182, 1000}},       {Call::kTimerCreate, {1001, 1001}},
        {Call::kTimerDelete, {1002, 1002}}, {Call::kTimerSettime, {1003, 1003}},
        {Call::kTimerGettime, {1004, 1004}}, {Call::kTimerGetoverrun, {1005, 1005}},
    };
    auto it = pinned.find(e.call);
    ASSERT_NE(it, pinned.end()) << "unexpected illumos call " << e.name;
    EXPECT_EQ(e.nr_lp64, it->second.first) << e.name;
    EXPECT_EQ(e.nr_ilp32, it->second.second) << e.name;
  }
  EXPECT_EQ(kEtime, 62);
  EXPECT_EQ(kIlp32EtimeBit, 0x40000000u);
}

}  // namespace
}  // namespace evshim::abi::illumos
