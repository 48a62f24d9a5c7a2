/*
 * A program that loads the FreeBSD kqueue library with dlopen(RTLD_LOCAL),
 * as CPython loads an extension module that links it (docs/clients.md):
 * the library's close() wrapper then interposes neither the program's
 * close() nor the engine's own (libc's comes first in the global scope).
 * Three rounds of kqueue, a socket's READ knote, a wait, EV_DELETE, then
 * close of the socket pair and of the kqueue. Each round's kqueue reuses
 * the last one's number, which the engine must not take for the object
 * it removed at the last close (kqueue_close, OB kern_event.c:1512: a
 * closed kqueue is gone; fd_getfile, OB kern_event.c:1076-1080: the
 * number names the new one). Exit 0 = every round worked.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/event.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef int (*kqueue_fn)(void);
typedef int (*kevent_fn)(int, const struct kevent *, int, struct kevent *, int, const struct timespec *);

int main(int argc, char **argv) {
  const char *path = argc > 1 ? argv[1] : KQ_LIBRARY;
  void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (lib == NULL) {
    fprintf(stderr, "dlopen %s: %s\n", path, dlerror());
    return 2;
  }
  /* POSIX's way to take a function from dlsym (ISO C has no cast for it). */
  kqueue_fn kq_create;
  kevent_fn kev;
  *(void **)&kq_create = dlsym(lib, "kqueue");
  *(void **)&kev = dlsym(lib, "kevent");
  if (kq_create == NULL || kev == NULL) {
    fprintf(stderr, "dlsym: %s\n", dlerror());
    return 2;
  }
  int last_kq = -1;
  for (int round = 0; round < 3; ++round) {
    int kq = kq_create(), s[2];
    if (kq < 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, s) != 0) {
      fprintf(stderr, "round %d: kqueue/socketpair: %s\n", round, strerror(errno));
      return 1;
    }
    if (round > 0 && kq != last_kq) fprintf(stderr, "round %d: kqueue at %d, not %d\n", round, kq, last_kq);
    last_kq = kq;
    struct kevent ch, ev[4];
    EV_SET(&ch, s[0], EVFILT_READ, EV_ADD, 0, 0, NULL);
    if (kev(kq, &ch, 1, NULL, 0, NULL) != 0) {
      fprintf(stderr, "round %d: EV_ADD on %d through kqueue %d: %s\n", round, s[0], kq, strerror(errno));
      return 1;
    }
    const struct timespec ten_ms = {0, 10000000};
    if (kev(kq, NULL, 0, ev, 4, &ten_ms) != 0) {
      fprintf(stderr, "round %d: an event on an idle socket\n", round);
      return 1;
    }
    if (write(s[1], "x", 1) != 1 || kev(kq, NULL, 0, ev, 4, &ten_ms) != 1 || ev[0].ident != (uintptr_t)s[0]) {
      fprintf(stderr, "round %d: no READ event after a write\n", round);
      return 1;
    }
    EV_SET(&ch, s[0], EVFILT_READ, EV_DELETE, 0, 0, NULL);
    if (kev(kq, &ch, 1, NULL, 0, NULL) != 0) {
      fprintf(stderr, "round %d: EV_DELETE: %s\n", round, strerror(errno));
      return 1;
    }
    close(s[0]);
    close(s[1]);
    close(kq);
  }
  return 0;
}
