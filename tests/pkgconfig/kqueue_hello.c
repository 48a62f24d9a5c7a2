/*
 * A small kqueue program for any of evshim's BSD personalities, built by
 * tests/pkgconfig/build-and-run.sh with nothing but
 * `pkg-config --cflags --libs evshim-kqueue-<personality>` and run under
 * `evshim run`. Exit 0 and "kqueue_hello: ok" when it behaved as on the BSDs.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/event.h>
#include <time.h>
#include <unistd.h>

#define CHECK(cond)                                                               \
  do {                                                                            \
    if (!(cond)) {                                                                \
      fprintf(stderr, "kqueue_hello:%d: %s failed (errno %d)\n", __LINE__, #cond, \
              errno);                                                             \
      return 1;                                                                   \
    }                                                                             \
  } while (0)

int main(void) {
  int kq = kqueue();
  CHECK(kq >= 0);
  int fds[2];
  CHECK(pipe(fds) == 0);
  struct kevent ch, ev;
  EV_SET(&ch, (uintptr_t)fds[0], EVFILT_READ, EV_ADD, 0, 0, &fds[0]);
  CHECK(kevent(kq, &ch, 1, NULL, 0, NULL) == 0);
  struct timespec zero = {0, 0};
  CHECK(kevent(kq, NULL, 0, &ev, 1, &zero) == 0);
  CHECK(write(fds[1], "abc", 3) == 3);
  memset(&ev, 0, sizeof ev);
  CHECK(kevent(kq, NULL, 0, &ev, 1, NULL) == 1);
  CHECK(ev.ident == (uintptr_t)fds[0]);
  CHECK(ev.filter == EVFILT_READ);
  CHECK(ev.data == 3);
  CHECK(ev.udata == (void *)&fds[0]);
  struct timespec ts = {0, 10 * 1000 * 1000};
  EV_SET(&ch, (uintptr_t)fds[0], EVFILT_READ, EV_DELETE, 0, 0, NULL);
  CHECK(kevent(kq, &ch, 1, &ev, 1, &ts) == 0);
  EV_SET(&ch, 12345, EVFILT_READ, EV_DELETE, 0, 0, NULL);
  CHECK(kevent(kq, &ch, 1, NULL, 0, NULL) == -1 && errno == EBADF);
  printf("kqueue_hello: ok\n");
  return 0;
}
