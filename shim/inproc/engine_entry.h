/*
 * The one entry of libevshim-engine.so (issue 15, docs/design.md "The
 * in-process fast path"), called by the foreign libraries instead of the
 * foreign system call. C, so the libraries stay C.
 */
#ifndef EVSHIM_ENGINE_ENTRY_H
#define EVSHIM_ENGINE_ENTRY_H

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Serves foreign call `nr` (the x86_64 number the library would issue, see
 * abi/syscall_table.cc) with the six argument registers `args` (LP64).
 * *handled = 0: not served here (supervised mode, EVSHIM_SUPERVISED=1; or a
 * descriptor that is not one of this process's in-process objects): the
 * library issues the system call. *handled = 1: the call's result, with
 * syscall(2)'s convention (-1 and errno on failure).
 */
long evshim_engine_call(int nr, const long args[6], int *handled);

#ifdef __cplusplus
}
#endif

#endif
