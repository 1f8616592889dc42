// Central: the per-span-class lists of spans not held by any thread cache
// (Go's mcentral).
//
// Three lists: `partial` (swept, at least one free slot), `full` (swept, no
// free slot) and `unswept` (marked by the last collection, not yet swept).
// At the end of each mark phase the collector moves partial and full to
// unswept (begin_sweep_locked); spans then come back as they are swept,
// lazily on allocation or by the background sweeper (gc/sweeper.hpp).
//
// Counting: a span records alloc_count when a cache takes it; when the cache
// returns it, the difference is folded into `allocs`. Objects allocated in
// spans currently held by caches are counted by read_mem_stats() walking the
// caches, so the sum is exact at every read. Sweeping adds to `frees`.
//
// Invariants (verify_locked() checks them):
//   (C1) every span on `partial` has a free slot; every span on `full` has none;
//   (C2) every span here has the home matching its list, span_class == this
//        central's class and partition == this central's partition;
//   (C3) outside a collection cycle's sweep phase, `unswept` is empty.
// Locking: mutex() guards partial, full and the counters; a lock of its own
// guards unswept, so that a sweeper taking spans to sweep never holds up an
// allocating thread returning or taking a swept span (Go keeps its unswept
// spans in lock-free sets for the same reason). Callers hold the allocator
// gate shared (gate.hpp); the *_locked members need it closed, which leaves
// no sweeper running. Lock order: gate -> central -> page heap.
#pragma once

#include "runtime/span.hpp"
#include "runtime/sync.hpp"

#include <atomic>
#include <cstdint>
#include <mutex>

namespace gcheap::detail {

class Central {
public:
    void init(std::size_t spc, std::uint8_t partition) {
        span_class_ = spc;
        partition_ = partition;
    }

    /// A swept span with a free slot, or nullptr.
    Span* pop_partial();
    /// A span still to be swept, or nullptr.
    Span* pop_unswept();
    /// Files a swept span by its free slots, adding `freed` to the free count.
    void push_swept(Span* span, std::uint64_t freed);
    /// push_swept() for `count` spans (possibly none) under one lock.
    void push_swept(Span* const* spans, std::size_t count, std::uint64_t freed);
    /// Adds objects freed from a span that went back to the page heap.
    void add_frees(std::uint64_t freed);
    /// Takes back a span from a thread cache, folding its allocation count.
    void uncache_span(Span* span);

    /// Moves every swept span to the unswept list (collector, world stopped).
    void begin_sweep_locked();
    /// Takes over every span and count of `from` (a destroyed partition's
    /// central of the same class), leaving it empty. Gate closed.
    void adopt_locked(Central& from);

    std::mutex& mutex() { return mu_; }
    std::uint64_t allocs_locked() const { return allocs_; }
    std::uint64_t frees_locked() const { return frees_; }
    const SpanList& partial_locked() const { return partial_; }
    const SpanList& full_locked() const { return full_; }
    const SpanList& unswept_locked() const { return unswept_; }
    std::size_t span_class() const { return span_class_; }
    std::uint8_t partition() const { return partition_; }
    /// Unswept spans, readable without the lock (a hint for the sweeper).
    std::uint32_t unswept_hint() const { return unswept_count_.load(std::memory_order_relaxed); }

    const char* verify_locked() const;

private:
    void file_locked(Span* span);

    std::mutex mu_;
    SpinningMutex unswept_mu_;
    std::size_t span_class_ = 0;
    std::uint8_t partition_ = 0;
    SpanList partial_;
    SpanList full_;
    SpanList unswept_;  // guarded by unswept_mu_
    std::atomic<std::uint32_t> unswept_count_{0};
    std::uint64_t allocs_ = 0;
    std::uint64_t frees_ = 0;
};

}  // namespace gcheap::detail
