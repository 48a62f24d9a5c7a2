/* smoke: checks that the VM really runs i386 code through the compat
 * syscall entry.  Built twice by `scripts/vm-test --smoke`:
 *   gcc -m32 (dynamic, so it also proves /usr/lib32 is usable in the guest)
 *   gcc      (64-bit dynamic)
 *
 * i386:   int $0x80 with an unknown number returns -ENOSYS, and int $0x80
 *         getpid (20) equals getpid().
 * x86_64: the syscall instruction with an unknown number returns -ENOSYS,
 *         and int $0x80 getpid (i386 number 20) from a 64-bit process
 *         equals getpid() (which needs IA-32 emulation in the kernel).
 * Exit status 0 when every check holds.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

enum { kUnknownNr = 1000, kI386Getpid = 20 };

static long int80(long nr) {
  long ret;
#if defined(__x86_64__)
  /* From 64-bit code the compat entry may not preserve r8-r11. */
  __asm__ volatile("int $0x80" : "=a"(ret) : "a"(nr)
                   : "r8", "r9", "r10", "r11", "memory");
#else
  __asm__ volatile("int $0x80" : "=a"(ret) : "a"(nr) : "memory");
#endif
  return ret;
}

#if defined(__x86_64__)
static long syscall_insn(long nr) {
  long ret;
  __asm__ volatile("syscall" : "=a"(ret) : "a"(nr) : "rcx", "r11", "memory");
  return ret;
}
#endif

static const char *name = "smoke";

static int check(const char *what, long got, long want) {
  int ok = got == want;
  printf("%s: %-32s got %ld, want %ld: %s\n", name, what, got, want,
         ok ? "ok" : "FAIL");
  return ok ? 0 : 1;
}

int main(int argc, char **argv) {
  (void)argc;
  if (argv[0] != NULL) {
    const char *slash = strrchr(argv[0], '/');
    name = slash != NULL ? slash + 1 : argv[0];
  }
  int bad = 0;
#if defined(__i386__)
  bad += check("int $0x80 nr 1000", int80(kUnknownNr), -ENOSYS);
  bad += check("int $0x80 getpid", int80(kI386Getpid), (long)getpid());
#elif defined(__x86_64__)
  bad += check("syscall nr 1000", syscall_insn(kUnknownNr), -ENOSYS);
  bad += check("int $0x80 getpid (compat entry)", int80(kI386Getpid),
               (long)getpid());
#else
#error "smoke.c is for i386 and x86_64"
#endif
  printf("%s: %zu-bit, %s\n", name, sizeof(void *) * 8,
         bad ? "FAILED" : "passed");
  return bad ? 1 : 0;
}
