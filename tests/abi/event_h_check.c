/*
 * Compiled (never run) by tests/kqueue/meson.build against each
 * personality's <sys/event.h>, as C99 and C++17, for x86_64 and i386, with
 * -Wall -Wextra -Werror: the header must compile cleanly and its struct
 * kevent must have the foreign layout (docs/rules-bsd.md §2).
 */
#include <stddef.h>
#include <sys/event.h>

#define EVSHIM_CHECK(name, cond) typedef char name[(cond) ? 1 : -1]

#if defined(EVFILT_SENDFILE) /* FreeBSD */
#if defined(__x86_64__)
EVSHIM_CHECK(kevent_size, sizeof(struct kevent) == 64);
EVSHIM_CHECK(kevent_ext, offsetof(struct kevent, ext) == 32);
EVSHIM_CHECK(kevent11_size, sizeof(struct kevent_freebsd11) == 32);
#else
EVSHIM_CHECK(kevent_size, sizeof(struct kevent) == 56);
EVSHIM_CHECK(kevent_ext, offsetof(struct kevent, ext) == 24);
EVSHIM_CHECK(kevent_data, offsetof(struct kevent, data) == 12);
EVSHIM_CHECK(kevent11_size, sizeof(struct kevent_freebsd11) == 20);
#endif
EVSHIM_CHECK(user, EVFILT_USER == -11);
EVSHIM_CHECK(sysflags, EV_SYSFLAGS == 0xF000);
#elif defined(EVFILT_DEVICE) /* OpenBSD */
#if defined(__x86_64__)
EVSHIM_CHECK(kevent_size, sizeof(struct kevent) == 32);
#else
EVSHIM_CHECK(kevent_size, sizeof(struct kevent) == 24);
EVSHIM_CHECK(kevent_udata, offsetof(struct kevent, udata) == 20);
#endif
EVSHIM_CHECK(user, EVFILT_USER == -10);
EVSHIM_CHECK(except, EVFILT_EXCEPT == -9);
EVSHIM_CHECK(sysflags, EV_SYSFLAGS == 0xf800);
#else /* DragonFly */
#if defined(__x86_64__)
EVSHIM_CHECK(kevent_size, sizeof(struct kevent) == 32);
#else
EVSHIM_CHECK(kevent_size, sizeof(struct kevent) == 20);
#endif
EVSHIM_CHECK(user, EVFILT_USER == -9);
EVSHIM_CHECK(except, EVFILT_EXCEPT == -8);
#endif
EVSHIM_CHECK(filter_off, offsetof(struct kevent, filter) == sizeof(void *));
EVSHIM_CHECK(flags_off, offsetof(struct kevent, flags) == sizeof(void *) + 2);
EVSHIM_CHECK(fflags_off, offsetof(struct kevent, fflags) == sizeof(void *) + 4);

int evshim_event_h_use(int kq);
int evshim_event_h_use(int kq) {
  struct kevent kev;
  struct timespec ts = {0, 0};
  EV_SET(&kev, 1, EVFILT_USER, EV_ADD | EV_CLEAR, NOTE_TRIGGER | NOTE_FFCOPY, 0, NULL);
  return kevent(kq, &kev, 1, &kev, 1, &ts) + kqueue();
}
