// Shared helpers for tests that build their own heaps.
#pragma once

#include <gcheap/options.hpp>

namespace gcheap::test {

/// Options for a heap that never collects on its own: allocator tests keep
/// their pointers in malloc'd containers, which the collector does not scan.
inline HeapOptions no_gc() {
    HeapOptions options;
    options.gc_percent = -1;
    options.background_sweeper = false;
    options.background_scavenger = false;
    return options;
}

/// Options for a collector test: no automatic cycles (the test calls
/// collect()), a fixed number of mark threads.
inline HeapOptions manual_gc(unsigned mark_threads = 2) {
    HeapOptions options = no_gc();
    options.mark_threads = mark_threads;
    return options;
}

}  // namespace gcheap::test
