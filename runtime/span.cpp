// Span allocation-state helpers; the invariants are stated in span.hpp.
#include "runtime/span.hpp"

#include <algorithm>
#include <cstring>

namespace gcheap::detail {

void Span::init(std::uintptr_t base_addr, std::size_t pages, std::size_t spc, bool is_noscan) {
    base = base_addr;
    npages = pages;
    span_class = static_cast<std::uint8_t>(spc);
    size_class = static_cast<std::uint8_t>(span_class_size_class(spc));
    noscan = is_noscan;
    partition = 0;
    requested_size = 0;
    if (size_class == 0) {
        elem_size = pages * kPageSize;
        nelems = 1;
        div_magic = 0;
    } else {
        elem_size = kClassSize[size_class];
        nelems = class_objects(size_class);
        div_magic = class_div_magic(size_class);
    }
    limit_addr = base + static_cast<std::uintptr_t>(nelems) * elem_size;
    home = SpanHome::kNone;
    needzero = false;
    free_index.store(0, std::memory_order_relaxed);
    alloc_count.store(0, std::memory_order_relaxed);
    alloc_count_at_cache = 0;
    profiled.store(0, std::memory_order_relaxed);
    sample_base = kNoSamplePoint;
    sample_hold = 0;
    sweepgen.store(0, std::memory_order_relaxed);
    alloc_bits_index = 0;
    std::memset(bits, 0, sizeof bits);
    next = prev = nullptr;
    refill_alloc_cache(0);
    state = SpanState::kInUse;
}

void Span::refill_alloc_cache(std::uint32_t word_start) {
    alloc_cache = ~alloc_bits()[word_start / 64];
}

std::uint32_t Span::next_free_index() {
    std::uint32_t index = free_index.load(std::memory_order_relaxed);
    if (index == nelems) return nelems;
    std::uint64_t cache = alloc_cache;
    unsigned bit = static_cast<unsigned>(std::countr_zero(cache));
    while (bit == 64) {
        // The cached word is exhausted: move to the next 64-slot word.
        index = (index + 64) & ~std::uint32_t{63};
        if (index >= nelems) {
            free_index.store(nelems, std::memory_order_relaxed);
            return nelems;
        }
        refill_alloc_cache(index);
        cache = alloc_cache;
        bit = static_cast<unsigned>(std::countr_zero(cache));
    }
    const std::uint32_t result = index + bit;
    if (result >= nelems) {
        free_index.store(nelems, std::memory_order_relaxed);
        return nelems;
    }
    const std::uint32_t next = result + 1;
    if (next % 64 == 0) {
        if (next != nelems) refill_alloc_cache(next);
        else alloc_cache = 0;
    } else {
        alloc_cache = cache >> (bit + 1);  // bit + 1 < 64 here
    }
    free_index.store(next, std::memory_order_relaxed);
    return result;
}

const char* Span::verify() const {
    if (state != SpanState::kInUse) return "span is not in use";
    const std::uint32_t free_index = this->free_index.load(std::memory_order_relaxed);
    if (free_index > nelems) return "free_index beyond nelems";
    if (nelems == 0 || nelems > kMaxObjectsPerSpan) return "nelems out of range";
    if (limit_addr != base + static_cast<std::uintptr_t>(nelems) * elem_size) return "limit_addr is stale";
    if (limit() > end()) return "objects extend past the span's pages";
    std::uint32_t allocated = 0;
    for (std::uint32_t i = 0; i < nelems; ++i) allocated += is_allocated(i) ? 1 : 0;
    if (allocated != alloc_count.load(std::memory_order_relaxed)) return "alloc_count differs from allocated slots";
    // (S3): within the word of free_index, cached bits mirror the bitmap.
    const std::uint32_t word_end = std::min<std::uint32_t>((free_index / 64 + 1) * 64, nelems);
    std::uint64_t cache = alloc_cache;
    if (sample_base != kNoSamplePoint) {
        if (sample_base < free_index || sample_base >= word_end) return "sample point outside the cached word";
        cache |= sample_hold << (sample_base - free_index);
    }
    if (free_index < nelems) {
        for (std::uint32_t i = free_index; i < word_end; ++i) {
            const bool cached_free = (cache >> (i - free_index)) & 1;
            if (cached_free == alloc_bit(i)) return "alloc_cache disagrees with alloc bits";
        }
    }
    return nullptr;
}

void SpanList::push_front(Span* s) {
    s->prev = nullptr;
    s->next = head_;
    if (head_ != nullptr) head_->prev = s;
    head_ = s;
    ++size_;
}

void SpanList::remove(Span* s) {
    if (s->prev != nullptr) s->prev->next = s->next;
    else head_ = s->next;
    if (s->next != nullptr) s->next->prev = s->prev;
    s->next = s->prev = nullptr;
    --size_;
}

Span* SpanList::pop_front() {
    Span* s = head_;
    if (s != nullptr) remove(s);
    return s;
}

}  // namespace gcheap::detail
