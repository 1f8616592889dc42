// gcheap — heap options, Go's GOGC / GOMEMLIMIT / GODEBUG knobs.
#pragma once

#include <cstdint>
#include <limits>

namespace gcheap {

/// Settings of one heap. The default heap reads them from the environment at
/// start-up (see from_environment()); tests and embedders may build heaps
/// with explicit options.
struct HeapOptions {
    /// GOGC: collect when the heap grows by this percentage over the live heap
    /// of the last cycle. Negative disables automatic collection.
    int gc_percent = 100;
    /// GOMEMLIMIT: soft limit in bytes on Sys - HeapReleased; collect more
    /// often as it nears. The maximum value means no limit.
    std::int64_t memory_limit = std::numeric_limits<std::int64_t>::max();
    /// GODEBUG=gctrace: 1 prints one line per cycle to stderr in Go's format;
    /// 2 adds a line summarising the fragmentation the cycle leaves behind
    /// (docs/fragmentation.md).
    int gctrace = 0;
    /// Threads that mark (the collecting thread included); 0 means one per
    /// online CPU, 1 marks on the collecting thread alone (for debugging).
    unsigned mark_threads = 0;
    /// Sweep in a background thread after automatic collections.
    bool background_sweeper = true;
    /// Return free pages to the OS in a background thread, paced to about
    /// 1% of one CPU (GCHEAP_SCAVENGER=off disables it).
    bool background_scavenger = true;

    /// Options from GCHEAP_GOGC ("off" or a percentage), GCHEAP_MEMLIMIT
    /// (bytes with an optional B, KiB, MiB, GiB or TiB suffix), GCHEAP_GCTRACE,
    /// GCHEAP_MARK_THREADS and GCHEAP_SCAVENGER (on or off). Unparsable values are reported on stderr and
    /// ignored, as Go ignores a malformed GOGC.
    static HeapOptions from_environment();
};

}  // namespace gcheap
