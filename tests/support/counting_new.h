// Heap allocations made by the calling thread while it counts
// (InprocAllocations, InprocKqueueAllocations): every operator new of the
// test process, the engine library's included, goes through this one.
// Include it in one source file of a test program: it replaces the
// program's operator new and delete.
#pragma once

#include <cstdlib>
#include <new>

thread_local bool t_count_news = false;
thread_local long t_news = 0;
void* operator new(size_t size) {
  if (t_count_news) ++t_news;
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
// Its pair: a sanitizer's own operator delete checks that the memory came
// from its operator new (ASan: alloc-dealloc-mismatch), so both are ours.
// (Not inlined: GCC's -Wmismatched-new-delete would see free() after a
// new-expression at every call site.)
__attribute__((noinline)) void operator delete(void* p) noexcept { std::free(p); }
__attribute__((noinline)) void operator delete(void* p, size_t) noexcept { std::free(p); }
