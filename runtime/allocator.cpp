// Allocation slow paths, a ladder of named steps (Go's mallocgc slow cases,
// nextFree, mcache.refill, mcentral.cacheSpan, largeAlloc):
//
//   small: pacer check -> the cached span's next free index -> return the span
//          to its central list -> a partial span -> sweep unswept spans of the
//          class -> a fresh span from the page heap (after reclaiming pages by
//          sweeping) -> grow the heap -> collect once and retry
//          -> std::bad_alloc, with the heap unchanged and usable.
//   tiny:  a fresh 16-byte block from the noscan class-2 span, kept as the
//          thread's block if it leaves more room than the old one.
//   large: pacer check -> a page run of its own (same reclaim/grow/collect
//          ladder), zeroed outside the lock where its pages held stale bytes.
//
// Every step that touches shared state runs with the allocator gate passed
// shared (gate.hpp); collections run with it released.
#include "gc/collector.hpp"
#include "runtime/heap.hpp"

#include <gcheap/gcheap.hpp>

#include <algorithm>
#include <cstring>
#include <new>
#include <stdexcept>

namespace gcheap::detail {

namespace {

// Internal paths that allocate through alloc_small / alloc_large name their
// caller as the start of a sampled object's stack (Profiler::record).
class SampleEntry {
public:
    // The outermost entry wins: it is the frame the caller of gcheap sees.
    SampleEntry(ThreadCache* cache, const void* entry) : cache_(cache), outer_(cache->sample_entry) {
        if (outer_ == nullptr) cache_->sample_entry = entry;
    }
    ~SampleEntry() { cache_->sample_entry = outer_; }
    SampleEntry(const SampleEntry&) = delete;
    SampleEntry& operator=(const SampleEntry&) = delete;

private:
    ThreadCache* cache_;
    const void* outer_;
};

}  // namespace

void Heap::maybe_collect() {
    if (collector_->should_trigger(heap_live_.load(std::memory_order_relaxed))) collector_->collect_triggered();
}

Span* Heap::alloc_span_reclaiming(std::size_t npages, std::size_t spc, bool noscan, DirtyPages& dirty) {
    // While last cycle's sweep is unfinished, free pages by sweeping before
    // growing the heap (Go's page reclaimer).
    collector_->sweeper().reclaim(npages);
    std::lock_guard<SpinningMutex> lock(pages_.mutex());
    // Near the memory limit, release free pages before taking more (Go's
    // allocation-time scavenging): the run may come from released pages.
    const std::int64_t limit = collector_->pacer().memory_limit();
    if (limit != Pacer::kNoLimit) {
        const std::uint64_t mapped = pages_.heap_inuse_locked() + pages_.heap_free_locked() +
                                     pages_.span_sys_bytes_locked() + pages_.other_sys_bytes_locked() +
                                     arena_index_.sys_bytes() + npages * kPageSize;
        const auto cap = static_cast<std::uint64_t>(limit);
        if (mapped > cap) pages_.release_locked(mapped - cap);
    }
    return pages_.alloc_span_locked(npages, spc, noscan, dirty);
}

Span* Heap::acquire_span(ThreadCache* cache, std::size_t spc) {
    Central& central = cache->centrals[spc];  // the cache's partition's
    Span* span = central.pop_partial();
    if (span == nullptr) span = collector_->sweeper().sweep_for_allocation(central);
    if (span == nullptr) {
        const std::size_t size_class = span_class_size_class(spc);
        DirtyPages dirty;  // small spans zero lazily through needzero
        span = alloc_span_reclaiming(kClassPages[size_class], spc, span_class_noscan(spc), dirty);
        if (span == nullptr) return nullptr;
        span->partition = cache->partition;
        // Pages never touched (fresh or released) would fault one by one as
        // the span fills; a small span does fill, so take them in one call.
        if (!dirty.any()) os_.prefault(reinterpret_cast<void*>(span->base), span->npages * kPageSize);
    }
    // An empty span with stale bytes (swept, or a reused page run) is zeroed
    // whole: one streaming memset costs less than a cache miss on each
    // line's first slot, and its slots are then allocated from cache. Not
    // under GCHEAP_DEBUG=clobberfree: its pattern must stay in each freed
    // slot until the slot is handed out again, to expose hidden pointers.
    if (span->needzero && span->alloc_count.load(std::memory_order_relaxed) == 0 && !debug_.clobberfree()) {
        std::memset(reinterpret_cast<void*>(span->base), 0, std::size_t{span->nelems} * span->elem_size);
        span->needzero = false;
    }
    span->home = SpanHome::kThreadCache;
    span->alloc_count_at_cache = span->alloc_count.load(std::memory_order_relaxed);
    return span;
}

Span* Heap::refill_cache_locked(ThreadCache* cache, std::size_t spc) {
    Span* old = cache->spans[spc];
    cache->spans[spc] = &empty_span_;  // (T1) holds whatever happens below
    // The pacer counts a cached span's free slots as allocated. One atomic
    // update per refill, and none for the usual full span given back:
    // heap_live_ is shared by every allocating thread, and each update
    // takes its cache line from the thread that wrote it last.
    std::int64_t live_delta = 0;
    if (old != &empty_span_) {
        Profiler::unplant(*old);
        live_delta -= static_cast<std::int64_t>(std::uint64_t{old->free_slots()} * old->elem_size);
        central_of(old).uncache_span(old);
    }
    Span* fresh = acquire_span(cache, spc);
    if (fresh != nullptr) {
        cache->spans[spc] = fresh;
        live_delta += static_cast<std::int64_t>(std::uint64_t{fresh->free_slots()} * fresh->elem_size);
    }
    if (live_delta != 0) heap_live_.fetch_add(static_cast<std::uint64_t>(live_delta), std::memory_order_relaxed);
    return fresh;
}

[[gnu::noinline]] void* Heap::alloc_unbound(std::size_t size, bool noscan) {
    ThreadCache* cache = bound_cache_slow();
    // A sampled object's stack starts at our caller, not in this frame.
    SampleEntry entry(cache, __builtin_return_address(0));
    return alloc_with(cache, size, noscan);
}

[[gnu::noinline]] void* Heap::alloc_small_after_region(void* p, std::size_t zero_bytes, ThreadCache* cache,
                                                         std::size_t spc) {
    // A world stop may flush the cache here: nothing below reads the span.
    if (tls_cache_slot.suspend_pending != 0) suspend_pending_thread();
    if (p == nullptr) return alloc_small_slow(cache, spc);
    return zero_bytes != 0 ? zero_slot(p, zero_bytes) : p;
}

[[gnu::noinline]] void* Heap::alloc_tiny_after_region(void* p, ThreadCache* cache, std::size_t size) {
    if (tls_cache_slot.suspend_pending != 0) suspend_pending_thread();
    return p != nullptr ? p : alloc_tiny_slow(cache, size);
}

[[gnu::noinline]] void* Heap::alloc_small_slow(ThreadCache* cache, std::size_t spc) {
    // Where a sampled object's stack starts: our caller, or the caller of
    // an internal path that set sample_entry (alloc_tiny_slow, alloc_aligned).
    const void* entry = cache->sample_entry != nullptr ? cache->sample_entry : __builtin_return_address(0);
    // The rest of the cached span's bitmap belongs to this thread alone: no gate.
    {
        void* p = nullptr;
        Span* sampled = nullptr;
        {
            AllocRegion region(tls_cache_slot);
            Span* span = cache->spans[spc];
            const std::uint32_t planted = Profiler::unplant(*span);
            const std::uint32_t index = span->next_free_index();
            if (index != span->nelems) {
                span->alloc_count.store(span->alloc_count.load(std::memory_order_relaxed) + 1,
                                        std::memory_order_relaxed);
                p = reinterpret_cast<void*>(span->object_base(index));
                if (span->needzero) zero_slot(p, span->elem_size);
                if (profiler_.after_slow_alloc(cache, *span, spc, index, planted)) sampled = span;
            }
        }
        if (sampled != nullptr) [[unlikely]] {
            profiler_.record(reinterpret_cast<std::uintptr_t>(p), *sampled, sampled->elem_size, entry);
        }
        if (p != nullptr) return p;
    }
    maybe_collect();
    for (int attempt = 0;; ++attempt) {
        void* p = nullptr;
        Span* sampled = nullptr;
        std::size_t zero_bytes = 0;
        {
            // The gate keeps world stops out while the profiler may plant a
            // sample point in the span, as it keeps them out of the refill.
            SharedGate gate(gate_);
            Span* span = cache->spans[spc];
            std::uint32_t planted = Profiler::unplant(*span);
            std::uint32_t index = span->next_free_index();  // a collection may have flushed the cache
            if (index == span->nelems) {
                span = refill_cache_locked(cache, spc);
                if (span != nullptr) {
                    planted = Span::kNoSamplePoint;
                    index = span->next_free_index();
                }
            }
            if (span != nullptr) {
                span->alloc_count.store(span->alloc_count.load(std::memory_order_relaxed) + 1,
                                        std::memory_order_relaxed);
                p = reinterpret_cast<void*>(span->object_base(index));
                if (span->needzero) zero_bytes = span->elem_size;
                if (profiler_.after_slow_alloc(cache, *span, spc, index, planted)) sampled = span;
            }
        }
        if (p != nullptr) {
            if (zero_bytes != 0) zero_slot(p, zero_bytes);
            if (sampled != nullptr) [[unlikely]] {
                profiler_.record(reinterpret_cast<std::uintptr_t>(p), *sampled, sampled->elem_size, entry);
            }
            return p;
        }
        // The OS refused memory: free some and retry once, unless collection is off.
        if (attempt == 1 || !collector_->collects_automatically()) throw std::bad_alloc();
        collector_->collect_for_memory();
    }
}

[[gnu::noinline]] void* Heap::alloc_tiny_slow(ThreadCache* cache, std::size_t size) {
    // A sampled block's stack starts at our caller (Go samples a tiny block
    // when it is taken, for the object that takes it).
    unsigned char* block;
    {
        SampleEntry entry(cache, __builtin_return_address(0));
        block = static_cast<unsigned char*>(alloc_small(cache, span_class(kTinySizeClass, true)));
    }
    AllocRegion region(tls_cache_slot);
    // Keep whichever block has more room left: the new one after this object,
    // or the old one.
    if (cache->tiny == 0 || size < cache->tiny_offset) {
        cache->tiny = reinterpret_cast<std::uintptr_t>(block);
        cache->tiny_offset = size;
    }
    return block;
}

[[gnu::noinline]] void* Heap::alloc_large(std::size_t size, bool noscan) {
    if (size > kMaxAllocSize) throw std::bad_alloc();
    const std::size_t npages = (size + kPageSize - 1) / kPageSize;
    maybe_collect();
    for (int attempt = 0;; ++attempt) {
        DirtyPages dirty;
        Span* span = nullptr;
        // The object's address must be in this frame before the gate opens: a
        // collection may run before we return, and a conservative scan finds
        // objects by their addresses, not by their span descriptors.
        void* object = nullptr;
        {
            SharedGate gate(gate_);
            span = alloc_span_reclaiming(npages, span_class(0, noscan), noscan, dirty);
            if (span != nullptr) {
                std::lock_guard<SpinningMutex> lock(pages_.mutex());
                span->free_index.store(1, std::memory_order_relaxed);
                span->alloc_cache = 0;
                span->alloc_count.store(1, std::memory_order_relaxed);
                span->home = SpanHome::kLarge;
                span->requested_size = size;
                // Large objects count in the breakdown of the partition in scope.
                if (tls_cache_slot.heap_id == id_ && tls_cache_slot.cache != nullptr) {
                    span->partition = tls_cache_slot.cache->partition;
                }
                large_spans_.push_front(span);
                large_alloc_bytes_ += span->elem_size;
                ++large_alloc_count_;
                heap_live_.fetch_add(span->elem_size, std::memory_order_relaxed);
                object = reinterpret_cast<void*>(span->base);
            }
        }
        if (object != nullptr) {
            // Zeroing happens outside every lock. A collection before it ends
            // may scan stale bytes: that can retain garbage for a cycle, never
            // lose an object.
            dirty.zero(reinterpret_cast<std::uintptr_t>(object), span->elem_size);
            if (profiler_.rate() != 0) [[unlikely]] {
                ThreadCache* cache = tls_cache_slot.heap_id == id_ ? tls_cache_slot.cache : nullptr;
                if (profiler_.sample_large(cache, span->elem_size)) {
                    const void* entry = cache->sample_entry != nullptr ? cache->sample_entry
                                                                       : __builtin_return_address(0);
                    profiler_.record(reinterpret_cast<std::uintptr_t>(object), *span, span->elem_size, entry);
                }
            }
            gcheap::keep_alive(object);
            return object;
        }
        if (attempt == 1 || !collector_->collects_automatically()) throw std::bad_alloc();
        collector_->collect_for_memory();
    }
}

void* Heap::alloc_aligned(std::size_t size, std::size_t alignment, bool noscan) {
    if (alignment == 0 || (alignment & (alignment - 1)) != 0) {
        throw std::invalid_argument("gcheap: alignment must be a power of two");
    }
    if (alignment > kPageSize) throw std::bad_alloc();  // documented limit
    ThreadCache* cache = current_cache();
    if (size == 0) return alloc_zero_size();
    SampleEntry entry(cache, __builtin_return_address(0));
    void* p = nullptr;
    if (size <= kMaxSmallSize) {
        // Objects of a class whose size is a multiple of `alignment` are
        // aligned to it, because spans start on page boundaries.
        std::size_t size_class = size_to_class(size);
        while (size_class < kNumSizeClasses && kClassSize[size_class] % alignment != 0) ++size_class;
        if (size_class < kNumSizeClasses) p = alloc_small(cache, span_class(size_class, noscan));
    }
    if (p == nullptr) p = alloc_large(std::max(size, kMaxSmallSize + 1), noscan);  // page-aligned
    return p;
}

}  // namespace gcheap::detail
