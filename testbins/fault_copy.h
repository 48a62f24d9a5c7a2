/*
 * The scenarios' side of the engine's copy that survives a fault
 * (docs/design.md "A copy that survives a fault"): x86_64 and i386 (the VM
 * suite's FastPath runs). Included once by port_scenarios.c and
 * kq_scenarios.c, and by tests/support/fault_copy.h (C++); it DEFINES
 * functions (static inline: a file uses some of them).
 */
#ifndef EVSHIM_TESTBINS_FAULT_COPY_H
#define EVSHIM_TESTBINS_FAULT_COPY_H

#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

/* A sanitizer runtime interposes the signal functions first (TSan builds
 * of the test programs): the engine then keeps process_vm_readv/writev. */
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define FAULT_COPY_EXPECTED 0
#else
#define FAULT_COPY_EXPECTED 1
#endif

/* From here on process_vm_readv/writev fail with EPERM; 0 when installed. */
static inline int deny_process_vm_calls(void) {
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return -1;
  struct sock_filter f[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_process_vm_readv, 1, 0),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_process_vm_writev, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = {(unsigned short)(sizeof f / sizeof f[0]), f};
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0) return -1;
  char probe[4];
  struct iovec local = {probe, sizeof probe}, remote = {probe, sizeof probe};
  return process_vm_readv(getpid(), &local, 1, &remote, 1, 0) == -1 && errno == EPERM ? 0 : -1;
}

/* The bad buffers: [0] unmapped (below mmap_min_addr), [1] PROT_NONE,
 * [2] read-only, [3] `room` bytes before a guard page (a list that starts
 * mapped and runs into it), [4] a file mapping truncated to nothing
 * (SIGBUS). NULL entries when one could not be made. */
#define FAULT_COPY_BAD 5
static inline void fault_copy_bad_buffers(void *bad[FAULT_COPY_BAD], size_t room) {
  bad[0] = (void *)(uintptr_t)4096;
  char *pages = (char *)mmap(NULL, 4 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (pages == MAP_FAILED) {
    bad[1] = bad[2] = bad[3] = NULL;
  } else {
    mprotect(pages, 4096, PROT_NONE);
    mprotect(pages + 4096, 4096, PROT_READ);
    mprotect(pages + 3 * 4096, 4096, PROT_NONE);
    bad[1] = pages;
    bad[2] = pages + 4096;
    bad[3] = pages + 3 * 4096 - room;
  }
  bad[4] = NULL;
  char path[] = "/tmp/evshim-fcopy-XXXXXX";
  int fd = mkstemp(path);
  if (fd >= 0) {
    unlink(path);
    if (ftruncate(fd, 4096) == 0) {
      void *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
      if (m != MAP_FAILED && ftruncate(fd, 0) == 0) bad[4] = m;
    }
    close(fd);
  }
}

/* Runs `child` in a forked child; its exit code, or 128 + the signal that
 * killed it. */
static inline int fault_copy_in_child(int (*child)(void)) {
  pid_t pid = fork();
  if (pid == 0) {
    alarm(30);
    _exit(child());
  }
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* The fault_copy scenario: the heap lists' child and the bad lists' child;
 * `bad_lists` names what the second checks. */
static inline int fault_copy_scenario(int (*heap_child)(void), int (*bad_child)(void), const char *bad_lists) {
  int heap = fault_copy_in_child(heap_child);
  int bad = fault_copy_in_child(bad_child);
  if (heap != 0 || bad != 0) {
    fprintf(stderr, "fault_copy: heap lists child %d, bad lists child %d\n", heap, bad);
    return 1;
  }
  printf("heap lists %s; %s EFAULT\n",
         FAULT_COPY_EXPECTED ? "copied without process_vm_readv/writev" : "EFAULT (gated off: process_vm_readv/writev)",
         bad_lists);
  return 0;
}

#endif
