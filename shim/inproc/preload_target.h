/*
 * Which new images take libevshim-signals.so from LD_PRELOAD, and the
 * environment they get (docs/design.md "A copy that survives a fault", The
 * wrappers preloaded). The one statement of the rule, for the launcher
 * (shim/cli/launch_preload.h, C++: the program it starts) and the preloaded
 * library (signals_preload.c, C: the images that program and its children
 * exec). C and libc only, no allocation and no lock: the library runs it
 * in a vfork child, which shares its parent's memory.
 *
 * An image takes the preload when its loader can: an ELF of this process's
 * class, byte order and machine, executable or shared, whose program
 * interpreter (PT_INTERP) is this process's loader by name (the directory
 * may differ), which needs no sanitizer runtime (DT_NEEDED) and is not
 * set-user-ID or set-group-ID; or a script whose "#!" interpreter is such an
 * image (one level: an interpreter that is a script again is not taken). A
 * 32-bit program's loader would print "wrong ELF class ... ignored", a
 * static one never reads LD_PRELOAD (and would keep the changed variables),
 * musl's would try a glibc library; ASan's runtime aborts when a preloaded
 * library comes before it, and with any sanitizer runtime interposing first
 * the engine's gating says off anyway; a loader in secure-execution mode
 * ignores a preload path with a slash. Anything that cannot be read is not
 * taken.
 */
#ifndef EVSHIM_INPROC_PRELOAD_TARGET_H
#define EVSHIM_INPROC_PRELOAD_TARGET_H

#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <stddef.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__x86_64__)
#define EVSHIM_PRELOAD_MACHINE EM_X86_64
#elif defined(__i386__)
#define EVSHIM_PRELOAD_MACHINE EM_386
#endif
#define EVSHIM_PRELOAD_CLASS (sizeof(void *) == 8 ? ELFCLASS64 : ELFCLASS32)

/* What the rule reads of a name: a program interpreter, a script's
 * interpreter (the kernel reads 256 bytes of a "#!" line), a DT_NEEDED name
 * (compared by prefix; a longer one is cut). */
#define EVSHIM_PRELOAD_NAME_MAX 256
#define EVSHIM_SIGNALS_LIBRARY_NAME "libevshim-signals.so"
#define EVSHIM_USER_LD_PRELOAD "EVSHIM_USER_LD_PRELOAD"

static inline int evshim_read_at(int fd, void *dst, size_t n, unsigned long long at) {
  return pread(fd, dst, n, (off_t)at) == (ssize_t)n;
}

/* The parts of an ELF image the rule reads: its interpreter, its dynamic
 * section and where its loaded segments lie in the file. */
struct evshim_elf_layout {
  ElfW(Phdr) interp;
  ElfW(Phdr) dynamic;
  ElfW(Phdr) load[8];
  unsigned loads;
  int has_interp;
  int has_dynamic;
};

/* The layout of the ELF image open at `fd` when it is of this process's
 * class, byte order and machine, executable or shared: 1, else 0. */
static inline int evshim_elf_layout_of(int fd, struct evshim_elf_layout *out) {
  ElfW(Ehdr) eh;
  memset(out, 0, sizeof *out);
  if (!evshim_read_at(fd, &eh, sizeof eh, 0) || memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
      eh.e_ident[EI_CLASS] != EVSHIM_PRELOAD_CLASS || eh.e_ident[EI_DATA] != ELFDATA2LSB ||
      eh.e_machine != EVSHIM_PRELOAD_MACHINE || (eh.e_type != ET_EXEC && eh.e_type != ET_DYN) ||
      eh.e_phentsize != sizeof(ElfW(Phdr))) {
    return 0;
  }
  ElfW(Phdr) chunk[16];
  for (unsigned i = 0; i < eh.e_phnum;) {
    unsigned n = eh.e_phnum - i < 16 ? eh.e_phnum - i : 16;
    if (!evshim_read_at(fd, chunk, n * sizeof chunk[0], eh.e_phoff + (unsigned long long)i * sizeof chunk[0])) return 0;
    for (unsigned k = 0; k < n; k++) {
      const ElfW(Phdr) *p = &chunk[k];
      if (p->p_type == PT_INTERP && !out->has_interp) {
        out->interp = *p;
        out->has_interp = 1;
      } else if (p->p_type == PT_DYNAMIC && !out->has_dynamic) {
        out->dynamic = *p;
        out->has_dynamic = 1;
      } else if (p->p_type == PT_LOAD) {
        if (out->loads == sizeof out->load / sizeof out->load[0]) return 0;
        out->load[out->loads++] = *p;
      }
    }
    i += n;
  }
  return 1;
}

/* The program interpreter of the ELF image open at `fd` (of this class,
 * byte order and machine) into `out` (EVSHIM_PRELOAD_NAME_MAX bytes): 1, or
 * 0 for any other file and for a static image (no loader reads its
 * LD_PRELOAD). */
static inline int evshim_elf_interpreter(int fd, const struct evshim_elf_layout *l, char *out) {
  out[0] = '\0';
  if (!l->has_interp || l->interp.p_filesz == 0 || l->interp.p_filesz >= EVSHIM_PRELOAD_NAME_MAX) return 0;
  if (!evshim_read_at(fd, out, l->interp.p_filesz, l->interp.p_offset)) return 0;
  out[l->interp.p_filesz] = '\0'; /* up to its NUL */
  return out[0] != '\0';
}

/* Calls `fn(name, ctx)` for each DT_NEEDED name of the ELF image open at
 * `fd`, in order, until it returns nonzero (then 1 is returned; 0 when every
 * name was seen or none could be read). A name longer than
 * EVSHIM_PRELOAD_NAME_MAX - 1 bytes is cut there. */
typedef int (*evshim_needed_fn)(const char *name, void *ctx);
static inline int evshim_elf_each_needed(int fd, const struct evshim_elf_layout *l, evshim_needed_fn fn, void *ctx) {
  if (!l->has_dynamic || l->dynamic.p_filesz > (1u << 20)) return 0;
  const size_t count = l->dynamic.p_filesz / sizeof(ElfW(Dyn));
  ElfW(Dyn) chunk[32];
  unsigned long long strtab = 0, strsz = 0, off = 0;
  for (int pass = 0; pass < 2; pass++) {
    for (size_t i = 0; i < count;) {
      size_t n = count - i < 32 ? count - i : 32;
      if (!evshim_read_at(fd, chunk, n * sizeof chunk[0], l->dynamic.p_offset + i * sizeof chunk[0])) return 0;
      for (size_t k = 0; k < n; k++) {
        const ElfW(Dyn) *d = &chunk[k];
        if (d->d_tag == DT_NULL) break;
        if (pass == 0) {
          if (d->d_tag == DT_STRTAB) strtab = d->d_un.d_ptr;
          if (d->d_tag == DT_STRSZ) strsz = d->d_un.d_val;
        } else if (d->d_tag == DT_NEEDED && d->d_un.d_val < strsz) {
          char name[EVSHIM_PRELOAD_NAME_MAX];
          size_t want = strsz - d->d_un.d_val < sizeof name - 1 ? strsz - d->d_un.d_val : sizeof name - 1;
          ssize_t got = pread(fd, name, want, (off_t)(off + d->d_un.d_val));
          if (got <= 0) return 0;
          name[got] = '\0';
          if (fn(name, ctx)) return 1;
        }
      }
      i += n;
    }
    if (pass == 0) {
      /* The string table's address as a file offset. */
      int found = 0;
      for (unsigned k = 0; k < l->loads && !found; k++) {
        const ElfW(Phdr) *p = &l->load[k];
        if (strtab >= p->p_vaddr && strtab < p->p_vaddr + p->p_filesz) {
          off = strtab - p->p_vaddr + p->p_offset;
          found = 1;
        }
      }
      if (!found || strsz == 0 || strsz > (1u << 24)) return 0;
    }
  }
  return 0;
}

/* A sanitizer runtime's library name (GCC's libasan, libtsan, ...; clang's
 * libclang_rt.*). */
static inline int evshim_is_sanitizer_runtime(const char *name) {
  static const char *const prefixes[] = {"libasan.", "libtsan.", "libhwasan.", "liblsan.", "libubsan.", "libclang_rt."};
  for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
    if (strncmp(name, prefixes[i], strlen(prefixes[i])) == 0) return 1;
  }
  return 0;
}
static inline int evshim_needed_sanitizer(const char *name, void *ctx) {
  (void)ctx;
  return evshim_is_sanitizer_runtime(name);
}

static inline const char *evshim_base_name(const char *path) {
  const char *slash = strrchr(path, '/');
  return slash != NULL ? slash + 1 : path;
}

/* The ELF rule (above) for the image open at `fd`, with `loader` this
 * process's program interpreter. */
static inline int evshim_elf_takes_the_preload(int fd, const char *loader) {
  struct stat st;
  struct evshim_elf_layout l;
  char interp[EVSHIM_PRELOAD_NAME_MAX];
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (st.st_mode & (S_ISUID | S_ISGID)) != 0) return 0;
  if (!evshim_elf_layout_of(fd, &l) || !evshim_elf_interpreter(fd, &l, interp)) return 0;
  if (loader == NULL || loader[0] == '\0' || strcmp(evshim_base_name(interp), evshim_base_name(loader)) != 0) return 0;
  return !evshim_elf_each_needed(fd, &l, evshim_needed_sanitizer, NULL);
}

/* The interpreter a "#!" line names, as the kernel reads it (binfmt_script:
 * the first 256 bytes; after "#!" and spaces or tabs, the name up to a
 * space, tab, newline or NUL; a name the 256 bytes cut is none), into `out`
 * (EVSHIM_PRELOAD_NAME_MAX bytes): 1, else 0 (not a script). */
static inline int evshim_script_interpreter(int fd, char *out) {
  char line[256];
  memset(line, 0, sizeof line);
  const ssize_t got = pread(fd, line, sizeof line, 0);
  out[0] = '\0';
  if (got < 2 || line[0] != '#' || line[1] != '!') return 0;
  size_t i = 2;
  while (i < sizeof line && (line[i] == ' ' || line[i] == '\t')) i++;
  size_t end = i;
  while (end < sizeof line && line[end] != ' ' && line[end] != '\t' && line[end] != '\n' && line[end] != '\0') end++;
  if (end == i || end == sizeof line) return 0;
  memcpy(out, line + i, end - i);
  out[end - i] = '\0';
  return 1;
}

/* The whole rule for the file `path` (relative to `dirfd`; opened with
 * `open_flags` added to O_RDONLY, e.g. O_NOFOLLOW), with `loader` this
 * process's program interpreter: 1 when the image exec would load there
 * takes the preload. */
static inline int evshim_takes_the_preload_at(int dirfd, const char *path, int open_flags, const char *loader) {
  if (path == NULL || path[0] == '\0') return 0;
  const int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | open_flags);
  if (fd < 0) return 0;
  char interpreter[EVSHIM_PRELOAD_NAME_MAX];
  int takes;
  if (evshim_script_interpreter(fd, interpreter)) {
    /* The kernel opens it as given, a relative name from the working
     * directory; one level only. */
    const int ifd = open(interpreter, O_RDONLY | O_CLOEXEC);
    takes = ifd >= 0 && evshim_elf_takes_the_preload(ifd, loader);
    if (ifd >= 0) close(ifd);
  } else {
    takes = evshim_elf_takes_the_preload(fd, loader);
  }
  close(fd);
  return takes;
}
static inline int evshim_takes_the_preload(const char *path, const char *loader) {
  return evshim_takes_the_preload_at(AT_FDCWD, path, 0, loader);
}

/* The file execvp(3) runs for `name` into `out` (`cap` bytes): `name` itself
 * when it holds a slash, else the first executable regular file of that
 * name in `path_variable` (glibc's default "/bin:/usr/bin" when NULL; an
 * empty entry is the working directory, and the name stands alone, as
 * glibc's execvpe builds it). 1 when there is one, else 0. */
static inline int evshim_find_program(const char *name, const char *path_variable, char *out, size_t cap) {
  const size_t name_len = strlen(name);
  if (name_len == 0 || name_len >= cap) return 0;
  if (strchr(name, '/') != NULL) {
    memcpy(out, name, name_len + 1);
    return 1;
  }
  const char *dirs = path_variable != NULL ? path_variable : "/bin:/usr/bin";
  for (;;) {
    const char *colon = strchr(dirs, ':');
    const size_t dir_len = colon != NULL ? (size_t)(colon - dirs) : strlen(dirs);
    if (dir_len + 1 + name_len < cap) {
      memcpy(out, dirs, dir_len);
      size_t at = dir_len;
      if (dir_len > 0) out[at++] = '/';
      memcpy(out + at, name, name_len + 1);
      struct stat st;
      if (access(out, X_OK) == 0 && stat(out, &st) == 0 && S_ISREG(st.st_mode)) return 1;
    }
    if (colon == NULL) break;
    dirs = colon + 1;
  }
  out[0] = '\0';
  return 0;
}

/*
 * The environment: LD_PRELOAD with the library after the user's own
 * entries (a sanitizer runtime must stay first), and the user's value saved
 * in EVSHIM_USER_LD_PRELOAD ("" when unset, "=VALUE" when set, even to
 * nothing) for the library's constructor to put back before main.
 */
static inline size_t evshim_preload_value_size(const char *user, const char *library) {
  return (user != NULL && user[0] != '\0' ? strlen(user) + 1 : 0) + strlen(library) + 1;
}
static inline char *evshim_preload_value_write(char *dst, const char *user, const char *library) {
  if (user != NULL && user[0] != '\0') {
    const size_t n = strlen(user);
    memcpy(dst, user, n);
    dst[n] = ':';
    dst += n + 1;
  }
  const size_t n = strlen(library);
  memcpy(dst, library, n + 1);
  return dst + n + 1;
}
static inline size_t evshim_saved_value_size(const char *user) { return user != NULL ? strlen(user) + 2 : 1; }
static inline char *evshim_saved_value_write(char *dst, const char *user) {
  if (user == NULL) {
    *dst = '\0';
    return dst + 1;
  }
  const size_t n = strlen(user);
  dst[0] = '=';
  memcpy(dst + 1, user, n + 1);
  return dst + n + 2;
}

/* A new image's environment: `envp` with the preload (evshim_preload_env_*). */
struct evshim_preload_env {
  size_t entries;       /* envp's */
  size_t ld_preload_at; /* the index of its LD_PRELOAD entry, `entries` when none */
  const char *user;     /* that entry's value, NULL when none */
  size_t bytes;         /* what the new environment takes */
};

static inline int evshim_env_is(const char *entry, const char *name) {
  const size_t n = strlen(name);
  return strncmp(entry, name, n) == 0 && entry[n] == '=';
}

/* Measures `envp` (NULL: empty, as for execve) for the preload of
 * `library`: the bytes the new environment takes (the pointer array, its
 * LD_PRELOAD entry and the saved value), or 0 when it must go unchanged: it
 * says supervised (EVSHIM_SUPERVISED=1), it holds LD_PRELOAD more than once
 * or EVSHIM_USER_LD_PRELOAD already (the constructor could not give it back
 * as it was), or `library` cannot stand in LD_PRELOAD. */
static inline size_t evshim_preload_env_measure(char *const envp[], const char *library, struct evshim_preload_env *e) {
  memset(e, 0, sizeof *e);
  if (library == NULL || library[0] == '\0' || strpbrk(library, ": ") != NULL) return 0;
  size_t n = 0, found = 0;
  for (; envp != NULL && envp[n] != NULL; n++) {
    const char *v = envp[n];
    if (evshim_env_is(v, "LD_PRELOAD")) {
      if (found++ != 0) return 0;
      e->ld_preload_at = n;
      e->user = v + sizeof "LD_PRELOAD";
    } else if (evshim_env_is(v, EVSHIM_USER_LD_PRELOAD) || strcmp(v, "EVSHIM_SUPERVISED=1") == 0) {
      return 0;
    }
  }
  e->entries = n;
  if (found == 0) e->ld_preload_at = n;
  /* The array: every entry, LD_PRELOAD when new, the saved value, NULL. */
  const size_t pointers = n + (found == 0) + 2;
  e->bytes = pointers * sizeof(char *) + sizeof "LD_PRELOAD=" + evshim_preload_value_size(e->user, library) +
             sizeof EVSHIM_USER_LD_PRELOAD "=" + evshim_saved_value_size(e->user);
  return e->bytes;
}

/* Builds in `buf` (e->bytes, aligned for pointers) the environment measured
 * in `e`: every entry of `envp` in its place, LD_PRELOAD's changed there
 * (or added last), EVSHIM_USER_LD_PRELOAD added last. The constructor's
 * setenv and unsetenv then leave the entries as `envp` had them, in order. */
static inline char **evshim_preload_env_build(char *const envp[], const char *library, const struct evshim_preload_env *e,
                                              void *buf) {
  char **env = (char **)buf;
  const size_t pointers = e->entries + (e->ld_preload_at == e->entries) + 2;
  char *text = (char *)(env + pointers);
  size_t at = 0;
  for (; at < e->entries; at++) env[at] = envp[at];
  if (e->ld_preload_at == e->entries) at++;
  env[e->ld_preload_at] = text;
  memcpy(text, "LD_PRELOAD=", sizeof "LD_PRELOAD=" - 1);
  text = evshim_preload_value_write(text + sizeof "LD_PRELOAD=" - 1, e->user, library);
  env[at++] = text;
  memcpy(text, EVSHIM_USER_LD_PRELOAD "=", sizeof EVSHIM_USER_LD_PRELOAD "=" - 1);
  evshim_saved_value_write(text + sizeof EVSHIM_USER_LD_PRELOAD "=" - 1, e->user);
  env[at] = NULL;
  return env;
}

#endif /* EVSHIM_INPROC_PRELOAD_TARGET_H */
