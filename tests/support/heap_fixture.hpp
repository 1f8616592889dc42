// Shared helpers for tests that build their own heaps.
#pragma once

#include "runtime/heap.hpp"

#include <gcheap/gcheap.hpp>
#include <gcheap/options.hpp>

#include <cstring>
#include <string>

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
    options.parallel_mark_min_bytes = 0;  // test heaps are small: mark in parallel anyway
    return options;
}

/// Overwrites a stretch of stack below the caller, so that pointers left in
/// dead frames by earlier calls do not act as roots. Conservative collectors
/// need this in tests that expect garbage to be freed; samples/ shows users
/// the same technique.
[[gnu::noinline]] inline void clear_stack() {
    volatile char buffer[64 * 1024];
    std::memset(const_cast<char*>(buffer), 0, sizeof buffer);
    gcheap::keep_alive(const_cast<char*>(buffer));
}

using gcheap::MemStats;
using namespace gcheap::detail;

// Every identity Go's tests assert; returns the first that fails, or "".
inline std::string check_identities(const MemStats& s) {
    if (const char* problem = mem_stats_violation(s)) return problem;
    if (!s.EnableGC || s.DebugGC || s.Lookups != 0) return "constant fields";
    return "";
}

}  // namespace gcheap::test
