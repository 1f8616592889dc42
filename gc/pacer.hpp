// Pacer: when to collect (Go's mgcpacer.go and mgclimit.go, simplified for a
// stop-the-world collector).
//
// After each cycle, with L the bytes marked live:
//   GOGC goal   = max(L * (1 + GOGC/100), 4 MiB * GOGC/100)      (none if GOGC < 0)
//   limit goal  = limit - non-heap memory - headroom, at least L + 1 MiB (none without a limit)
//                 where non-heap = mapped - free resident pages - HeapAlloc and
//                 headroom = max(3% of that goal, 1 MiB), as Go's memoryLimitGoal
//   goal        = min of the two                                   (MemStats.NextGC)
// A collection starts when heap_live — marked bytes plus everything handed
// out since — reaches the goal. Go starts its concurrent mark earlier (the
// trigger) so that marking finishes by the goal; marking here happens with
// the world stopped, so the trigger is the goal itself.
// Before the first cycle L = 0, so the first goal is 4 MiB (at GOGC=100).
//
// Thread safety: all members are atomics; set_* may run concurrently with
// allocation.
#pragma once

#include <gcheap/options.hpp>

#include <atomic>
#include <cstdint>
#include <limits>

namespace gcheap::detail {

class Pacer {
public:
    static constexpr std::uint64_t kHeapMinimum = std::uint64_t{4} << 20;
    static constexpr std::uint64_t kNoGoal = std::numeric_limits<std::uint64_t>::max();
    static constexpr std::int64_t kNoLimit = std::numeric_limits<std::int64_t>::max();

    explicit Pacer(const HeapOptions& options);

    /// debug.SetGCPercent: returns the previous value; negative disables.
    int set_gc_percent(int percent);
    /// debug.SetMemoryLimit: returns the previous limit; a negative argument only queries.
    std::int64_t set_memory_limit(std::int64_t limit);
    int gc_percent() const { return gc_percent_.load(std::memory_order_relaxed); }
    std::int64_t memory_limit() const { return memory_limit_.load(std::memory_order_relaxed); }

    /// End of a cycle: `marked` live bytes; `mapped` = Sys - HeapReleased,
    /// `free_resident` = HeapIdle - HeapReleased, `heap_alloc` = HeapAlloc.
    void commit(std::uint64_t marked, std::uint64_t mapped, std::uint64_t free_resident, std::uint64_t heap_alloc);

    std::uint64_t goal() const { return goal_.load(std::memory_order_relaxed); }
    bool should_trigger(std::uint64_t heap_live) const { return heap_live >= goal_.load(std::memory_order_relaxed); }

private:
    void recompute();

    std::atomic<int> gc_percent_;
    std::atomic<std::int64_t> memory_limit_;
    std::atomic<std::uint64_t> marked_{0};
    std::atomic<std::uint64_t> non_heap_{0};
    std::atomic<std::uint64_t> goal_{kHeapMinimum};
};

}  // namespace gcheap::detail
