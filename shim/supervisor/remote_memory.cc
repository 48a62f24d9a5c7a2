#include "shim/supervisor/remote_memory.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <string>

#include "abi/trace/observer.h"
#include "shim/supervisor/notifier.h"

namespace evshim::shim {

using emul::Errno;
using emul::Result;

MemoryTransfer MemoryTransfer::Host() { return {&process_vm_readv, &process_vm_writev}; }

bool RemoteMemory::ThroughProcMem(bool write, uint64_t addr, void* local, size_t len) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/mem", tid_);
  int fd = open(path, (write ? O_WRONLY : O_RDONLY) | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT || errno == ESRCH) {
      died_ = true;
      return false;
    }
    fault_ = Fault{"open /proc/TID/mem", errno, "accessing the memory of thread " + std::to_string(tid_)};
    return false;
  }
  ssize_t n = write ? pwrite(fd, local, len, static_cast<off_t>(addr))
                    : pread(fd, local, len, static_cast<off_t>(addr));
  close(fd);
  return n == static_cast<ssize_t>(len);  // EIO or short: unmapped, the guest's EFAULT
}

bool RemoteMemory::Transfer(bool write, uint64_t addr, void* local_buf, size_t len) {
  if (fault_) return false;  // the supervisor stops serving this call
  if (no_cross_memory_attach_) return ThroughProcMem(write, addr, local_buf, len);
  iovec local{local_buf, len};
  iovec remote{reinterpret_cast<void*>(addr), len};
  ssize_t n = (write ? transfer_.write : transfer_.read)(tid_, &local, 1, &remote, 1, 0);
  if (n == static_cast<ssize_t>(len)) return true;
  if (n >= 0) return false;  // short: a page is unmapped, the guest's EFAULT
  switch (errno) {
    case EFAULT:  // the guest's bad address
      return false;
    case ESRCH:  // the thread is gone: its answer is lost anyway
      died_ = true;
      return false;
    case ENOSYS:  // kernel without CONFIG_CROSS_MEMORY_ATTACH
      no_cross_memory_attach_ = true;
      return ThroughProcMem(write, addr, local_buf, len);
    default:  // EPERM (Yama, an undumpable target), ENOMEM: ours, not the guest's
      fault_ = Fault{write ? "process_vm_writev" : "process_vm_readv", errno,
                     "accessing the memory of thread " + std::to_string(tid_)};
      return false;
  }
}

Result<void> RemoteMemory::Read(uint64_t addr, std::span<std::byte> out) {
  if (out.empty()) return {};
  if (!Transfer(/*write=*/false, addr, out.data(), out.size())) return Errno{EFAULT};
  if (notifier_ != nullptr && !notifier_->IdValid(id_)) {
    died_ = true;
    return Errno{EFAULT};
  }
  return {};
}

Result<void> RemoteMemory::Write(uint64_t addr, std::span<const std::byte> in) {
  if (in.empty()) return {};
  if (!Transfer(/*write=*/true, addr, const_cast<std::byte*>(in.data()), in.size())) return Errno{EFAULT};
  if (observer_ != nullptr) observer_->OnWrite(id_, addr, in);  // trace
  return {};
}

}  // namespace evshim::shim
