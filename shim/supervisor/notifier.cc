#include "shim/supervisor/notifier.h"

#include <fcntl.h>
#include <linux/seccomp.h>
#include <sys/ioctl.h>

#include <cerrno>
#include <cstring>

#ifndef SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (1UL << 0)
#endif
#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#endif
#ifndef SECCOMP_ADDFD_FLAG_SEND
#define SECCOMP_ADDFD_FLAG_SEND (1UL << 1)
#endif

namespace evshim::shim {

FaultOr<std::optional<Notification>> SeccompNotifier::Receive() {
  seccomp_notif req;
  std::memset(&req, 0, sizeof req);
  if (ioctl(listener_, SECCOMP_IOCTL_NOTIF_RECV, &req) != 0) {
    // ENOENT: the target went away before we read it; EINTR/EAGAIN: nothing
    // after all. Routine.
    if (errno == ENOENT || errno == EINTR || errno == EAGAIN) return std::optional<Notification>{};
    return Fault{"SECCOMP_IOCTL_NOTIF_RECV", errno, "receiving a call"};
  }
  Notification n;
  n.id = req.id;
  n.tid = static_cast<pid_t>(req.pid);
  n.nr = req.data.nr;
  n.arch = req.data.arch;
  n.instruction_pointer = req.data.instruction_pointer;
  for (int i = 0; i < 6; ++i) n.args[i] = req.data.args[i];
  return std::optional<Notification>{n};
}

FaultOr<Delivery> SeccompNotifier::Respond(uint64_t id, int64_t value, int error) {
  seccomp_notif_resp resp{};
  resp.id = id;
  resp.val = error ? 0 : value;
  resp.error = error ? -error : 0;
  resp.flags = 0;
  if (ioctl(listener_, SECCOMP_IOCTL_NOTIF_SEND, &resp) == 0) return Delivery::kDelivered;
  if (errno == ENOENT) return Delivery::kGone;  // interrupted or dead meanwhile
  return Fault{"SECCOMP_IOCTL_NOTIF_SEND", errno, "answering a call"};
}

FaultOr<Delivery> SeccompNotifier::Continue(uint64_t id) {
  seccomp_notif_resp resp{};
  resp.id = id;
  resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
  if (ioctl(listener_, SECCOMP_IOCTL_NOTIF_SEND, &resp) == 0) return Delivery::kDelivered;
  if (errno == ENOENT) return Delivery::kGone;
  return Fault{"SECCOMP_IOCTL_NOTIF_SEND", errno, "letting a call continue"};
}

FaultOr<AddFdResult> SeccompNotifier::AddFd(const AddFdRequest& request) {
  seccomp_notif_addfd addfd{};
  addfd.id = request.id;
  addfd.srcfd = static_cast<uint32_t>(request.source_fd);
  addfd.newfd = request.target_fd >= 0 ? static_cast<uint32_t>(request.target_fd) : 0;
  addfd.newfd_flags = request.cloexec ? O_CLOEXEC : 0;
  addfd.flags = request.target_fd >= 0 ? SECCOMP_ADDFD_FLAG_SETFD : 0;
  const bool send = request.answer_with_fd && addfd_send_;
  if (send) addfd.flags |= SECCOMP_ADDFD_FLAG_SEND;
  int fd = ioctl(listener_, SECCOMP_IOCTL_NOTIF_ADDFD, &addfd);
  if (fd < 0 && errno == EINVAL && send) {
    addfd_send_ = false;  // kernel < 5.14: add, then answer
    addfd.flags &= ~static_cast<__u32>(SECCOMP_ADDFD_FLAG_SEND);
    fd = ioctl(listener_, SECCOMP_IOCTL_NOTIF_ADDFD, &addfd);
  }
  AddFdResult r;
  if (fd >= 0) {
    r.fd = fd;
    r.answered = request.answer_with_fd && addfd_send_;
    return r;
  }
  switch (errno) {
    case ENOENT:  // the call is gone
    case EMFILE:  // the target's descriptor table is full
    case EBADF:   // ... or the number is past its RLIMIT_NOFILE
      r.error = errno;
      return r;
    default:
      return Fault{"SECCOMP_IOCTL_NOTIF_ADDFD", errno, "installing a descriptor in the target"};
  }
}

bool SeccompNotifier::IdValid(uint64_t id) {
  return ioctl(listener_, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) == 0;
}

bool SeccompNotifier::EnableSyncWakeup() {
  uint64_t flags = SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP;
  return ioctl(listener_, SECCOMP_IOCTL_NOTIF_SET_FLAGS, flags) == 0;
}

}  // namespace evshim::shim
