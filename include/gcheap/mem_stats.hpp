// gcheap — memory statistics with Go's runtime.MemStats names and meanings.
//
// Every field means what the field of the same name means in Go 1.21's
// runtime.MemStats (see docs/design.md, "MemStats"). A snapshot returned by
// read_mem_stats() satisfies Go's identities at every read:
//
//   HeapSys   == HeapIdle + HeapInuse
//   HeapReleased <= HeapIdle
//   HeapAlloc <= HeapInuse,  Alloc == HeapAlloc
//   HeapObjects == Mallocs - Frees
//   Sys == HeapSys + StackSys + MSpanSys + MCacheSys + BuckHashSys + GCSys + OtherSys
//
// Two derived quantities are the ones Go users measure fragmentation with:
//   heap_usage()        = HeapSys - HeapReleased   (pages the heap keeps resident)
//   max_fragmentation() = HeapInuse - HeapAlloc    (free slots and tail waste in in-use spans)
#pragma once

#include <cstdint>

namespace gcheap {

/// One row of MemStats::BySize: allocation counts for one small size class.
struct MemStatsBySize {
    std::uint32_t Size = 0;     ///< Largest object size in this class, in bytes.
    std::uint64_t Mallocs = 0;  ///< Cumulative objects allocated in this class.
    std::uint64_t Frees = 0;    ///< Cumulative objects freed in this class.
};

/// A snapshot of the heap's counters. Field names follow Go's runtime.MemStats.
struct MemStats {
    // General statistics.
    std::uint64_t Alloc = 0;       ///< Bytes of allocated heap objects (== HeapAlloc).
    std::uint64_t TotalAlloc = 0;  ///< Cumulative bytes allocated (slot sizes; never decreases).
    std::uint64_t Sys = 0;         ///< Total bytes obtained from the OS (sum of the *Sys fields).
    std::uint64_t Lookups = 0;     ///< Always 0, as in Go.
    std::uint64_t Mallocs = 0;     ///< Cumulative count of objects allocated (tiny ones included).
    std::uint64_t Frees = 0;       ///< Cumulative count of objects freed (tiny ones included).

    // Heap memory statistics.
    std::uint64_t HeapAlloc = 0;     ///< Bytes of allocated heap objects, reachable or not yet swept.
    std::uint64_t HeapSys = 0;       ///< Bytes of heap address space mapped for the heap.
    std::uint64_t HeapIdle = 0;      ///< Bytes in free pages (resident or released).
    std::uint64_t HeapInuse = 0;     ///< Bytes in in-use spans (whole pages).
    std::uint64_t HeapReleased = 0;  ///< Bytes of free pages returned to the OS (or never touched).
    std::uint64_t HeapObjects = 0;   ///< Number of allocated heap objects.

    // Stack memory statistics. gcheap allocates no stacks: both stay 0.
    std::uint64_t StackInuse = 0;
    std::uint64_t StackSys = 0;

    // Off-heap metadata.
    std::uint64_t MSpanInuse = 0;   ///< Bytes of span descriptors in use.
    std::uint64_t MSpanSys = 0;     ///< Bytes obtained for span descriptors.
    std::uint64_t MCacheInuse = 0;  ///< Bytes of per-thread caches in use.
    std::uint64_t MCacheSys = 0;    ///< Bytes obtained for per-thread caches.
    std::uint64_t BuckHashSys = 0;  ///< Profiling bucket tables (0: no profiler yet).
    std::uint64_t GCSys = 0;        ///< Arena metadata, arena index, collector metadata.
    std::uint64_t OtherSys = 0;     ///< Other off-heap allocator metadata.

    // Garbage collector statistics (filled by the collector).
    std::uint64_t NextGC = 0;        ///< Heap goal of the next cycle, in bytes.
    std::uint64_t LastGC = 0;        ///< End of the last cycle, Unix nanoseconds (0: none yet).
    std::uint64_t PauseTotalNs = 0;  ///< Cumulative stop-the-world pause time.
    std::uint64_t PauseNs[256] = {};   ///< Ring of recent pauses; latest at (NumGC+255)%256.
    std::uint64_t PauseEnd[256] = {};  ///< Ring of pause end times, Unix nanoseconds.
    std::uint32_t NumGC = 0;         ///< Completed collection cycles.
    std::uint32_t NumForcedGC = 0;   ///< Cycles started by collect().
    double GCCPUFraction = 0.0;      ///< Fraction of CPU time used by the collector.
    bool EnableGC = true;            ///< Always true, as in Go.
    bool DebugGC = false;            ///< Always false, as in Go.

    /// Per size class counts for classes 0..60 (classes 61..67 and tiny and
    /// large objects are not included, exactly as in Go).
    MemStatsBySize BySize[61] = {};

    /// HeapSys - HeapReleased: heap memory the process keeps resident.
    std::uint64_t heap_usage() const { return HeapSys - HeapReleased; }
    /// HeapInuse - HeapAlloc: upper bound on fragmentation inside in-use spans.
    std::uint64_t max_fragmentation() const { return HeapInuse - HeapAlloc; }
};

/// Reads the default heap's statistics. The snapshot is consistent: every
/// allocation that happens-before this call is counted, and the identities
/// above hold even while other threads allocate.
MemStats read_mem_stats();

}  // namespace gcheap
