// Shared helpers for tests that build their own heaps.
#pragma once

#include "runtime/size_classes.hpp"

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
    if (s.HeapSys != s.HeapIdle + s.HeapInuse) return "HeapSys != HeapIdle + HeapInuse";
    if (s.HeapReleased > s.HeapIdle) return "HeapReleased > HeapIdle";
    if (s.HeapAlloc > s.HeapInuse) return "HeapAlloc > HeapInuse";
    if (s.Alloc != s.HeapAlloc) return "Alloc != HeapAlloc";
    if (s.HeapObjects != s.Mallocs - s.Frees) return "HeapObjects != Mallocs - Frees";
    if (s.TotalAlloc < s.HeapAlloc) return "TotalAlloc < HeapAlloc";
    if (s.Sys != s.HeapSys + s.StackSys + s.MSpanSys + s.MCacheSys + s.BuckHashSys + s.GCSys + s.OtherSys)
        return "Sys != sum of *Sys";
    if (s.MSpanInuse > s.MSpanSys) return "MSpanInuse > MSpanSys";
    if (s.MCacheInuse > s.MCacheSys) return "MCacheInuse > MCacheSys";
    if (s.StackInuse > s.StackSys) return "StackInuse > StackSys";
    if (s.HeapSys % kPageSize != 0 || s.HeapInuse % kPageSize != 0) return "heap figures not whole pages";
    std::uint64_t by_size_mallocs = 0;
    std::uint64_t by_size_frees = 0;
    for (std::size_t c = 0; c < kBySizeClasses; ++c) {
        if (s.BySize[c].Size != kClassSize[c]) return "BySize[" + std::to_string(c) + "].Size";
        if (s.BySize[c].Frees > s.BySize[c].Mallocs) return "BySize frees > mallocs";
        by_size_mallocs += s.BySize[c].Mallocs;
        by_size_frees += s.BySize[c].Frees;
    }
    if (by_size_mallocs > s.Mallocs || by_size_frees > s.Frees) return "BySize exceeds totals";
    if (!s.EnableGC || s.DebugGC || s.Lookups != 0) return "constant fields";
    return "";
}

}  // namespace gcheap::test
