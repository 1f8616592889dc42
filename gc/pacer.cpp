// Heap goal computation; see pacer.hpp.
#include "gc/pacer.hpp"

#include <algorithm>

namespace gcheap::detail {

Pacer::Pacer(const HeapOptions& options)
    : gc_percent_(options.gc_percent), memory_limit_(std::max<std::int64_t>(options.memory_limit, 0)) {
    recompute();
}

int Pacer::set_gc_percent(int percent) {
    const int previous = gc_percent_.exchange(percent, std::memory_order_relaxed);
    recompute();
    return previous;
}

std::int64_t Pacer::set_memory_limit(std::int64_t limit) {
    if (limit < 0) return memory_limit_.load(std::memory_order_relaxed);
    const std::int64_t previous = memory_limit_.exchange(limit, std::memory_order_relaxed);
    recompute();
    return previous;
}

void Pacer::commit(std::uint64_t marked, std::uint64_t mapped, std::uint64_t free_resident, std::uint64_t heap_alloc) {
    marked_.store(marked, std::memory_order_relaxed);
    const std::uint64_t accounted = free_resident + heap_alloc;
    non_heap_.store(mapped > accounted ? mapped - accounted : 0, std::memory_order_relaxed);
    recompute();
}

void Pacer::recompute() {
    const std::uint64_t marked = marked_.load(std::memory_order_relaxed);
    const int percent = gc_percent_.load(std::memory_order_relaxed);
    std::uint64_t goal = kNoGoal;
    if (percent >= 0) {
        const auto p = static_cast<std::uint64_t>(percent);
        goal = std::max(marked + marked / 100 * p + marked % 100 * p / 100, kHeapMinimum * p / 100);
    }
    const std::int64_t limit = memory_limit_.load(std::memory_order_relaxed);
    if (limit != kNoLimit) {
        const auto l = static_cast<std::uint64_t>(limit);
        const std::uint64_t non_heap = non_heap_.load(std::memory_order_relaxed);
        std::uint64_t limit_goal = l > non_heap ? l - non_heap : 0;
        const std::uint64_t headroom = std::max(limit_goal / 100 * 3, std::uint64_t{1} << 20);
        limit_goal = limit_goal > headroom ? limit_goal - headroom : 0;
        // Go floors this at the marked heap and lets its GC CPU limiter stop
        // the thrashing; without a limiter, leave 1 MiB of runway.
        goal = std::min(goal, std::max(limit_goal, marked + (std::uint64_t{1} << 20)));
    }
    goal_.store(goal, std::memory_order_relaxed);
}

}  // namespace gcheap::detail
