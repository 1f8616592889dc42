// The allocation fast path (Go's mallocgc fast cases, nextFreeFast).
//
// Everything here runs without a lock and writes only to the calling thread's
// cache and the spans it holds, inside an allocation region (gc/threads.hpp)
// so that a world stop never sees that state half updated. Anything else — an exhausted span, a first
// allocation on this thread, a large object — goes to a slow path in
// allocator.cpp. Statistics are folded in on those slow paths, never here.
#pragma once

#include "runtime/heap.hpp"

#include <cstring>

namespace gcheap::detail {

// Zeroes a reused slot and returns it. The common small classes get a
// constant-size memset, which compiles to a few stores instead of a call;
// the others end in a tail call to memset.
inline void* zero_slot(void* p, std::size_t size) {
    switch (size) {
        case 8: std::memset(p, 0, 8); return p;
        case 16: std::memset(p, 0, 16); return p;
        case 24: std::memset(p, 0, 24); return p;
        case 32: std::memset(p, 0, 32); return p;
        case 48: std::memset(p, 0, 48); return p;
        case 64: std::memset(p, 0, 64); return p;
        default: return std::memset(p, 0, size);
    }
}

inline ThreadCache* Heap::current_cache() {
    const ThreadCacheSlot& slot = tls_cache_slot;
    return slot.heap_id == fast_id_.load(std::memory_order_relaxed) ? slot.cache : bound_cache_slow();
}

// Every exit from the fast path that needs more work is a tail call, so that
// the fast path itself saves no registers and builds no frame.
inline void* Heap::alloc(std::size_t size, bool noscan) {
    const ThreadCacheSlot& slot = tls_cache_slot;
    if (slot.heap_id != fast_id_.load(std::memory_order_relaxed)) [[unlikely]] return alloc_unbound(size, noscan);
    return alloc_with(slot.cache, size, noscan);
}

inline void* Heap::alloc_with(ThreadCache* cache, std::size_t size, bool noscan) {
    if (size - 1 < kMaxSmallSize) {  // 1..32768; size 0 wraps around
        if (noscan && size < kTinySize) return alloc_tiny(cache, size);
        return alloc_small(cache, span_class(size_to_class(size), noscan));
    }
    return size == 0 ? alloc_zero_size() : alloc_large(size, noscan);
}

// The allocation region (thread_cache.hpp) covers only the update of the
// cached span. A reused slot is zeroed after it: the slot already belongs to
// this thread, and a world stop in between finds it through the register or
// stack word that holds `p`, which at worst retains its stale referents for
// one cycle, as any conservative root can.
inline void* Heap::alloc_small(ThreadCache* cache, std::size_t spc) {
    ThreadCacheSlot& slot = tls_cache_slot;
    slot.in_alloc_region = 1;
    std::atomic_signal_fence(std::memory_order_seq_cst);
    Span* span = cache->spans[spc];
    void* p = span->next_free_fast();
    const bool needzero = span->needzero;
    const std::size_t size = span->elem_size;
    std::atomic_signal_fence(std::memory_order_seq_cst);
    slot.in_alloc_region = 0;
    std::atomic_signal_fence(std::memory_order_seq_cst);
    if ((p == nullptr) | (slot.suspend_pending != 0)) [[unlikely]] {
        return alloc_small_after_region(p, needzero ? size : 0, cache, spc);
    }
    return needzero ? zero_slot(p, size) : p;
}

// Go's tiny allocator: pointer-free objects under 16 bytes share a 16-byte
// block, aligned to the largest of 8, 4, 2 dividing their size.
inline void* Heap::alloc_tiny(ThreadCache* cache, std::size_t size) {
    ThreadCacheSlot& slot = tls_cache_slot;
    void* p = nullptr;
    slot.in_alloc_region = 1;
    std::atomic_signal_fence(std::memory_order_seq_cst);
    std::size_t offset = cache->tiny_offset;
    if (size % 8 == 0) offset = (offset + 7) & ~std::size_t{7};
    else if (size % 4 == 0) offset = (offset + 3) & ~std::size_t{3};
    else if (size % 2 == 0) offset = (offset + 1) & ~std::size_t{1};
    if (offset + size <= kTinySize && cache->tiny != 0) {
        cache->tiny_offset = offset + size;
        cache->tiny_allocs.store(cache->tiny_allocs.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
        p = reinterpret_cast<void*>(cache->tiny + offset);
    }
    std::atomic_signal_fence(std::memory_order_seq_cst);
    slot.in_alloc_region = 0;
    std::atomic_signal_fence(std::memory_order_seq_cst);
    if ((p == nullptr) | (slot.suspend_pending != 0)) [[unlikely]] return alloc_tiny_after_region(p, cache, size);
    return p;
}

}  // namespace gcheap::detail
