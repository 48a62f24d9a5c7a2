/*
 * Starts a program through one of glibc's exec or spawn entries, so the
 * tests can see what each passes on (the preloaded signal wrappers reach
 * the children that take them: docs/design.md "A copy that survives a
 * fault", The wrappers preloaded).
 *
 *   spawn_exec ENTRY PROGRAM [ARG...]
 *
 * ENTRY: execve, execv, execvp, execvpe, execl, execle, execlp (at most
 * three ARGs), fexecve, execveat (the program opened, AT_EMPTY_PATH),
 * posix_spawn, posix_spawnp, vfork (vfork, then execve in the child),
 * system (the words joined with spaces, run by system()), or popen (the
 * same command run by popen(.., "r"), its output copied to stdout, the
 * status from pclose()), or system-cancelled (system() on a thread that is
 * cancelled 0.3 s later: prints whether it was, SIGINT's disposition
 * after, and whether a child is left). The exec forms
 * replace this process; the others wait and exit with the child's status.
 * The exec and spawn forms pass this process's environment; with
 * SPAWN_EXEC_LD_PRELOAD_SPACES=N in it, LD_PRELOAD is first set to N spaces
 * (a value near the kernel's limit for one string). When the call
 * fails, its errno's name is printed on stdout ("ENOENT") and the exit is
 * 127.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static const char *errno_name(int e) {
  switch (e) {
    case ENOENT: return "ENOENT";
    case EACCES: return "EACCES";
    case E2BIG: return "E2BIG";
    case ENOEXEC: return "ENOEXEC";
    case ENOTDIR: return "ENOTDIR";
    default: return strerror(e);
  }
}

static int failed(int e) {
  printf("%s\n", errno_name(e));
  return 127;
}

static int waited(pid_t pid) {
  int status;
  if (waitpid(pid, &status, 0) != pid) return failed(errno);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void *run_system(void *command) {
  system(command);
  return NULL;
}

/* The list forms, with up to three arguments after the program's name;
 * the arguments after them (the NULL, execle's environment) are `...`. */
#define LIST(call, first, ...)                                                \
  (argc == 3   ? call(first, argv[2], __VA_ARGS__)                            \
   : argc == 4 ? call(first, argv[2], argv[3], __VA_ARGS__)                   \
   : argc == 5 ? call(first, argv[2], argv[3], argv[4], __VA_ARGS__)          \
               : call(first, argv[2], argv[3], argv[4], argv[5], __VA_ARGS__))

int main(int argc, char **argv) {
  if (argc < 3 || argc > 6) {
    fprintf(stderr, "usage: spawn_exec ENTRY PROGRAM [ARG...] (at most three ARGs)\n");
    return 2;
  }
  const char *entry = argv[1], *program = argv[2];
  char **args = argv + 2;
  const char *spaces = getenv("SPAWN_EXEC_LD_PRELOAD_SPACES");
  if (spaces != NULL) {
    static char value[1 << 18];
    const size_t n = (size_t)atol(spaces);
    if (n >= sizeof value) return 2;
    memset(value, ' ', n);
    unsetenv("SPAWN_EXEC_LD_PRELOAD_SPACES");
    setenv("LD_PRELOAD", value, 1);
  }
  fflush(stdout);
  if (strcmp(entry, "execve") == 0) {
    execve(program, args, environ);
  } else if (strcmp(entry, "execv") == 0) {
    execv(program, args);
  } else if (strcmp(entry, "execvp") == 0) {
    execvp(program, args);
  } else if (strcmp(entry, "execvpe") == 0) {
    execvpe(program, args, environ);
  } else if (strcmp(entry, "execl") == 0) {
    LIST(execl, program, (char *)NULL);
  } else if (strcmp(entry, "execle") == 0) {
    LIST(execle, program, (char *)NULL, environ);
  } else if (strcmp(entry, "execlp") == 0) {
    LIST(execlp, program, (char *)NULL);
  } else if (strcmp(entry, "fexecve") == 0 || strcmp(entry, "execveat") == 0) {
    const int fd = open(program, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return failed(errno);
    if (entry[1] == 'e') {
      execveat(fd, "", args, environ, AT_EMPTY_PATH);
    } else {
      fexecve(fd, args, environ);
    }
  } else if (strcmp(entry, "posix_spawn") == 0 || strcmp(entry, "posix_spawnp") == 0) {
    pid_t pid;
    const int e = entry[11] == 'p' ? posix_spawnp(&pid, program, NULL, NULL, args, environ)
                                   : posix_spawn(&pid, program, NULL, NULL, args, environ);
    return e != 0 ? failed(e) : waited(pid);
  } else if (strcmp(entry, "vfork") == 0) {
    const pid_t pid = vfork();
    if (pid == 0) {
      execve(program, args, environ);
      _exit(127);
    }
    return pid < 0 ? failed(errno) : waited(pid);
  } else if (strcmp(entry, "system") == 0 || strcmp(entry, "popen") == 0) {
    char command[4096] = "";
    for (int i = 2; i < argc; i++) {
      if (strlen(command) + strlen(argv[i]) + 2 > sizeof command) return 2;
      strcat(command, i > 2 ? " " : "");
      strcat(command, argv[i]);
    }
    int status;
    if (entry[0] == 's') {
      status = system(command);
    } else {
      FILE *f = popen(command, "r");
      if (f == NULL) return failed(errno);
      char buf[4096];
      size_t n;
      while ((n = fread(buf, 1, sizeof buf, f)) > 0) fwrite(buf, 1, n, stdout);
      status = pclose(f);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
  } else if (strcmp(entry, "system-cancelled") == 0) {
    /* SIGINT at its default first: a shell's background job starts with it
     * ignored, and then "as it was" would read as changed. */
    signal(SIGINT, SIG_DFL);
    pthread_t thread;
    if (pthread_create(&thread, NULL, run_system, (void *)program) != 0) return 2;
    usleep(300 * 1000);
    pthread_cancel(thread);
    void *result;
    pthread_join(thread, &result);
    struct sigaction intr;
    sigaction(SIGINT, NULL, &intr);
    int status;
    const pid_t left = waitpid(-1, &status, WNOHANG);
    printf("%s %s %s\n", result == PTHREAD_CANCELED ? "cancelled" : "returned",
           intr.sa_handler == SIG_DFL ? "SIGINT-default" : "SIGINT-changed",
           left < 0 && errno == ECHILD ? "no-child" : "child-left");
    return 0;
  } else {
    fprintf(stderr, "spawn_exec: no entry %s\n", entry);
    return 2;
  }
  return failed(errno);
}
