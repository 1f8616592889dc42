// gcheap — heap options, Go's GOGC / GOMEMLIMIT / GODEBUG knobs.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

namespace gcheap {

/// GCHEAP_DEBUG: self-checks that find collector bugs and API misuse in a
/// user's own program (docs/debugging.md). They cost time, never correctness.
struct DebugOptions {
    /// After every mark phase, mark again with a simple, independent,
    /// single-threaded algorithm; abort with a report if it reaches an object
    /// the collector left unmarked (Go's gccheckmark).
    bool checkmark = false;
    /// Fill every freed object with 0xdeadbeef when it is swept (Go's clobberfree).
    bool clobberfree = false;
    /// After every sweep, check every structure's invariants and the MemStats
    /// identities with the world stopped; abort with a report on a violation.
    bool verify = false;
    /// A full collection every `torture` allocations (0: off). Boehm's gctest idea.
    std::uint64_t torture = 0;

    bool any() const { return checkmark || clobberfree || verify || torture != 0; }

    /// Parses a comma-separated list such as "checkmark,verify,torture=100";
    /// "" and "off" turn everything off. Throws std::invalid_argument naming
    /// the first item it does not understand.
    static DebugOptions parse(std::string_view spec);
    /// The canonical spec ("" when off), which parse() reads back.
    std::string to_string() const;
    /// GCHEAP_DEBUG parsed; an unparsable value is reported on stderr and ignored.
    /// Every heap adds these modes to its HeapOptions::debug, so that the
    /// variable checks a whole program, including heaps built with explicit options.
    static DebugOptions from_environment();
    /// Both sets of modes; the smaller non-zero torture interval.
    DebugOptions merged_with(const DebugOptions& other) const;
};

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
    /// Helper threads join a cycle's marking only when the previous cycle
    /// marked at least this many bytes: waking them costs more than they
    /// save on a small heap. 0 uses them in every cycle.
    std::uint64_t parallel_mark_min_bytes = std::uint64_t{4} << 20;
    /// Sweep in a background thread after automatic collections
    /// (GCHEAP_SWEEPER=off disables it: allocation and the next cycle sweep).
    bool background_sweeper = true;
    /// Return free pages to the OS in a background thread, paced to about
    /// 1% of one CPU (GCHEAP_SCAVENGER=off disables it).
    bool background_scavenger = true;
    /// Scan the writable data segments (.data, .bss) of the program and of
    /// its shared libraries, and the static TLS of registered threads, at
    /// every collection, so that gcheap pointers in globals, statics and
    /// thread_locals keep their objects alive (GCHEAP_SCAN_GLOBALS=off
    /// disables it). Turn it off for programs that register every root
    /// themselves with add_roots().
    bool scan_globals = true;
    /// GCHEAP_DEBUG: verification modes, off by default.
    DebugOptions debug;
    /// GCHEAP_MEMPROFILERATE (Go's MemProfileRate): sample one allocation per
    /// this many bytes for the heap profiler; 0 (the default) turns it off,
    /// 1 samples every allocation (gcheap/profiler.hpp).
    int mem_profile_rate = 0;

    /// Options from GCHEAP_GOGC ("off" or a percentage), GCHEAP_MEMLIMIT
    /// (bytes with an optional B, KiB, MiB, GiB or TiB suffix), GCHEAP_GCTRACE,
    /// GCHEAP_MARK_THREADS, GCHEAP_SCAVENGER, GCHEAP_SWEEPER and GCHEAP_SCAN_GLOBALS
    /// (on or off) and GCHEAP_MEMPROFILERATE (bytes); GCHEAP_DEBUG is read by every heap itself
    /// (DebugOptions::from_environment). Unparsable values are reported on stderr and
    /// ignored, as Go ignores a malformed GOGC.
    static HeapOptions from_environment();
};

}  // namespace gcheap
