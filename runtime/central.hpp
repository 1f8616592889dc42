// Central: the per-span-class list of spans not held by any thread cache
// (Go's mcentral).
//
// A thread cache that runs out of free slots in its span hands the span back
// (uncache_span) and asks for another (cache_span): a partial span first, else
// a fresh span from the page heap.
//
// Counting: a span records alloc_count when a cache takes it; when the cache
// returns it, the difference is folded into `allocs`. Objects allocated in
// spans currently held by caches are counted by read_mem_stats() walking the
// caches, so the sum is exact at every read.
//
// Invariants (verify_locked() checks them):
//   (C1) every span on `partial` has a free slot; every span on `full` has none;
//   (C2) every span here has home kCentralPartial/kCentralFull matching its list
//        and span_class == this central's class.
// Locking: mutex() guards the lists and counters; callers also hold the
// allocator gate shared (gate.hpp). Lock order: gate -> central -> page heap.
#pragma once

#include "runtime/page_heap.hpp"
#include "runtime/span.hpp"

#include <cstdint>
#include <mutex>

namespace gcheap::detail {

class Central {
public:
    void init(std::size_t spc) { span_class_ = spc; }

    /// Returns a span of this class with at least one free slot, owned by the
    /// caller's thread cache, or nullptr if the OS refuses memory.
    Span* cache_span(PageHeap& pages);

    /// Takes back a span from a thread cache, folding its allocation count.
    void uncache_span(Span* span);

    std::mutex& mutex() { return mu_; }
    std::uint64_t allocs_locked() const { return allocs_; }
    std::uint64_t frees_locked() const { return frees_; }
    const SpanList& partial_locked() const { return partial_; }
    const SpanList& full_locked() const { return full_; }
    std::size_t span_class() const { return span_class_; }

    const char* verify_locked() const;

private:
    std::mutex mu_;
    std::size_t span_class_ = 0;
    SpanList partial_;
    SpanList full_;
    std::uint64_t allocs_ = 0;
    std::uint64_t frees_ = 0;
};

}  // namespace gcheap::detail
