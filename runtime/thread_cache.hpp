// ThreadCache: a thread's private spans, one per span class, and its tiny
// block (Go's mcache).
//
// The allocation fast path (allocator.hpp) reads the calling thread's cache
// through a trivially-initialised thread_local slot keyed by heap id, and
// touches only the cache and its spans: no lock, no shared write.
//
// Invariants:
//   (T1) spans[c] is never null: a class with no span points at the heap's
//        shared empty span, which has no free slot, so the fast path needs no
//        null check and simply falls through to the slow path;
//   (T2) every non-empty spans[c] has home == kThreadCache and is in no list;
//   (T3) tiny != 0 implies [tiny, tiny + 16) is a class-2 noscan slot of this
//        heap and tiny_offset <= 16;
//   (T4) every non-empty spans[c] has span.partition == partition (the
//        partition this cache serves, partition.hpp).
// Locking: only the owner thread changes its cache, on its slow path, which
// passes the allocator gate shared (gate.hpp); readers close the gate to see
// a stable set of spans. The fast path mutates only span allocation state the
// owner holds, and counters that are relaxed atomics.
#pragma once

#include "runtime/size_classes.hpp"
#include "runtime/span.hpp"

#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>

namespace gcheap::detail {

class Heap;
class Central;
struct CacheBinding;

struct ThreadCache {
    explicit ThreadCache(Span* empty) { spans.fill(empty); }

    std::array<Span*, kNumSpanClasses> spans;
    std::uintptr_t tiny = 0;
    std::size_t tiny_offset = 0;
    std::atomic<std::uint64_t> tiny_allocs{0};  // tiny objects packed since the last fold

    // The heap profiler's sampling state (profiler.hpp), the owner thread's alone.
    // sample_left[spc]: allocations of the span class up to and including the
    // next sampled one, not yet accounted for; 0 = draw afresh (or a sample
    // point is planted in the cached span).
    std::array<std::uint32_t, kNumSpanClasses> sample_left{};
    // sample_epoch[spc]: the Profiler's epoch (rate) sample_left[spc] was drawn at.
    std::array<std::uint32_t, kNumSpanClasses> sample_epoch{};
    std::uint64_t sample_rng = 0;           // xorshift state; 0 = not seeded yet
    const void* sample_entry = nullptr;     // an internal caller's return address (alloc_tiny_slow)

    ThreadCache* registry_next = nullptr;
    ThreadCache* registry_prev = nullptr;
    CacheBinding* binding = nullptr;  // the owner thread's link back to this cache

    // The partition this cache allocates for (partition.hpp). Placed after
    // the fast path's fields, which do not move. The slow path refills from
    // centrals[spc]; partition_id is kNoPartitionId once the partition is
    // gone (the owner may then reuse the cache for another partition).
    Central* centrals = nullptr;
    std::uint8_t partition = 0;
    std::atomic<std::uint64_t> partition_id{0};
    // The owner thread's next cache on this heap, one per partition it has
    // used, from CacheBinding::cache (the default partition's). Owner only.
    ThreadCache* thread_next = nullptr;
};

/// The fast path's view of "this thread's cache": trivially initialised, so
/// the compiler emits a plain TLS access with no guard or wrapper call.
/// in_alloc_region / suspend_pending implement allocation regions
/// (gc/threads.hpp): the suspend signal handler defers to the fast path.
struct ThreadCacheSlot {
    std::uint64_t heap_id;
    ThreadCache* cache;
    volatile int in_alloc_region;
    volatile int suspend_pending;
};
inline thread_local ThreadCacheSlot tls_cache_slot = {0, nullptr, 0, 0};

void suspend_pending_thread();  // gc/threads.cpp

/// Marks the lock-free fast path's mutation of the thread's cache, so that a
/// world stop never observes it half done.
class AllocRegion {
public:
    explicit AllocRegion(ThreadCacheSlot& slot) : slot_(slot) {
        slot_.in_alloc_region = 1;
        std::atomic_signal_fence(std::memory_order_seq_cst);
    }
    ~AllocRegion() {
        std::atomic_signal_fence(std::memory_order_seq_cst);
        slot_.in_alloc_region = 0;
        std::atomic_signal_fence(std::memory_order_seq_cst);
        if (slot_.suspend_pending != 0) [[unlikely]] suspend_pending_thread();
    }
    AllocRegion(const AllocRegion&) = delete;
    AllocRegion& operator=(const AllocRegion&) = delete;

private:
    ThreadCacheSlot& slot_;
};

/// Links a thread to one heap's cache, so that a thread exit returns the cache
/// and a heap destruction forgets the thread. Owned by the thread; guarded by
/// lifecycle_mutex().
struct ThreadRecord;
struct CacheBinding {
    Heap* heap;  // nullptr once the heap is gone
    ThreadCache* cache;  // the default partition's; heads the chain of ThreadCache::thread_next
    ThreadRecord* record;  // the collector's registration of this thread (gc/threads.hpp)
    CacheBinding* next;
    // The cache the thread allocates from now: `cache`, or a partition's
    // inside a PartitionScope. The TLS slot is reloaded from it.
    ThreadCache* current = nullptr;
};

/// Serialises thread exit against heap destruction. Process-wide because a
/// thread's bindings outlive any one heap; it guards no heap state.
std::mutex& lifecycle_mutex();

/// Records that the calling thread uses `heap` (binding->cache is filled in
/// by the caller) and arranges for heap.release_thread_cache_locked() at
/// thread exit. Caller holds lifecycle_mutex(). Throws std::bad_alloc.
CacheBinding* bind_current_thread_locked(Heap& heap);

/// Removes and deletes one of the calling thread's bindings. Caller holds lifecycle_mutex().
void unbind_current_thread_locked(CacheBinding* binding);

/// The calling thread's binding to `heap`, or nullptr. Caller holds lifecycle_mutex().
CacheBinding* find_current_thread_binding_locked(const Heap& heap);

}  // namespace gcheap::detail
