// Fragmentation accounting: per size class tallies of in-use spans, the
// public FragmentationReport built from them, and gctrace=2's summary line.
//
// A tally counts, per size class, spans, slots and live objects, and spans
// per occupancy bucket; large objects count their pages and requested bytes.
// Two views of "live" feed it:
//   - the allocator's (fragmentation_report, heap maps): a span's allocated
//     slots, alloc_count, exactly as MemStats counts HeapAlloc — so that
//     HeapInuse − HeapAlloc == Σ wasted bytes, read under the same lock;
//   - the collector's (gctrace=2): a span's marked objects, read with the
//     world stopped after marking — what sweeping will leave. Spans with no
//     marked object are left out: sweeping frees them.
// Invariants of a tally T built from spans S (checked by tests):
//   (F1) Σ_c T.classes[c].pages * kPageSize == Σ_{s∈S} s.npages * kPageSize
//   (F2) T.classes[c].live <= T.classes[c].slots; Σ occupancy[c] == spans[c]
//
// Locking: the caller keeps the spans still — the allocator gate closed
// (Heap::AllocatorLock) or the world stopped. Counting touches no lock and
// allocates nothing, so it may run while the world is stopped.
#pragma once

#include "runtime/size_classes.hpp"

#include <gcheap/fragmentation.hpp>
#include <gcheap/mem_stats.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace gcheap::detail {

class ArenaIndex;
struct Span;

/// The occupancy bucket (0..kOccupancyBuckets-1) of a span with `live` of `slots` in use.
std::size_t occupancy_bucket(std::uint64_t live, std::uint64_t slots);

struct ClassTally {
    std::uint64_t spans = 0;
    std::uint64_t noscan_spans = 0;
    std::uint64_t live = 0;
    std::array<std::uint64_t, kOccupancyBuckets> occupancy{};
};

/// Counts of in-use spans by size class; fixed size, so that it can be
/// filled with the world stopped.
struct FragTally {
    std::array<ClassTally, kNumSizeClasses> classes{};  // [0] unused: large objects below
    std::uint64_t large_objects = 0;
    std::uint64_t large_pages = 0;
    std::uint64_t large_requested = 0;

    /// Adds one in-use span holding `live` allocated (or marked) objects.
    void add_span(const Span& span, std::uint32_t live);
};

/// alloc_count of every span held by a thread cache, as read once by
/// compute_stats_locked(): fast-path allocation goes on while the gate is
/// closed, so a second read could disagree with the MemStats.
class CachedSpanCounts {
public:
    void record(const Span* span, std::uint32_t count) { counts_.emplace_back(span, count); }
    /// Sorts the records for live_count(); call once, after recording.
    void seal();
    /// The allocated slots of `span` as of the snapshot: its recorded count if
    /// a cache held it, else alloc_count (which cannot change under the lock).
    std::uint32_t live_count(const Span& span) const;

private:
    std::vector<std::pair<const Span*, std::uint32_t>> counts_;
};

/// World stopped, marking done: tallies the spans sweeping will keep, counting
/// marked objects as live.
void tally_marked_spans_stopped(const ArenaIndex& index, FragTally& out);

/// The public report from a tally and the MemStats read with it.
FragmentationReport make_report(const FragTally& tally, const MemStats& stats);

/// gctrace=2's line: "frag: ..." with the totals and the worst classes.
std::string fragmentation_trace_line(const FragmentationReport& report);

}  // namespace gcheap::detail
