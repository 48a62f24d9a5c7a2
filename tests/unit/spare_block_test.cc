// ThreadSpareBlock (abi/common/spare_block.h): a thread keeps the last block
// it freed for its next object; a block freed while one is kept, or by an
// exiting thread, goes back to the heap (the ASan build's leak check sees a
// block a thread's exit did not free).
#include "abi/common/spare_block.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <thread>

namespace evshim::abi {
namespace {

struct Block final : ThreadSpareBlock<Block> {
  uint64_t payload[8] = {};
};

TEST(ThreadSpareBlock, TheNextObjectOfAThreadTakesItsLastFreedBlock) {
  Block* a = new Block;
  void* where = a;
  delete a;
  Block* b = new Block;
  EXPECT_EQ(static_cast<void*>(b), where);
  // Two alive: the second comes from the heap; freed, the first is kept and
  // the second goes back.
  Block* c = new Block;
  EXPECT_NE(static_cast<void*>(c), where);
  delete b;
  delete c;
  Block* d = new Block;
  EXPECT_EQ(static_cast<void*>(d), where);
  delete d;
}

TEST(ThreadSpareBlock, EachThreadKeepsItsOwnAndFreesItAtExit) {
  void* kept_here = nullptr;
  {
    Block* a = new Block;
    kept_here = a;
    delete a;
  }
  void* kept_there = nullptr;
  std::thread t([&] {
    Block* b = new Block;  // not this thread's spare: the other's is not shared
    kept_there = b;
    delete b;              // kept by this thread, freed at its exit
    Block* c = new Block;
    EXPECT_EQ(static_cast<void*>(c), kept_there);
    delete c;
  });
  t.join();
  EXPECT_NE(kept_there, kept_here);
  Block* mine = new Block;
  EXPECT_EQ(static_cast<void*>(mine), kept_here);
  delete mine;
  // Many threads, each keeping a block at its exit: freed by its end.
  for (int i = 0; i < 32; ++i) {
    std::thread([] { delete new Block; }).join();
  }
}

}  // namespace
}  // namespace evshim::abi
