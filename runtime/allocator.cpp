// Allocation slow paths, a ladder of named steps (Go's mallocgc slow cases,
// nextFree, mcache.refill, largeAlloc):
//
//   small: current span's next free index -> return span to central, take a
//          partial span -> fresh span from the page heap -> grow the heap
//          -> std::bad_alloc, with the heap unchanged and usable.
//   tiny:  a fresh 16-byte block from the noscan class-2 span, kept as the
//          thread's block if it leaves more room than the old one.
//   large: a page run of its own from the page heap, zeroed outside the lock
//          where its pages held stale bytes.
#include "runtime/heap.hpp"

#include <new>
#include <stdexcept>

namespace gcheap::detail {

[[gnu::noinline]] void* Heap::alloc_small_slow(ThreadCache* cache, std::size_t spc) {
    SharedGate gate(gate_);
    Span* span = cache->spans[spc];
    std::uint32_t index = span->next_free_index();
    if (index == span->nelems) {
        span = refill_cache_locked(cache, spc);
        index = span->next_free_index();
    }
    span->alloc_count.store(span->alloc_count.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    void* p = reinterpret_cast<void*>(span->object_base(index));
    if (span->needzero) std::memset(p, 0, span->elem_size);
    return p;
}

Span* Heap::refill_cache_locked(ThreadCache* cache, std::size_t spc) {
    Span* old = cache->spans[spc];
    cache->spans[spc] = &empty_span_;  // (T1) holds even if we throw below
    if (old != &empty_span_) centrals_[spc].uncache_span(old);
    Span* fresh = centrals_[spc].cache_span(pages_);
    if (fresh == nullptr) throw std::bad_alloc();
    cache->spans[spc] = fresh;
    return fresh;
}

[[gnu::noinline]] void* Heap::alloc_tiny_slow(ThreadCache* cache, std::size_t size) {
    auto* block = static_cast<unsigned char*>(alloc_small(cache, span_class(kTinySizeClass, true)));
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
    DirtyPages dirty;
    Span* span = nullptr;
    {
        SharedGate gate(gate_);
        std::lock_guard<std::mutex> lock(pages_.mutex());
        span = pages_.alloc_span_locked(npages, span_class(0, noscan), noscan, dirty);
        if (span == nullptr) throw std::bad_alloc();
        span->free_index = 1;
        span->alloc_cache = 0;
        span->alloc_count.store(1, std::memory_order_relaxed);
        span->home = SpanHome::kLarge;
        large_spans_.push_front(span);
        large_alloc_bytes_ += span->elem_size;
        ++large_alloc_count_;
    }
    dirty.zero(span->base, span->elem_size);
    return reinterpret_cast<void*>(span->base);
}

void* Heap::alloc_aligned(std::size_t size, std::size_t alignment, bool noscan) {
    if (alignment == 0 || (alignment & (alignment - 1)) != 0) {
        throw std::invalid_argument("gcheap: alignment must be a power of two");
    }
    if (alignment > kPageSize) throw std::bad_alloc();  // documented limit
    if (size == 0) return alloc_zero_size();
    if (size <= kMaxSmallSize) {
        // Objects of a class whose size is a multiple of `alignment` are
        // aligned to it, because spans start on page boundaries.
        std::size_t size_class = size_to_class(size);
        while (size_class < kNumSizeClasses && kClassSize[size_class] % alignment != 0) ++size_class;
        if (size_class < kNumSizeClasses) {
            const ThreadCacheSlot slot = tls_cache_slot;
            ThreadCache* cache = slot.heap_id == id_ ? slot.cache : cache_for_current_thread();
            return alloc_small(cache, span_class(size_class, noscan));
        }
    }
    return alloc_large(std::max(size, kMaxSmallSize + 1), noscan);  // page-aligned
}

}  // namespace gcheap::detail
