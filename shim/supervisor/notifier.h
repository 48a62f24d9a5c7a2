// The seccomp user-notification listener as an interface (seccomp_unotify(2)):
// the supervisor's parts answer calls through it, so restart detection,
// probes and replay run in unit tests against a scripted double
// (tests/support/fake_notifier.h) instead of a real target.
#pragma once

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <optional>

#include "shim/runtime/fault.h"

namespace evshim::shim {

// One intercepted system call (struct seccomp_notif, our own copy).
struct Notification {
  uint64_t id = 0;
  pid_t tid = 0;
  int nr = 0;
  uint32_t arch = 0;  // AUDIT_ARCH_*
  uint64_t instruction_pointer = 0;
  std::array<uint64_t, 6> args{};
};

// Whether an answer reached the call. kGone: the kernel refused it because the
// call is no longer pending (a signal interrupted the thread, or it died):
// routine, not a fault.
enum class Delivery : uint8_t { kDelivered, kGone };

// SECCOMP_IOCTL_NOTIF_ADDFD for one call.
struct AddFdRequest {
  uint64_t id = 0;
  int source_fd = -1;       // ours; the target gets a duplicate
  int target_fd = -1;       // >= 0: at this number, replacing it (ADDFD_FLAG_SETFD)
  bool cloexec = false;
  bool answer_with_fd = false;  // also answer the call with the number (ADDFD_FLAG_SEND)
};
struct AddFdResult {
  int fd = -1;         // the target's new descriptor
  int error = 0;       // when fd < 0: ENOENT (call gone), or the target's own
                       // limit (EMFILE, EBADF past RLIMIT_NOFILE)
  bool answered = false;  // the call got `fd` as its answer (ADDFD_FLAG_SEND)
};

class Notifier {
 public:
  virtual ~Notifier() = default;
  // The next notification; nullopt when there was none after all (the target
  // went away between the wake-up and the read: routine).
  virtual FaultOr<std::optional<Notification>> Receive() = 0;
  // Answers call `id` with `value`, or with -`error` when error != 0.
  virtual FaultOr<Delivery> Respond(uint64_t id, int64_t value, int error) = 0;
  // Lets call `id` run as the real system call (SECCOMP_USER_NOTIF_FLAG_CONTINUE).
  virtual FaultOr<Delivery> Continue(uint64_t id) = 0;
  virtual FaultOr<AddFdResult> AddFd(const AddFdRequest& request) = 0;
  // Whether call `id` is still pending (SECCOMP_IOCTL_NOTIF_ID_VALID).
  virtual bool IdValid(uint64_t id) = 0;
  // SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP; false when the kernel lacks it (6.6).
  virtual bool EnableSyncWakeup() = 0;
};

// The real listener. Falls back to ADDFD then SEND on kernels before 5.14.
class SeccompNotifier final : public Notifier {
 public:
  explicit SeccompNotifier(int listener) : listener_(listener) {}
  int fd() const { return listener_; }
  FaultOr<std::optional<Notification>> Receive() override;
  FaultOr<Delivery> Respond(uint64_t id, int64_t value, int error) override;
  FaultOr<Delivery> Continue(uint64_t id) override;
  FaultOr<AddFdResult> AddFd(const AddFdRequest& request) override;
  bool IdValid(uint64_t id) override;
  bool EnableSyncWakeup() override;

 private:
  int listener_;
  bool addfd_send_ = true;  // SECCOMP_ADDFD_FLAG_SEND works (5.14)
};

}  // namespace evshim::shim
