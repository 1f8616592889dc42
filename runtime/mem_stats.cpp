// read_mem_stats(): Go's MemStats from the heap's counters (mstats.go).
//
// Sources, all read with the allocator gate closed (AllocatorLock, or the
// collector's world stop):
//   small objects  Central::allocs (spans returned by caches) plus, for spans
//                  cached right now, alloc_count - alloc_count_at_cache;
//   tiny objects   folded counts of exited threads plus each cache's counter;
//                  counted in both Mallocs and Frees, as in Go;
//   large objects  page-heap-locked counters in Heap;
//   pages          PageHeap's inuse/free/released counters;
//   metadata       FixAlloc pools (spans, caches), arena metadata, containers.
//
// Consistency: with the gate closed, only fast-path allocations on spans
// already cached can proceed. Each cached span's count is read once, so every
// figure below is derived from the same values and Go's identities hold
// exactly; every allocation that happens-before the call is included.
// Readers that derive more figures under the same lock (the fragmentation
// report, heap maps) get those reads back (CachedSpanCounts) rather than
// reading the counts again.
#include "runtime/heap.hpp"

#include "gc/collector.hpp"
#include "runtime/fragmentation.hpp"

namespace gcheap::detail {

MemStats Heap::read_mem_stats() {
    MemStats s;
    AllocatorLock lock(*this);
    compute_stats_locked(s);
    collector_->fill_mem_stats(s);
    return s;
}

void Heap::compute_stats_locked(MemStats& s, CachedSpanCounts* cached) {
    std::array<std::uint64_t, kNumSizeClasses> small_allocs{};
    std::array<std::uint64_t, kNumSizeClasses> small_frees{};
    std::uint64_t tiny_allocs = 0;
    {
        for_each_central([&](const Central& central) {
            const std::size_t cls = span_class_size_class(central.span_class());
            small_allocs[cls] += central.allocs_locked();
            small_frees[cls] += central.frees_locked();
        });
        tiny_allocs = tiny_allocs_folded_;
        for (const ThreadCache* c = caches_; c != nullptr; c = c->registry_next) {
            for (const Span* span : c->spans) {
                if (span == &empty_span_) continue;
                const std::uint32_t count = span->alloc_count.load(std::memory_order_relaxed);
                if (cached != nullptr) cached->record(span, count);
                small_allocs[span->size_class] += count - span->alloc_count_at_cache;
            }
            tiny_allocs += c->tiny_allocs.load(std::memory_order_relaxed);
        }
        s.HeapInuse = pages_.heap_inuse_locked();
        s.HeapReleased = pages_.heap_released_locked();
        s.HeapIdle = pages_.heap_free_locked() + s.HeapReleased;
        s.HeapSys = s.HeapInuse + s.HeapIdle;
        s.MSpanInuse = pages_.span_inuse_bytes_locked();
        s.MSpanSys = pages_.span_sys_bytes_locked();
        s.MCacheInuse = cache_pool_.inuse_bytes();
        s.MCacheSys = cache_pool_.sys_bytes();
        s.GCSys = arena_index_.sys_bytes() + collector_->marker().sys_bytes();
        s.OtherSys = pages_.other_sys_bytes_locked();
        s.TotalAlloc = large_alloc_bytes_;
        s.Mallocs = large_alloc_count_ + tiny_allocs;
        s.Frees = large_free_count_ + tiny_allocs;
        std::uint64_t freed_bytes = large_free_bytes_;
        for (std::size_t cls = 1; cls < kNumSizeClasses; ++cls) {
            s.TotalAlloc += small_allocs[cls] * kClassSize[cls];
            freed_bytes += small_frees[cls] * kClassSize[cls];
            s.Mallocs += small_allocs[cls];
            s.Frees += small_frees[cls];
        }
        s.HeapAlloc = s.TotalAlloc - freed_bytes;
    }
    s.Alloc = s.HeapAlloc;
    s.HeapObjects = s.Mallocs - s.Frees;
    s.Sys = s.HeapSys + s.StackSys + s.MSpanSys + s.MCacheSys + s.BuckHashSys + s.GCSys + s.OtherSys;
    for (std::size_t cls = 0; cls < kBySizeClasses; ++cls) {
        s.BySize[cls].Size = kClassSize[cls];
        s.BySize[cls].Mallocs = small_allocs[cls];
        s.BySize[cls].Frees = small_frees[cls];
    }
}

}  // namespace gcheap::detail
