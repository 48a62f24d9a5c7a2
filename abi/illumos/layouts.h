// illumos wire layouts: offsets and sizes, LP64 (amd64) and ILP32 (i386).
// Verified against the compiled structs (docs/rules-ports.md §1.6, §3.3) and
// pinned by static_asserts in tests/abi/illumos_layout_test.cc.
#pragma once

#include <cstddef>

#include "abi/common/data_model.h"

namespace evshim::abi::illumos {

// port_event_t / port_event32_t
struct PortEventLayout {
  size_t size, events, source, pad, object, user;
};
constexpr PortEventLayout kPortEventLp64{24, 0, 4, 6, 8, 16};
constexpr PortEventLayout kPortEventIlp32{16, 0, 4, 6, 8, 12};
constexpr const PortEventLayout& PortEvent(DataModel m) {
  return m == DataModel::kLp64 ? kPortEventLp64 : kPortEventIlp32;
}

// timespec_t / timespec32_t
struct TimespecLayout {
  size_t size, sec, nsec;
};
constexpr TimespecLayout kTimespecLp64{16, 0, 8};
constexpr TimespecLayout kTimespecIlp32{8, 0, 4};
constexpr const TimespecLayout& Timespec(DataModel m) {
  return m == DataModel::kLp64 ? kTimespecLp64 : kTimespecIlp32;
}

// port_notify_t / port_notify32_t
struct PortNotifyLayout {
  size_t size, port, user;
};
constexpr PortNotifyLayout kPortNotifyLp64{16, 0, 8};
constexpr PortNotifyLayout kPortNotifyIlp32{8, 0, 4};

// file_obj_t / file_obj32_t (PORT_SOURCE_FILE object; docs/rules-ports.md §1.6):
// three timestruc_t, uintptr_t fo_pad[3], char *fo_name. Each time is a
// timespec of the model (Timespec(m)).
struct FileObjLayout {
  size_t size, atime, mtime, ctime, pad, name;
};
constexpr FileObjLayout kFileObjLp64{80, 0, 16, 32, 48, 72};
constexpr FileObjLayout kFileObjIlp32{40, 0, 8, 16, 24, 36};
constexpr const FileObjLayout& FileObj(DataModel m) {
  return m == DataModel::kLp64 ? kFileObjLp64 : kFileObjIlp32;
}

}  // namespace evshim::abi::illumos
