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

// Zeroes a reused slot. The common small classes get a constant-size memset,
// which compiles to a few stores instead of a call.
inline void zero_slot(void* p, std::size_t size) {
    switch (size) {
        case 8: std::memset(p, 0, 8); break;
        case 16: std::memset(p, 0, 16); break;
        case 24: std::memset(p, 0, 24); break;
        case 32: std::memset(p, 0, 32); break;
        case 48: std::memset(p, 0, 48); break;
        case 64: std::memset(p, 0, 64); break;
        default: std::memset(p, 0, size); break;
    }
}

inline void* Heap::alloc(std::size_t size, bool noscan) {
    const ThreadCacheSlot& slot = tls_cache_slot;
    ThreadCache* cache = slot.heap_id == fast_id_.load(std::memory_order_relaxed) ? slot.cache : bound_cache_slow();
    if (size - 1 < kMaxSmallSize) {  // 1..32768; size 0 wraps around
        if (noscan && size < kTinySize) return alloc_tiny(cache, size);
        return alloc_small(cache, span_class(size_to_class(size), noscan));
    }
    return size == 0 ? alloc_zero_size() : alloc_large(size, noscan);
}

inline void* Heap::alloc_small(ThreadCache* cache, std::size_t spc) {
    void* p;
    {
        AllocRegion region(tls_cache_slot);  // a world stop waits for its end
        Span* span = cache->spans[spc];
        p = span->next_free_fast();
        if (p != nullptr && span->needzero) [[unlikely]] zero_slot(p, span->elem_size);
    }
    if (p == nullptr) [[unlikely]] return alloc_small_slow(cache, spc);
    return p;
}

// Go's tiny allocator: pointer-free objects under 16 bytes share a 16-byte
// block, aligned to the largest of 8, 4, 2 dividing their size.
inline void* Heap::alloc_tiny(ThreadCache* cache, std::size_t size) {
    void* p = nullptr;
    {
        AllocRegion region(tls_cache_slot);
        std::size_t offset = cache->tiny_offset;
        if (size % 8 == 0) offset = (offset + 7) & ~std::size_t{7};
        else if (size % 4 == 0) offset = (offset + 3) & ~std::size_t{3};
        else if (size % 2 == 0) offset = (offset + 1) & ~std::size_t{1};
        if (offset + size <= kTinySize && cache->tiny != 0) {
            cache->tiny_offset = offset + size;
            cache->tiny_allocs.store(cache->tiny_allocs.load(std::memory_order_relaxed) + 1,
                                     std::memory_order_relaxed);
            p = reinterpret_cast<void*>(cache->tiny + offset);
        }
    }
    if (p == nullptr) [[unlikely]] return alloc_tiny_slow(cache, size);
    return p;
}

}  // namespace gcheap::detail
