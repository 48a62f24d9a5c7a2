/*
 * Which new images take libevshim-signals.so from LD_PRELOAD, which of the
 * two builds of it (x86_64, i386) each takes, and the environment they get
 * (docs/design.md "A copy that survives a fault", The wrappers preloaded).
 * The one statement of the rule, for the launcher (shim/cli/
 * launch_preload.h, C++: the program it starts) and the preloaded library
 * (signals_preload.c, C, built for both classes: the images that program
 * and its children exec). C and libc only, no allocation and no lock: the
 * library runs it in a vfork child, which shares its parent's memory.
 *
 * An image takes the preload when a loader can: an ELF, executable or
 * shared, that is either of this process's class, byte order and machine
 * with this process's loader as its program interpreter (PT_INTERP, by
 * name: the directory may differ), or of the other x86 class (i386 beside
 * x86_64, x86_64 beside i386) with that class's glibc loader
 * (EVSHIM_PRELOAD_OTHER_LOADER, by name); which needs no sanitizer runtime
 * (DT_NEEDED) and is not set-user-ID or set-group-ID; or a script whose "#!"
 * interpreter is such an image (one level: an interpreter that is a script
 * again is not taken). It takes the library built for its class, and only
 * when that library is there and of that class (evshim_library_of_class):
 * a loader of one class prints "wrong ELF class ... ignored" for the
 * other's library, and "cannot be preloaded" for a missing one. A static
 * image never reads LD_PRELOAD (and would keep the changed variables),
 * musl's loader would try a glibc library, x32 (ELFCLASS32 on x86_64) has
 * no build; ASan's runtime aborts when a preloaded library comes before it,
 * and with any sanitizer runtime interposing first the engine's gating says
 * off anyway; a loader in secure-execution mode ignores a preload path with
 * a slash. Anything that cannot be read is not taken.
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

/* This process's class and machine, and the other x86 class's machine and
 * glibc loader (the PT_INTERP basename its programs name: Debian's i386
 * programs /lib/ld-linux.so.2, x86_64 ones /lib64/ld-linux-x86-64.so.2). */
#if defined(__x86_64__)
#define EVSHIM_PRELOAD_MACHINE EM_X86_64
#define EVSHIM_PRELOAD_OTHER_MACHINE EM_386
#define EVSHIM_PRELOAD_OTHER_LOADER "ld-linux.so.2"
#elif defined(__i386__)
#define EVSHIM_PRELOAD_MACHINE EM_386
#define EVSHIM_PRELOAD_OTHER_MACHINE EM_X86_64
#define EVSHIM_PRELOAD_OTHER_LOADER "ld-linux-x86-64.so.2"
#endif
#define EVSHIM_PRELOAD_CLASS (sizeof(void *) == 8 ? ELFCLASS64 : ELFCLASS32)
#define EVSHIM_PRELOAD_OTHER_CLASS (sizeof(void *) == 8 ? ELFCLASS32 : ELFCLASS64)

/* What the rule reads of a name: a program interpreter, a script's
 * interpreter (the kernel reads 256 bytes of a "#!" line), a DT_NEEDED name
 * (compared by prefix; a longer one is cut). */
#define EVSHIM_PRELOAD_NAME_MAX 256
#define EVSHIM_SIGNALS_LIBRARY_NAME "libevshim-signals.so"
#define EVSHIM_USER_LD_PRELOAD "EVSHIM_USER_LD_PRELOAD"

static inline int evshim_read_at(int fd, void *dst, size_t n, unsigned long long at) {
  return pread(fd, dst, n, (off_t)at) == (ssize_t)n;
}

/* The machine the libraries are built for in ELF class `elf_class`
 * (ELFCLASS32 or ELFCLASS64), EM_NONE for any other value. */
static inline int evshim_preload_machine(int elf_class) {
  return elf_class == EVSHIM_PRELOAD_CLASS         ? EVSHIM_PRELOAD_MACHINE
         : elf_class == EVSHIM_PRELOAD_OTHER_CLASS ? EVSHIM_PRELOAD_OTHER_MACHINE
                                                   : EM_NONE;
}

/* A segment as the rule reads it, of either class. */
struct evshim_elf_segment {
  unsigned long long offset, vaddr, filesz;
};

/* The parts of an ELF image the rule reads: its class, its interpreter,
 * its dynamic section and where its loaded segments lie in the file. */
struct evshim_elf_layout {
  int elf_class;
  struct evshim_elf_segment interp;
  struct evshim_elf_segment dynamic;
  struct evshim_elf_segment load[8];
  unsigned loads;
  int has_interp;
  int has_dynamic;
};

/* The ELF header's fields the rule reads, of either class, at `fd`: 1 when
 * it is an x86_64 or i386 little-endian ELF (evshim_preload_machine), else 0. */
struct evshim_elf_header {
  int elf_class;
  unsigned type, phentsize, phnum;
  unsigned long long phoff;
};
static inline int evshim_elf_header_of(int fd, struct evshim_elf_header *h) {
  union {
    unsigned char ident[EI_NIDENT];
    Elf32_Ehdr e32;
    Elf64_Ehdr e64;
  } eh;
  memset(h, 0, sizeof *h);
  if (!evshim_read_at(fd, eh.ident, EI_NIDENT, 0) || memcmp(eh.ident, ELFMAG, SELFMAG) != 0 ||
      eh.ident[EI_DATA] != ELFDATA2LSB) {
    return 0;
  }
  h->elf_class = eh.ident[EI_CLASS];
  unsigned machine;
  /* The same fields of either class's header. */
#define EVSHIM_ELF_HEADER_FIELDS(e)                                                                     \
  (machine = (e).e_machine, h->type = (e).e_type, h->phentsize = (e).e_phentsize, h->phnum = (e).e_phnum, \
   h->phoff = (e).e_phoff)
  if (h->elf_class == ELFCLASS64 && evshim_read_at(fd, &eh.e64, sizeof eh.e64, 0)) {
    EVSHIM_ELF_HEADER_FIELDS(eh.e64);
  } else if (h->elf_class == ELFCLASS32 && evshim_read_at(fd, &eh.e32, sizeof eh.e32, 0)) {
    EVSHIM_ELF_HEADER_FIELDS(eh.e32);
  } else {
    return 0;
  }
#undef EVSHIM_ELF_HEADER_FIELDS
  return machine == (unsigned)evshim_preload_machine(h->elf_class) && machine != EM_NONE;
}

/* The layout of the ELF image open at `fd` when it is an x86_64 or i386
 * little-endian ELF, executable or shared: 1, else 0. */
static inline int evshim_elf_layout_of(int fd, struct evshim_elf_layout *out) {
  struct evshim_elf_header h;
  memset(out, 0, sizeof *out);
  if (!evshim_elf_header_of(fd, &h) || (h.type != ET_EXEC && h.type != ET_DYN)) return 0;
  const int wide = h.elf_class == ELFCLASS64;
  const unsigned size = wide ? sizeof(Elf64_Phdr) : sizeof(Elf32_Phdr);
  if (h.phentsize != size) return 0;
  out->elf_class = h.elf_class;
  union {
    Elf32_Phdr p32[16];
    Elf64_Phdr p64[16];
  } chunk;
  for (unsigned i = 0; i < h.phnum;) {
    unsigned n = h.phnum - i < 16 ? h.phnum - i : 16;
    if (!evshim_read_at(fd, &chunk, n * size, h.phoff + (unsigned long long)i * size)) return 0;
    for (unsigned k = 0; k < n; k++) {
      const unsigned type = wide ? chunk.p64[k].p_type : chunk.p32[k].p_type;
      struct evshim_elf_segment seg;
      seg.offset = wide ? chunk.p64[k].p_offset : chunk.p32[k].p_offset;
      seg.vaddr = wide ? chunk.p64[k].p_vaddr : chunk.p32[k].p_vaddr;
      seg.filesz = wide ? chunk.p64[k].p_filesz : chunk.p32[k].p_filesz;
      if (type == PT_INTERP && !out->has_interp) {
        out->interp = seg;
        out->has_interp = 1;
      } else if (type == PT_DYNAMIC && !out->has_dynamic) {
        out->dynamic = seg;
        out->has_dynamic = 1;
      } else if (type == PT_LOAD) {
        if (out->loads == sizeof out->load / sizeof out->load[0]) return 0;
        out->load[out->loads++] = seg;
      }
    }
    i += n;
  }
  return 1;
}

/* The program interpreter of the ELF image open at `fd` (laid out as `l`)
 * into `out` (EVSHIM_PRELOAD_NAME_MAX bytes): 1, or 0 for a static image
 * (no loader reads its LD_PRELOAD). */
static inline int evshim_elf_interpreter(int fd, const struct evshim_elf_layout *l, char *out) {
  out[0] = '\0';
  if (!l->has_interp || l->interp.filesz == 0 || l->interp.filesz >= EVSHIM_PRELOAD_NAME_MAX) return 0;
  if (!evshim_read_at(fd, out, l->interp.filesz, l->interp.offset)) return 0;
  out[l->interp.filesz] = '\0'; /* up to its NUL */
  return out[0] != '\0';
}

/* Calls `fn(name, ctx)` for each DT_NEEDED name of the ELF image open at
 * `fd` (laid out as `l`), in order, until it returns nonzero (then 1 is
 * returned; 0 when every name was seen or none could be read). A name
 * longer than EVSHIM_PRELOAD_NAME_MAX - 1 bytes is cut there. */
typedef int (*evshim_needed_fn)(const char *name, void *ctx);
static inline int evshim_elf_each_needed(int fd, const struct evshim_elf_layout *l, evshim_needed_fn fn, void *ctx) {
  const int wide = l->elf_class == ELFCLASS64;
  const size_t size = wide ? sizeof(Elf64_Dyn) : sizeof(Elf32_Dyn);
  if (!l->has_dynamic || l->dynamic.filesz > (1u << 20)) return 0;
  const size_t count = l->dynamic.filesz / size;
  union {
    Elf32_Dyn d32[32];
    Elf64_Dyn d64[32];
  } chunk;
  unsigned long long strtab = 0, strsz = 0, off = 0;
  for (int pass = 0; pass < 2; pass++) {
    for (size_t i = 0; i < count;) {
      size_t n = count - i < 32 ? count - i : 32;
      if (!evshim_read_at(fd, &chunk, n * size, l->dynamic.offset + i * size)) return 0;
      for (size_t k = 0; k < n; k++) {
        const long long tag = wide ? chunk.d64[k].d_tag : chunk.d32[k].d_tag;
        const unsigned long long value = wide ? chunk.d64[k].d_un.d_val : chunk.d32[k].d_un.d_val;
        if (tag == DT_NULL) break;
        if (pass == 0) {
          if (tag == DT_STRTAB) strtab = value;
          if (tag == DT_STRSZ) strsz = value;
        } else if (tag == DT_NEEDED && value < strsz) {
          char name[EVSHIM_PRELOAD_NAME_MAX];
          size_t want = strsz - value < sizeof name - 1 ? strsz - value : sizeof name - 1;
          ssize_t got = pread(fd, name, want, (off_t)(off + value));
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
        const struct evshim_elf_segment *p = &l->load[k];
        if (strtab >= p->vaddr && strtab < p->vaddr + p->filesz) {
          off = strtab - p->vaddr + p->offset;
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
 * process's program interpreter: the ELF class of the library the image
 * takes (EVSHIM_PRELOAD_CLASS or EVSHIM_PRELOAD_OTHER_CLASS), or 0
 * (ELFCLASSNONE) when it takes none. */
static inline int evshim_elf_preload_class(int fd, const char *loader) {
  struct stat st;
  struct evshim_elf_layout l;
  char interp[EVSHIM_PRELOAD_NAME_MAX];
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (st.st_mode & (S_ISUID | S_ISGID)) != 0) return 0;
  if (!evshim_elf_layout_of(fd, &l) || !evshim_elf_interpreter(fd, &l, interp)) return 0;
  const char *want = l.elf_class == EVSHIM_PRELOAD_CLASS ? loader : EVSHIM_PRELOAD_OTHER_LOADER;
  if (want == NULL || want[0] == '\0' || strcmp(evshim_base_name(interp), evshim_base_name(want)) != 0) return 0;
  return evshim_elf_each_needed(fd, &l, evshim_needed_sanitizer, NULL) ? 0 : l.elf_class;
}

/* Whether `path` can stand in LD_PRELOAD and in the saved value
 * (evshim_saved_value_write): absolute, without ':', ' ' or '='. */
static inline int evshim_library_path_fits(const char *path) {
  return path != NULL && path[0] == '/' && strpbrk(path, ": =") == NULL;
}

/* Whether `path` is a libevshim-signals.so a loader of ELF class
 * `elf_class` takes: its path fits, it is there and it is a shared object
 * of that class and machine. */
static inline int evshim_library_of_class(const char *path, int elf_class) {
  if (!evshim_library_path_fits(path)) return 0;
  const int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  struct evshim_elf_header h;
  const int ok = evshim_elf_header_of(fd, &h) && h.elf_class == elf_class && h.type == ET_DYN;
  close(fd);
  return ok;
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
 * process's program interpreter: the ELF class of the library the image
 * exec would load there takes (EVSHIM_PRELOAD_CLASS or
 * EVSHIM_PRELOAD_OTHER_CLASS; a script's is its interpreter's), or 0 when
 * it takes none. */
static inline int evshim_preload_class_at(int dirfd, const char *path, int open_flags, const char *loader) {
  if (path == NULL || path[0] == '\0') return 0;
  const int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | open_flags);
  if (fd < 0) return 0;
  char interpreter[EVSHIM_PRELOAD_NAME_MAX];
  int elf_class = 0;
  if (evshim_script_interpreter(fd, interpreter)) {
    /* The kernel opens it as given, a relative name from the working
     * directory; one level only. */
    const int ifd = open(interpreter, O_RDONLY | O_CLOEXEC);
    if (ifd >= 0) {
      elf_class = evshim_elf_preload_class(ifd, loader);
      close(ifd);
    }
  } else {
    elf_class = evshim_elf_preload_class(fd, loader);
  }
  close(fd);
  return elf_class;
}
static inline int evshim_preload_class(const char *path, const char *loader) {
  return evshim_preload_class_at(AT_FDCWD, path, 0, loader);
}

/* The two builds of the library a process knows: its own class's and the
 * other class's (NULL or "" when it has none). */
struct evshim_preload_libraries {
  const char *own;
  const char *other;
};

/* The library an image of ELF class `elf_class` (evshim_preload_class)
 * takes from `libs`, or NULL: none for that class, or not there, or not of
 * that class (a loader would print a line and ignore it). Into *passed, the
 * library that image passes on to the class other than its own (NULL when
 * there is none that fits). */
static inline const char *evshim_preload_library_for(const struct evshim_preload_libraries *libs, int elf_class,
                                                     const char **passed) {
  const char *take = elf_class == EVSHIM_PRELOAD_CLASS         ? libs->own
                     : elf_class == EVSHIM_PRELOAD_OTHER_CLASS ? libs->other
                                                               : NULL;
  const char *rest = take == libs->own ? libs->other : libs->own;
  *passed = rest != NULL && evshim_library_path_fits(rest) ? rest : NULL;
  return take != NULL && evshim_library_of_class(take, elf_class) ? take : NULL;
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
 * nothing) for the library's constructor to put back before main, after
 * the path of the other class's library when there is one (for the new
 * image to pass on to children of that class).
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
/* The saved value: the library of the class other than the new image's
 * (absolute, no '=': evshim_library_path_fits) when there is one, then ""
 * when the user's LD_PRELOAD is unset or "=VALUE" when it is set. */
static inline size_t evshim_saved_value_size(const char *user, const char *other) {
  return (other != NULL ? strlen(other) : 0) + (user != NULL ? strlen(user) + 2 : 1);
}
static inline char *evshim_saved_value_write(char *dst, const char *user, const char *other) {
  if (other != NULL) {
    const size_t n = strlen(other);
    memcpy(dst, other, n);
    dst += n;
  }
  if (user == NULL) {
    *dst = '\0';
    return dst + 1;
  }
  const size_t n = strlen(user);
  dst[0] = '=';
  memcpy(dst + 1, user, n + 1);
  return dst + n + 2;
}
/* Reads a saved value back: the other class's library into `other` (`cap`
 * bytes; "" when none, or when it does not fit) and the user's value as
 * the result (NULL: unset). */
static inline const char *evshim_saved_value_read(const char *saved, char *other, size_t cap) {
  const char *eq = strchr(saved, '=');
  const size_t n = eq != NULL ? (size_t)(eq - saved) : strlen(saved);
  other[0] = '\0';
  if (n > 0 && n < cap) {
    memcpy(other, saved, n);
    other[n] = '\0';
  }
  return eq != NULL ? eq + 1 : NULL;
}

/* A new image's environment: `envp` with the preload (evshim_preload_env_*). */
struct evshim_preload_env {
  const char *library;  /* the library for its LD_PRELOAD */
  const char *other;    /* the other class's, saved for it to pass on; NULL when none */
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
 * `library`, with `other` (NULL for none) the library of the other class
 * that the new image is to pass on: the bytes the new environment takes
 * (the pointer array, its LD_PRELOAD entry and the saved value), or 0 when
 * it must go unchanged: it says supervised (EVSHIM_SUPERVISED=1), it holds
 * LD_PRELOAD more than once or EVSHIM_USER_LD_PRELOAD already (the
 * constructor could not give it back as it was), or `library` cannot stand
 * in LD_PRELOAD (evshim_library_path_fits; an `other` that cannot is left
 * out). */
static inline size_t evshim_preload_env_measure(char *const envp[], const char *library, const char *other,
                                                struct evshim_preload_env *e) {
  memset(e, 0, sizeof *e);
  if (!evshim_library_path_fits(library)) return 0;
  e->library = library;
  e->other = other != NULL && evshim_library_path_fits(other) ? other : NULL;
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
             sizeof EVSHIM_USER_LD_PRELOAD "=" + evshim_saved_value_size(e->user, e->other);
  return e->bytes;
}

/* Builds in `buf` (e->bytes, aligned for pointers) the environment measured
 * in `e`: every entry of `envp` in its place, LD_PRELOAD's changed there
 * (or added last), EVSHIM_USER_LD_PRELOAD added last. The constructor's
 * setenv and unsetenv then leave the entries as `envp` had them, in order. */
static inline char **evshim_preload_env_build(char *const envp[], const struct evshim_preload_env *e, void *buf) {
  char **env = (char **)buf;
  const size_t pointers = e->entries + (e->ld_preload_at == e->entries) + 2;
  char *text = (char *)(env + pointers);
  size_t at = 0;
  for (; at < e->entries; at++) env[at] = envp[at];
  if (e->ld_preload_at == e->entries) at++;
  env[e->ld_preload_at] = text;
  memcpy(text, "LD_PRELOAD=", sizeof "LD_PRELOAD=" - 1);
  text = evshim_preload_value_write(text + sizeof "LD_PRELOAD=" - 1, e->user, e->library);
  env[at++] = text;
  memcpy(text, EVSHIM_USER_LD_PRELOAD "=", sizeof EVSHIM_USER_LD_PRELOAD "=" - 1);
  evshim_saved_value_write(text + sizeof EVSHIM_USER_LD_PRELOAD "=" - 1, e->user, e->other);
  env[at] = NULL;
  return env;
}

#endif /* EVSHIM_INPROC_PRELOAD_TARGET_H */
