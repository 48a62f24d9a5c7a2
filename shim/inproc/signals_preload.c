/*
 * libevshim-signals.so: the foreign libraries' signal wrappers
 * (trap_library.h, with sigaction() and signal() as the libraries define
 * them around it), preloaded by `evshim run` in fast mode (shim/cli/
 * launch_preload.h; docs/design.md "A copy that survives a fault", The
 * wrappers preloaded). Being first in the global scope from the start, they
 * are the program's signal functions, so the engine's gating says on also
 * when the foreign library is loaded later with dlopen(RTLD_LOCAL)
 * (CPython's kqueue module): that engine gets the copy into the program's
 * memory that survives a fault.
 *
 * Small and C only, and it does not link the engine: a program that never
 * loads a foreign library pays for these few functions, not for the
 * engine and its C++ runtime. Until an engine is loaded the wrappers keep
 * SIGSYS, SIGSEGV and SIGBUS out of every mask (what a fast-mode engine
 * under `evshim run` would do from its start: the trap may come, and the
 * fault copy may be on, so no thread may have them blocked when it comes)
 * and leave dispositions alone; the engine's constructor hands over its own
 * two entries (evshim_signals_attach, called from trap.cc), which decide
 * from then on.
 *
 * Where the library is linked too, its wrappers come after these (RTLD_NEXT
 * reaches them, then libc): each step drops the same signals from a mask
 * (idempotent), and a kept signal's disposition is set once, by the first
 * (evshim_kept_sigaction); every other sigaction() goes on to the
 * library's, whose EVFILT_SIGNAL hook sees it.
 *
 * The launcher appends this library to the user's LD_PRELOAD and leaves the
 * user's own value in EVSHIM_USER_LD_PRELOAD ("" unset, "=VALUE" set): the
 * constructor below puts it back, so the program sees its environment as
 * given. The library passes itself on across exec in the same way (the exec
 * entries below): a new image that takes it (preload_target.h, the
 * launcher's rule) gets the same pair in its environment, built from the
 * environment the caller passes, and its constructor gives that back.
 * Built for x86_64 and for i386 (build32) from this source: the saved value
 * also names the other class's build when the launcher found one, so an
 * image of the other class gets that one (never this one, which its loader
 * would refuse) and passes this one on in turn.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "preload_target.h"
#include "trap.h"

#define EXPORT __attribute__((visibility("default")))
/* Never built with a sanitizer runtime in use (the launcher preloads it
 * only where foreign_sanitize is none); trap_library.h wants the name. */
#define NOT_TSAN_INSTRUMENTED

typedef int (*kept_sigaction_fn)(int, const struct sigaction *, struct sigaction *, int *);
typedef void (*trap_unblock_fn)(sigset_t *);
/* The engine's entries, once one is loaded (__atomic: read in handlers). */
static kept_sigaction_fn engine_kept_sigaction;
static trap_unblock_fn engine_trap_unblock;

/* Called by the engine's constructor (trap.cc) when this library is loaded. */
EXPORT void evshim_signals_attach(kept_sigaction_fn kept, trap_unblock_fn unblock) {
  __atomic_store_n(&engine_kept_sigaction, kept, __ATOMIC_RELEASE);
  __atomic_store_n(&engine_trap_unblock, unblock, __ATOMIC_RELEASE);
}

static void preload_trap_unblock(sigset_t *set) {
  trap_unblock_fn engine = __atomic_load_n(&engine_trap_unblock, __ATOMIC_ACQUIRE);
  if (engine != NULL) {
    engine(set);
  } else if (set != NULL) {
    sigdelset(set, SIGSYS);
    sigdelset(set, SIGSEGV);
    sigdelset(set, SIGBUS);
  }
}

static int preload_kept_sigaction(int sig, const struct sigaction *act, struct sigaction *oldact, int *r) {
  kept_sigaction_fn engine = __atomic_load_n(&engine_kept_sigaction, __ATOMIC_ACQUIRE);
  return engine != NULL ? engine(sig, act, oldact, r) : 0;
}

/* trap_library.h's wrappers, on the two entries above. Its mark is
 * renamed: an engine that knows this library (one that attaches) looks for
 * evshim_preloaded_signals too; an older one finds no mark of the object
 * that has the program's signal functions and keeps the copy off, rather
 * than rely on wrappers it never attached to. */
#define evshim_trap_unblock preload_trap_unblock
#define evshim_kept_sigaction preload_kept_sigaction
#define evshim_library_signals evshim_preloaded_signals
#include "trap_library.h"

EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *oldact) {
  return trap_sigaction(sig, act, oldact);
}

/* BSD signal(), through sigaction() above (trap_library.h). */
EXPORT sighandler_t signal(int sig, sighandler_t handler) { return trap_bsd_signal(sig, handler); }

/*
 * Passing the preload on across exec (docs/design.md "A copy that survives
 * a fault", The wrappers preloaded: children). When this process was
 * started with the preload in fast mode (the launcher's, or a parent's
 * through these entries: EVSHIM_USER_LD_PRELOAD was there at its start),
 * every exec entry of glibc that a program or a shell calls asks whether
 * the new image takes the preload and which build (preload_target.h, with
 * this process's loader: this library, from dladdr, or the other class's
 * one saved at start, each only when it is there and of its class) and
 * whether the environment it is given allows it (not supervised: the
 * child's environment decides, as the launcher's does). If so, the image
 * is started with that environment plus the pair the launcher gives
 * (evshim_preload_env_build); if that exec fails, the call goes on exactly
 * as given, so its errno is the real one (and an exec the two added
 * variables would make too big runs without them). Otherwise the call goes
 * on unchanged.
 *
 * These may run in a vfork child (CPython's _posixsubprocess), in the
 * parent's memory: no allocation, no lock, the next functions found at
 * load time. An exec builds the new environment on the stack, at most
 * kExecStackBytes (about 4000 variables); a larger one runs without the
 * preload, never changed otherwise. posix_spawn and posix_spawnp (run in
 * the parent) map it and unmap it after, without a bound.
 */
typedef int (*execve_fn)(const char *, char *const[], char *const[]);
typedef int (*execvp_fn)(const char *, char *const[]);
typedef int (*fexecve_fn)(int, char *const[], char *const[]);
typedef int (*execveat_fn)(int, const char *, char *const[], char *const[], int);
typedef int (*spawn_fn)(pid_t *, const char *, const posix_spawn_file_actions_t *, const posix_spawnattr_t *,
                        char *const[], char *const[]);
extern char **environ;

enum { kExecStackBytes = 32 * 1024 };

static struct {
  execve_fn execve;
  execvp_fn execvp;
  execve_fn execvpe;
  fexecve_fn fexecve;
  execveat_fn execveat;
  spawn_fn posix_spawn;
  spawn_fn posix_spawnp;
} next_exec;

/* What this process passes on: set by the constructor, read-only after. */
static struct {
  int on;
  const char *library;                  /* this library's path, as LD_PRELOAD named it */
  char other[PATH_MAX];                 /* the other class's build (x86_64 or i386), "" when none */
  char loader[EVSHIM_PRELOAD_NAME_MAX]; /* this process's program interpreter */
} pass_on;

static void resolve_exec_entries(void) {
  next_exec.execve = TRAP_NEXT(execve_fn, "execve");
  next_exec.execvp = TRAP_NEXT(execvp_fn, "execvp");
  next_exec.execvpe = TRAP_NEXT(execve_fn, "execvpe");
  next_exec.fexecve = TRAP_NEXT(fexecve_fn, "fexecve");
  next_exec.execveat = TRAP_NEXT(execveat_fn, "execveat");
  next_exec.posix_spawn = TRAP_NEXT(spawn_fn, "posix_spawn");
  next_exec.posix_spawnp = TRAP_NEXT(spawn_fn, "posix_spawnp");
}
/* Before the constructor (another library's constructor execs): found now. */
#define NEXT_EXEC(field) (next_exec.field != NULL ? next_exec.field : (resolve_exec_entries(), next_exec.field))

/* The main program's PT_INTERP, from its loaded headers (the first object). */
static int own_loader(struct dl_phdr_info *info, size_t size, void *data) {
  (void)size;
  char *out = data;
  for (ElfW(Half) i = 0; i < info->dlpi_phnum; i++) {
    if (info->dlpi_phdr[i].p_type != PT_INTERP) continue;
    const char *interp = (const char *)(info->dlpi_addr + info->dlpi_phdr[i].p_vaddr);
    const size_t n = strnlen(interp, EVSHIM_PRELOAD_NAME_MAX);
    if (n < EVSHIM_PRELOAD_NAME_MAX) memcpy(out, interp, n + 1);
    break;
  }
  return 1; /* the main program only */
}
static void pass_on_start(void) {
  Dl_info self;
  static const char here = 0;
  if (dladdr(&here, &self) == 0 || self.dli_fname == NULL || self.dli_fname[0] != '/') return;
  dl_iterate_phdr(own_loader, pass_on.loader);
  pass_on.library = self.dli_fname;
  pass_on.on = pass_on.loader[0] != '\0';
}

/* The build of the library the image exec would load from (dirfd, path)
 * takes (this one or the other class's, each only when it is there and of
 * its class), NULL for none; into *passed, the one that image passes on to
 * the other class (NULL for none). */
static const char *library_for_image(int dirfd, const char *path, int open_flags, const char **passed) {
  const struct evshim_preload_libraries libraries = {pass_on.library, pass_on.other};
  return evshim_preload_library_for(&libraries, evshim_preload_class_at(dirfd, path, open_flags, pass_on.loader),
                                    passed);
}

/* Runs `go(call, env)` with `envp` plus the preload when the image exec
 * would load from (dirfd, path) takes a build of the library that is there
 * (this one, or the other class's) and the environment allows it: 1, its
 * result in *r. Else 0, nothing run. errno as it was when `go` is not run,
 * and on entry to `go`. */
typedef int (*launch_fn)(const void *call, char *const envp[]);
static int with_the_preload(int dirfd, const char *path, int open_flags, char *const envp[], int mapped, launch_fn go,
                            const void *call, int *r) {
  if (!pass_on.on) return 0;
  const int saved = errno;
  struct evshim_preload_env e;
  const char *passed = NULL;
  const char *library = library_for_image(dirfd, path, open_flags, &passed);
  int ran = 0;
  if (library != NULL && evshim_preload_env_measure(envp, library, passed, &e) != 0 &&
      (mapped || e.bytes <= kExecStackBytes)) {
    if (mapped) {
      void *buf = mmap(NULL, e.bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (buf != MAP_FAILED) {
        errno = saved;
        *r = go(call, evshim_preload_env_build(envp, &e, buf));
        const int err = errno;
        munmap(buf, e.bytes);
        errno = err;
        ran = 1;
      }
    } else {
      void *buf[(e.bytes + sizeof(void *) - 1) / sizeof(void *)];
      errno = saved;
      *r = go(call, evshim_preload_env_build(envp, &e, buf));
      ran = 1;
    }
  }
  if (!ran) errno = saved;
  return ran;
}

/* "/proc/self/fd/N": the file open at fd (not negative), for the rule. */
static void fd_path(int fd, char out[32]) {
  char digits[12];
  int n = 0;
  unsigned v = (unsigned)fd;
  do {
    digits[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v != 0);
  memcpy(out, "/proc/self/fd/", 14);
  for (int i = 0; i < n; i++) out[14 + i] = digits[n - 1 - i];
  out[14 + n] = '\0';
}

struct exec_call {
  const char *path;
  char *const *argv;
  int fd;
  int flags;
};
static int go_execve(const void *c, char *const envp[]) {
  const struct exec_call *x = c;
  execve_fn next = NEXT_EXEC(execve);
  return next != NULL ? next(x->path, x->argv, envp) : (int)syscall(SYS_execve, x->path, x->argv, envp);
}
static int go_fexecve(const void *c, char *const envp[]) {
  const struct exec_call *x = c;
  fexecve_fn next = NEXT_EXEC(fexecve);
  return next != NULL ? next(x->fd, x->argv, envp) : (errno = ENOSYS, -1);
}
static int go_execveat(const void *c, char *const envp[]) {
  const struct exec_call *x = c;
  execveat_fn next = NEXT_EXEC(execveat);
  return next != NULL ? next(x->fd, x->path, x->argv, envp, x->flags)
                      : (int)syscall(SYS_execveat, x->fd, x->path, x->argv, envp, x->flags);
}

/* execve(path): with the preload when it applies (returns only if that
 * exec failed), then as given. */
static int exec_path(const char *path, char *const argv[], char *const envp[]) {
  const struct exec_call c = {path, argv, -1, 0};
  int r;
  with_the_preload(AT_FDCWD, path, 0, envp, 0, go_execve, &c, &r);
  return go_execve(&c, envp);
}
/* The file execvp would run for `file`, with the preload when it applies:
 * returns only when it did not (or that exec failed). */
static void exec_found(const char *file, char *const argv[], char *const envp[]) {
  if (!pass_on.on) return;
  const int saved = errno;
  char path[PATH_MAX];
  if (evshim_find_program(file, getenv("PATH"), path, sizeof path)) {
    const struct exec_call c = {path, argv, -1, 0};
    int r;
    with_the_preload(AT_FDCWD, path, 0, envp, 0, go_execve, &c, &r);
  }
  errno = saved;
}
static int exec_search(const char *file, char *const argv[], char *const envp[]) {
  exec_found(file, argv, envp);
  execve_fn next = NEXT_EXEC(execvpe);
  if (next == NULL) {
    errno = ENOSYS;
    return -1;
  }
  return next(file, argv, envp);
}
static int exec_search_environ(const char *file, char *const argv[]) {
  exec_found(file, argv, environ);
  /* execvp itself next (a foreign library's wrapper of it comes next). */
  execvp_fn next = NEXT_EXEC(execvp);
  if (next == NULL) {
    errno = ENOSYS;
    return -1;
  }
  return next(file, argv);
}

EXPORT int execve(const char *path, char *const argv[], char *const envp[]) { return exec_path(path, argv, envp); }
EXPORT int execv(const char *path, char *const argv[]) { return exec_path(path, argv, environ); }
EXPORT int execvpe(const char *file, char *const argv[], char *const envp[]) { return exec_search(file, argv, envp); }
EXPORT int execvp(const char *file, char *const argv[]) { return exec_search_environ(file, argv); }
EXPORT int fexecve(int fd, char *const argv[], char *const envp[]) {
  const struct exec_call c = {NULL, argv, fd, 0};
  char path[32];
  int r;
  if (fd >= 0) {
    fd_path(fd, path);
    with_the_preload(AT_FDCWD, path, 0, envp, 0, go_fexecve, &c, &r);
  }
  return go_fexecve(&c, envp);
}
#if __GLIBC_PREREQ(2, 34)
EXPORT int execveat(int dirfd, const char *path, char *const argv[], char *const envp[], int flags) {
  const struct exec_call c = {path, argv, dirfd, flags};
  char fd_file[32];
  const char *target = path;
  int at = dirfd;
  if ((flags & AT_EMPTY_PATH) && path[0] == '\0') {
    if (dirfd < 0) return go_execveat(&c, envp);
    fd_path(dirfd, fd_file);
    target = fd_file;
    at = AT_FDCWD;
  }
  int r;
  with_the_preload(at, target, (flags & AT_SYMLINK_NOFOLLOW) ? O_NOFOLLOW : 0, envp, 0, go_execveat, &c, &r);
  return go_execveat(&c, envp);
}
#endif

/* The list forms gather their arguments on the stack, as glibc's do, and
 * take the vector forms' paths. */
enum { kMaxListArgs = 1 << 20 }; /* more than any exec takes: E2BIG */
static size_t list_length(const char *arg, va_list ap) {
  size_t n = 0;
  va_list c;
  va_copy(c, ap);
  for (const char *a = arg; a != NULL && n < kMaxListArgs; a = va_arg(c, const char *)) n++;
  va_end(c);
  return n;
}
/* execl ('l'), execle ('e', the environment after the NULL), execlp
 * ('p'). */
static int exec_list(char how, const char *first, const char *arg, va_list ap) {
  const size_t n = list_length(arg, ap);
  if (n >= kMaxListArgs) {
    errno = E2BIG;
    return -1;
  }
  char *argv[n + 1];
  if (n > 0) argv[0] = (char *)arg;
  for (size_t i = 1; i <= n; i++) argv[i] = va_arg(ap, char *); /* argv[n]: the terminating NULL */
  if (n == 0) argv[0] = NULL;
  if (how == 'p') return exec_search_environ(first, argv);
  return exec_path(first, argv, how == 'e' ? va_arg(ap, char *const *) : environ);
}
#define EXEC_LIST_FORM(name, how)                              \
  EXPORT int name(const char *first, const char *arg, ...) {   \
    va_list ap;                                                \
    va_start(ap, arg);                                         \
    const int r = exec_list((how), first, arg, ap);            \
    va_end(ap);                                                \
    return r;                                                  \
  }
EXEC_LIST_FORM(execl, 'l')
EXEC_LIST_FORM(execle, 'e')
EXEC_LIST_FORM(execlp, 'p')

/* posix_spawn in the parent: the new environment mapped for the call. A
 * relative path with file actions is taken as given (an action may change
 * the working directory first). A spawn the added variables would make too
 * big (E2BIG) runs without them. */
struct spawn_call {
  pid_t *pid;
  const char *path;
  const posix_spawn_file_actions_t *actions;
  const posix_spawnattr_t *attr;
  char *const *argv;
};
static int go_spawn(const void *c, char *const envp[]) {
  const struct spawn_call *x = c;
  spawn_fn next = NEXT_EXEC(posix_spawn);
  return next != NULL ? next(x->pid, x->path, x->actions, x->attr, x->argv, envp) : ENOSYS;
}
static int spawn_with_the_preload(const struct spawn_call *c, char *const envp[], int *r) {
  if (c->path[0] != '/' && c->actions != NULL) return 0;
  return with_the_preload(AT_FDCWD, c->path, 0, envp, 1, go_spawn, c, r) && *r != E2BIG;
}
EXPORT int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *actions,
                       const posix_spawnattr_t *attr, char *const argv[], char *const envp[]) {
  const struct spawn_call c = {pid, path, actions, attr, argv};
  int r;
  if (spawn_with_the_preload(&c, envp, &r)) return r;
  return go_spawn(&c, envp);
}
EXPORT int posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *actions,
                        const posix_spawnattr_t *attr, char *const argv[], char *const envp[]) {
  if (pass_on.on) {
    const int saved = errno;
    char path[PATH_MAX];
    const struct spawn_call c = {pid, path, actions, attr, argv};
    int r;
    const int found = evshim_find_program(file, getenv("PATH"), path, sizeof path);
    errno = saved;
    if (found && spawn_with_the_preload(&c, envp, &r)) return r;
  }
  spawn_fn next = NEXT_EXEC(posix_spawnp);
  return next != NULL ? next(pid, file, actions, attr, argv, envp) : ENOSYS;
}

/* system(): glibc runs the command with ["sh", "-c", command] through its
 * internal posix_spawn of /bin/sh, which no entry above sees. In a process
 * that passes the preload on, system() here does what glibc's does (2.36,
 * sysdeps/posix/system.c), step for step, but spawns through posix_spawn
 * above, which gives the shell the preload when it takes it (the rule and
 * the environment decide there, once):
 * SIGINT and SIGQUIT ignored while any system() runs (saved by the first,
 * given back by the last), SIGCHLD blocked in the caller; the shell gets
 * the caller's mask and, for those of SIGINT and SIGQUIT not ignored
 * before, the default action; the status of waitpid (-1 if it fails
 * otherwise than EINTR), or 127 as an exit status with errno set when the
 * spawn fails. A cancellation point, as glibc's: the shell is killed and
 * reaped on cancellation. The dispositions and the mask are set with
 * libc's own functions, as glibc's internal calls set them (no foreign
 * library's signal hook sees them). Otherwise (no preload to pass on, or
 * libc's functions not found), and for system(NULL), the next system() (a
 * linked foreign library's, then glibc's).
 *
 * popen() is left as it is: glibc's stream knows its child (pclose and
 * fclose wait for it, and every later popen child closes it), which a
 * wrapper cannot take over. Its /bin/sh, and what that starts, go without
 * the preload. */
static const char kShell[] = "/bin/sh";
typedef int (*system_fn)(const char *);
typedef int (*sigaction_fn)(int, const struct sigaction *, struct sigaction *);
typedef int (*sigprocmask_fn)(int, const sigset_t *, sigset_t *);

static pthread_mutex_t system_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned system_running;                  /* system() calls between their two locked steps */
static struct sigaction system_intr, system_quit; /* as the first of them found them */

/* libc's own sigaction and sigprocmask (not the wrappers before it). */
static struct {
  sigaction_fn sigaction;
  sigprocmask_fn sigprocmask;
} libc_signals;
static int libc_signals_found(void) {
  if (__atomic_load_n(&libc_signals.sigprocmask, __ATOMIC_ACQUIRE) != NULL) return 1;
  void *libc = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
  if (libc == NULL) return 0;
  sigaction_fn act = __extension__(sigaction_fn) dlsym(libc, "sigaction");
  sigprocmask_fn mask = __extension__(sigprocmask_fn) dlsym(libc, "sigprocmask");
  dlclose(libc);
  if (act == NULL || mask == NULL) return 0;
  libc_signals.sigaction = act;
  __atomic_store_n(&libc_signals.sigprocmask, mask, __ATOMIC_RELEASE);
  return 1;
}

static void system_signals_back(void) {
  pthread_mutex_lock(&system_lock);
  if (--system_running == 0) {
    libc_signals.sigaction(SIGINT, &system_intr, NULL);
    libc_signals.sigaction(SIGQUIT, &system_quit, NULL);
  }
  pthread_mutex_unlock(&system_lock);
}
static void system_cancelled(void *arg) {
  const pid_t pid = *(const pid_t *)arg;
  kill(pid, SIGKILL);
  while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
  }
  system_signals_back();
}

EXPORT int system(const char *command) {
  if (command == NULL || !pass_on.on || !libc_signals_found()) {
    static system_fn next;
    if (next == NULL) next = TRAP_NEXT(system_fn, "system");
    if (next == NULL) {
      errno = ENOSYS;
      return -1;
    }
    return next(command);
  }
  struct sigaction ignore;
  memset(&ignore, 0, sizeof ignore);
  ignore.sa_handler = SIG_IGN;
  sigemptyset(&ignore.sa_mask);
  pthread_mutex_lock(&system_lock);
  if (system_running++ == 0) {
    libc_signals.sigaction(SIGINT, &ignore, &system_intr);
    libc_signals.sigaction(SIGQUIT, &ignore, &system_quit);
  }
  pthread_mutex_unlock(&system_lock);

  sigset_t child, caller;
  sigemptyset(&child);
  sigaddset(&child, SIGCHLD);
  libc_signals.sigprocmask(SIG_BLOCK, &child, &caller);
  sigset_t reset;
  sigemptyset(&reset);
  if (system_intr.sa_handler != SIG_IGN) sigaddset(&reset, SIGINT);
  if (system_quit.sa_handler != SIG_IGN) sigaddset(&reset, SIGQUIT);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setsigmask(&attr, &caller);
  posix_spawnattr_setsigdefault(&attr, &reset);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  char *const argv[] = {(char *)"sh", (char *)"-c", (char *)command, NULL};
  pid_t pid = -1;
  const int spawned = posix_spawn(&pid, kShell, NULL, &attr, argv, environ);
  posix_spawnattr_destroy(&attr);
  int status;
  if (spawned == 0) {
    pthread_cleanup_push(system_cancelled, &pid);
    pid_t waited;
    do {
      waited = waitpid(pid, &status, 0);
    } while (waited < 0 && errno == EINTR);
    if (waited != pid) status = -1;
    pthread_cleanup_pop(0);
  } else {
    status = 127 << 8; /* as if the shell had exited with 127 (POSIX) */
  }
  system_signals_back();
  libc_signals.sigprocmask(SIG_SETMASK, &caller, NULL);
  if (spawned != 0) errno = spawned;
  return status;
}

/* The user's LD_PRELOAD back (see above), before the program's main. A
 * mask inherited across exec is opened as the engine's constructor would
 * (the initial thread's: every later thread's is made through the
 * wrappers). */
__attribute__((constructor)) static void evshim_signals_start(void) {
  const char *saved = getenv(EVSHIM_USER_LD_PRELOAD);
  resolve_exec_entries();
  if (saved != NULL) {
    pass_on_start();
    const char *user = evshim_saved_value_read(saved, pass_on.other, sizeof pass_on.other);
    if (user != NULL) {
      setenv("LD_PRELOAD", user, 1);
    } else {
      unsetenv("LD_PRELOAD");
    }
    unsetenv(EVSHIM_USER_LD_PRELOAD);
  }
  if (__atomic_load_n(&engine_trap_unblock, __ATOMIC_ACQUIRE) == NULL) {
    sigset_t kept;
    sigemptyset(&kept);
    sigaddset(&kept, SIGSYS);
    sigaddset(&kept, SIGSEGV);
    sigaddset(&kept, SIGBUS);
    trap_sigmask_fn real = TRAP_NEXT(trap_sigmask_fn, "pthread_sigmask");
    if (real != NULL) real(SIG_UNBLOCK, &kept, NULL);
  }
}
