// Heap: owns every component of one garbage-collected heap. There are no
// hidden globals in the core: tests build fresh heaps, and the process-wide
// default heap (default_heap()) is one instance of this class.
//
// Components and who calls whom (docs/design.md has the full picture):
//
//   alloc() fast path (allocator.hpp)  -> ThreadCache (no lock)
//     slow path (allocator.cpp)        -> Central -> PageHeap -> ArenaIndex, OsMemory
//   read_mem_stats() (mem_stats.cpp)   -> every lock, in lock order
//
// Lock order, outermost first:
//   lifecycle_mutex -> gate_ -> caches_mu_ -> Central::mutex -> PageHeap::mutex
// Slow paths pass gate_ shared (gate.hpp); whole-heap readers (stats,
// verification) close it exclusively through AllocatorLock.
#pragma once

#include "runtime/arena.hpp"
#include "runtime/central.hpp"
#include "runtime/debug.hpp"
#include "runtime/fixalloc.hpp"
#include "runtime/gate.hpp"
#include "runtime/os_memory.hpp"
#include "runtime/page_heap.hpp"
#include "runtime/partition.hpp"
#include "runtime/profiler.hpp"
#include "runtime/size_classes.hpp"
#include "runtime/span.hpp"
#include "runtime/sync.hpp"
#include "runtime/thread_cache.hpp"

#include <gcheap/fragmentation.hpp>
#include <gcheap/mem_stats.hpp>
#include <gcheap/options.hpp>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string_view>
#include <vector>

namespace gcheap::detail {

/// The largest request gcheap accepts; anything larger throws std::bad_alloc
/// before any arithmetic can overflow.
inline constexpr std::size_t kMaxAllocSize = std::size_t{1} << 46;

/// The state of the page holding an address: the page-level view of Go's
/// span states (free pages have no span descriptor here; see span.hpp).
enum class PageState : std::uint8_t { kOutside, kInUse, kFree, kReleased };

/// What a conservative lookup finds at an address.
struct ObjectRef {
    Span* span = nullptr;
    std::uint32_t index = 0;
    std::uintptr_t base = 0;
};

/// A slow recount of the heap by walking every span, for cross-checking the
/// counters (Go's ReadMemStatsSlow).
struct SlowCounts {
    std::uint64_t alloc_bytes = 0;   // sum over in-use spans of allocated slots * slot size
    std::uint64_t objects = 0;       // allocated slots (tiny blocks count once)
    std::uint64_t inuse_bytes = 0;   // pages of in-use spans
    std::uint64_t spans = 0;
    std::array<std::uint64_t, kNumSizeClasses> live_by_class{};  // allocated slots per size class
};

/// What relocation needs to know about an object (relocation.cpp).
struct ObjectInfo {
    std::uintptr_t base = 0;       // start of the slot (of the tiny block, for a tiny object)
    std::size_t size = 0;          // slot size, or npages * kPageSize for a large object
    std::size_t requested = 0;     // large objects: the bytes asked for
    std::uint8_t size_class = 0;   // 0 for large objects
    bool noscan = false;
    std::uint32_t span_live = 0;   // allocated slots of the span, as of the last sweep
    std::uint32_t span_slots = 0;
};

class CachedSpanCounts;
struct HeapMapSnapshot;
class Collector;
class Scavenger;

/// The first of Go's MemStats identities that `stats` breaks, or nullptr.
const char* mem_stats_violation(const MemStats& stats);

class Heap {
public:
    explicit Heap(const HeapOptions& options = HeapOptions{});
    Heap(const Heap&) = delete;
    Heap& operator=(const Heap&) = delete;
    /// Destroys the heap and unmaps its memory. No thread may use it any more.
    ~Heap();

    /// Zeroed memory for `size` bytes; scanned unless `noscan`. Throws std::bad_alloc.
    inline void* alloc(std::size_t size, bool noscan);
    /// As alloc(), aligned to `alignment` (a power of two, at most kPageSize).
    void* alloc_aligned(std::size_t size, std::size_t alignment, bool noscan);

    MemStats read_mem_stats();
    SlowCounts count_slow();
    /// Checks every structure's invariants; nullptr or the first violation.
    const char* verify();
    /// GCHEAP_DEBUG=verify, with the allocator lock held and the world
    /// stopped: verify(), the MemStats identities, and the counters against
    /// a walk of every span. False with a report (lines ending in '\n') on a violation.
    bool verify_stopped(char* report, std::size_t size);

    /// The allocated object containing `addr` (interior pointers included);
    /// false for addresses outside the heap, in free pages or in free slots.
    bool find_object(std::uintptr_t addr, ObjectRef& out) const;

    /// Per size class occupancy and waste, with the MemStats read under the
    /// same lock, so that HeapInuse - HeapAlloc == wasted bytes (fragmentation.cpp).
    FragmentationReport fragmentation_report();
    /// Every committed page by state, with the MemStats read under the same lock (heap_map.cpp).
    HeapMapSnapshot heap_map_snapshot();
    /// The object containing `addr` and its span's occupancy; lock-free, for
    /// a pointer the caller holds (relocation.cpp). False outside the heap.
    bool object_info(const void* addr, ObjectInfo& out) const;
    /// A copy of `object` in a fresh slot of the same span class (relocation.cpp).
    void* relocate(const void* object, std::size_t type_size);
    /// gcheap::is_sparse on this heap (relocation.cpp).
    bool is_sparse(const void* object, double threshold) const;

    /// In use, free (resident), released, or outside this heap's committed memory.
    PageState page_state(std::uintptr_t addr);

    /// Releases every resident free page to the OS; returns bytes released.
    std::size_t release_free_pages();

    std::uint64_t id() const { return id_; }
    const ArenaIndex& arena_index() const { return arena_index_; }
    OsMemory& os_memory() { return os_; }

    /// GCHEAP_DEBUG modes (debug.hpp); set_debug() may change them at any time.
    const DebugModes& debug() const { return debug_; }
    /// Returns the previous modes.
    DebugOptions set_debug(const DebugOptions& options);

    /// The sampling heap profiler (profiler.hpp).
    Profiler& profiler() { return profiler_; }
    /// gcheap::set_mem_profile_rate on this heap: returns the previous rate.
    int set_mem_profile_rate(int rate);

    Collector& collector() { return *collector_; }
    Scavenger& scavenger() { return *scavenger_; }
    /// Sys - HeapSys: metadata mapped outside the heap arenas.
    std::uint64_t non_heap_sys_bytes();

    /// Registers the calling thread so that its stack and registers are
    /// scanned (allocation registers a thread automatically).
    void register_current_thread();
    /// Undoes registration; throws std::logic_error if the thread is not registered.
    void unregister_current_thread();
    bool is_current_thread_registered();

    /// Called at thread exit, with lifecycle_mutex() held: returns the
    /// thread's caches and removes its registration.
    void release_thread_locked(CacheBinding* binding);

    // Partitions (partition.cpp; invariants in partition.hpp).
    /// A new partition named `name`; throws std::length_error when
    /// kMaxPartitions are live, std::bad_alloc.
    PartitionState* create_partition(std::string_view name);
    /// Gives the partition's spans to the default partition and frees its
    /// slot. Fatal while a scope uses it.
    void destroy_partition(PartitionState* partition);
    /// Points the calling thread's allocations at `partition`; returns the
    /// cache to restore with leave_partition().
    ThreadCache* enter_partition(PartitionState& partition);
    void leave_partition(PartitionState& partition, ThreadCache* previous);
    /// Per partition spans, HeapInuse and HeapAlloc shares, read with `stats`
    /// under the same lock (live partitions only, the default one first).
    /// With `slots`, also each entry's slot index.
    std::vector<PartitionFragmentation> partition_breakdown_locked(const CachedSpanCounts& cached,
                                                                   std::vector<std::uint8_t>* slots = nullptr);
    /// One partition's entry of the breakdown, read under the allocator lock.
    PartitionFragmentation partition_stats(const PartitionState& partition);
    std::size_t partition_slots() const { return partition_slots_.load(std::memory_order_acquire); }
    PartitionState& partition_at(std::size_t slot) const { return *partitions_[slot]; }
    /// f(Central&) for every central list of every partition slot.
    template <class F>
    void for_each_central(F&& f) {
        const std::size_t slots = partition_slots();
        for (std::size_t i = 0; i < slots; ++i) {
            for (Central& central : partitions_[i]->centrals) f(central);
        }
    }

private:
    friend class Collector;
    friend class Scavenger;
    friend class Sweeper;
    class AllocatorLock;

    inline void* alloc_with(ThreadCache* cache, std::size_t size, bool noscan);
    inline void* alloc_small(ThreadCache* cache, std::size_t spc);
    inline void* alloc_tiny(ThreadCache* cache, std::size_t size);
    /// alloc() for a thread whose slot does not hold this heap's cache under
    /// fast_id_: binds it (bound_cache_slow()), then allocates.
    void* alloc_unbound(std::size_t size, bool noscan);
    /// The fast paths' exits after their allocation region: parks the thread
    /// for a pending world stop, then takes the slow path if `p` is null,
    /// or zeroes `zero_bytes` at `p`.
    void* alloc_small_after_region(void* p, std::size_t zero_bytes, ThreadCache* cache, std::size_t spc);
    void* alloc_tiny_after_region(void* p, ThreadCache* cache, std::size_t size);
    ThreadCache* cache_for_current_thread();
    /// This thread's cache for this heap: the TLS slot on the fast path,
    /// bound_cache_slow() otherwise (allocator.hpp).
    inline ThreadCache* current_cache();
    /// The fast path's fallback when the thread's slot does not hold this
    /// heap's cache under fast_id_: binds the thread, and counts the
    /// allocation for torture mode.
    ThreadCache* bound_cache_slow();
    CacheBinding* bind_current_thread(bool explicit_registration);
    Span* acquire_span(ThreadCache* cache, std::size_t spc);
    ThreadCache* partition_cache_slow(CacheBinding* binding, PartitionState& partition);
    /// The central list that takes `span` back: its partition's, of its class.
    Central& central_of(const Span* span) { return partitions_[span->partition]->centrals[span->span_class]; }
    Span* alloc_span_reclaiming(std::size_t npages, std::size_t spc, bool noscan, DirtyPages& dirty);
    void maybe_collect();
    void* alloc_small_slow(ThreadCache* cache, std::size_t spc);
    void* alloc_tiny_slow(ThreadCache* cache, std::size_t size);
    void* alloc_large(std::size_t size, bool noscan);
    void* alloc_zero_size() { return zero_base_; }
    Span* refill_cache_locked(ThreadCache* cache, std::size_t spc);
    void flush_cache_locked(ThreadCache* cache);
    void flush_all_caches_stopped();
    void detach_threads();
    /// MemStats from the counters; the caller has closed the gate. With
    /// `cached`, also records each cached span's count as read.
    void compute_stats_locked(MemStats& stats, CachedSpanCounts* cached = nullptr);
    SlowCounts count_slow_locked() const;
    const char* verify_locked();

    const std::uint64_t id_;
    // The id the fast path compares the thread's slot with: id_, or
    // kNoFastPath while a debug mode must see every allocation, which sends
    // each one through bound_cache_slow() at no cost to the normal fast path.
    static constexpr std::uint64_t kNoFastPath = ~std::uint64_t{0};
    std::atomic<std::uint64_t> fast_id_;
    DebugModes debug_;
    std::mutex debug_mu_;  // serialises set_debug()
    std::atomic<std::uint64_t> torture_allocs_{0};
    OsMemory os_;
    ArenaIndex arena_index_;
    Profiler profiler_;
    PageHeap pages_;
    // Slot 0 is the default partition. Slots are allocated in order and live
    // as long as the heap (P4), so readers that load partition_slots_ may walk
    // them without a lock; a slot's contents are guarded as partition.hpp says.
    std::array<std::unique_ptr<PartitionState>, kMaxPartitions> partitions_;
    std::atomic<std::size_t> partition_slots_{0};
    std::uint64_t next_partition_id_ = kDefaultPartitionId + 1;  // guarded by caches_mu_
    Span empty_span_;  // (T1): shared by every cache slot without a span

    AllocatorGate gate_;
    std::mutex caches_mu_;
    ThreadCache* caches_ = nullptr;          // registry, guarded by caches_mu_
    FixAlloc<ThreadCache> cache_pool_;       // guarded by caches_mu_
    std::uint64_t tiny_allocs_folded_ = 0;   // guarded by caches_mu_

    // Bytes the pacer counts as allocated since the last mark: marked bytes,
    // plus the whole free capacity of spans handed to caches, plus large objects.
    std::atomic<std::uint64_t> heap_live_{0};

    // Large objects, guarded by the page heap lock.
    SpanList large_spans_;
    SpanList large_unswept_;
    std::uint64_t large_alloc_bytes_ = 0;
    std::uint64_t large_alloc_count_ = 0;
    std::uint64_t large_free_bytes_ = 0;
    std::uint64_t large_free_count_ = 0;

    alignas(16) unsigned char zero_base_[16] = {};

    // Last: they run threads that use everything above, and stop them first.
    std::unique_ptr<Collector> collector_;
    std::unique_ptr<Scavenger> scavenger_;
};

// Closes the allocator gate and holds the page heap lock: nothing but
// fast-path allocations on already-cached spans can change while it lives,
// and the thread-cache registry, central lists and page heap are stable.
class Heap::AllocatorLock {
public:
    explicit AllocatorLock(Heap& heap) : heap_(heap) {
        heap_.gate_.lock();
        heap_.pages_.mutex().lock();
    }
    ~AllocatorLock() {
        heap_.pages_.mutex().unlock();
        heap_.gate_.unlock();
    }
    AllocatorLock(const AllocatorLock&) = delete;
    AllocatorLock& operator=(const AllocatorLock&) = delete;

private:
    Heap& heap_;
};

/// Passes the allocator gate shared for the duration of a slow path.
class SharedGate {
public:
    explicit SharedGate(AllocatorGate& gate) : gate_(gate) { gate_.lock_shared(); }
    ~SharedGate() { gate_.unlock_shared(); }
    SharedGate(const SharedGate&) = delete;
    SharedGate& operator=(const SharedGate&) = delete;

private:
    AllocatorGate& gate_;
};

/// The process-wide heap behind the public gcheap:: functions. Created on
/// first use; never destroyed, so that it outlives every thread and static.
/// Inline, so that gcheap::alloc() costs one call and one load on top of the
/// fast path.
Heap& create_default_heap();
inline std::atomic<Heap*> g_default_heap{nullptr};
inline Heap& default_heap() {
    Heap* heap = g_default_heap.load(std::memory_order_acquire);
    return heap != nullptr ? *heap : create_default_heap();
}

}  // namespace gcheap::detail

#include "runtime/allocator.hpp"
