// Span: a run of pages holding objects of one size class, or one large object.
//
// Owns the per-span allocation state, Go's mspan in miniature:
//   - alloc bits: 1 = slot allocated as of the last sweep;
//   - free_index: every slot below it is allocated (or was, before the last sweep);
//   - alloc_cache: the inverted alloc bits of the 64-slot word holding free_index,
//     shifted so that bit 0 is slot free_index; count-trailing-zeros finds the
//     next free slot without touching the bitmap;
//   - mark bits: set by the collector, swapped in as the alloc bits at sweep.
//
// Invariants (verify() checks them):
//   (S1) slot i is allocated  <=>  i < free_index || alloc_bit(i)
//   (S2) alloc_count == number of allocated slots
//   (S3) alloc_cache bit k == !allocated(free_index + k) for free_index+k < nelems
//        within the current 64-slot word
//   (S4) base .. base + npages*kPageSize is mapped by the page map to this span
//        while state == kInUse.
//   With a planted sample point, (S3) holds for alloc_cache | sample_hold << (sample_base - free_index)
//        (profiler.hpp).
//
// Ownership: a span's allocation state belongs to the thread cache holding it;
// when no cache holds it, to its central list's lock. alloc_count is an atomic
// only so that read_mem_stats() may read it while the owner allocates.
#pragma once

#include "runtime/size_classes.hpp"

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>

namespace gcheap::detail {

enum class SpanState : std::uint8_t {
    kDead,   // descriptor is free (in the span pool), describes no pages
    kInUse,  // pages hold objects of this span; the page map points here
};

// Where a span sits, so that a thread exit, a sweep or a stats read knows who owns it.
enum class SpanHome : std::uint8_t { kNone, kThreadCache, kCentralPartial, kCentralFull, kUnswept, kLarge };

inline constexpr std::size_t kBitmapWords = kMaxObjectsPerSpan / 64;

struct Span {
    // Identity (fixed while in use).
    std::uintptr_t base = 0;
    std::size_t npages = 0;
    std::size_t elem_size = 0;  // size-class size, or npages * kPageSize for large objects
    std::size_t requested_size = 0;  // large objects: the bytes asked for (fragmentation reports)
    std::uint32_t nelems = 0;
    std::uintptr_t limit_addr = 0;  // base + nelems * elem_size: read for every candidate pointer
    std::uint32_t div_magic = 0;
    std::uint8_t size_class = 0;
    std::uint8_t span_class = 0;
    std::uint8_t partition = 0;  // index of the partition whose central lists take it back (partition.hpp)
    bool noscan = false;
    SpanState state = SpanState::kDead;
    SpanHome home = SpanHome::kNone;

    // Allocation state (see ownership above).
    bool needzero = false;  // free slots may hold stale bytes and must be zeroed on allocation
    // Atomic only so that find_object() (set_finalizer, conservative tests)
    // may read it while the owner allocates; every access is relaxed, which
    // compiles to plain loads and stores.
    std::atomic<std::uint32_t> free_index{0};
    std::uint64_t alloc_cache = 0;
    std::atomic<std::uint32_t> alloc_count{0};
    std::uint32_t alloc_count_at_cache = 0;  // alloc_count when a thread cache took the span
    // The heap profiler's planted sample point (profiler.hpp, P4): while
    // sample_base != kNoSamplePoint, the free slots of the current word from
    // sample_base on are held here (bit 0 = slot sample_base) instead of in
    // alloc_cache, so that the fast path stops just before the sampled slot.
    static constexpr std::uint32_t kNoSamplePoint = ~std::uint32_t{0};
    std::uint32_t sample_base = kNoSamplePoint;
    std::uint64_t sample_hold = 0;

    // Sampled objects of the heap profiler in this span (profiler.hpp, P2):
    // the sweeper looks for their frees only when it is non-zero.
    std::atomic<std::uint32_t> profiled{0};

    // Collector state.
    std::atomic<std::uint32_t> sweepgen{0};
    std::uint8_t alloc_bits_index = 0;
    std::uint64_t bits[2][kBitmapWords] = {};

    // Links for the span lists of central and page heap.
    Span* next = nullptr;
    Span* prev = nullptr;

    std::uintptr_t limit() const { return limit_addr; }
    std::uintptr_t end() const { return base + npages * kPageSize; }
    bool is_large() const { return size_class == 0; }

    std::uint64_t* alloc_bits() { return bits[alloc_bits_index]; }
    const std::uint64_t* alloc_bits() const { return bits[alloc_bits_index]; }
    std::uint64_t* mark_bits() { return bits[alloc_bits_index ^ 1]; }
    const std::uint64_t* mark_bits() const { return bits[alloc_bits_index ^ 1]; }

    bool alloc_bit(std::uint32_t i) const { return (alloc_bits()[i / 64] >> (i % 64)) & 1; }
    bool is_allocated(std::uint32_t i) const {
        return i < free_index.load(std::memory_order_relaxed) || alloc_bit(i);
    }
    /// is_allocated() for a reader that may race with a sweep of this span
    /// (find_object() on a pointer its caller holds). A sweep makes the mark
    /// bits the alloc bits and then clears the old alloc bits, so a marked
    /// object's bit is set in one array or the other at every instant: the
    /// union of both never misses a live object. It may still report an
    /// object this very sweep is freeing, which only a caller holding a dead
    /// pointer can ask about. Otherwise the answer is exact: after a sweep
    /// the mark bits are clear (W2), and between mark and sweep every marked
    /// slot is also allocated. Relaxed atomic reads; the sweeper clears with
    /// relaxed atomic stores.
    bool is_allocated_while_sweeping(std::uint32_t i) const {
        if (i < free_index.load(std::memory_order_relaxed)) return true;
        const std::uint64_t bit = std::uint64_t{1} << (i % 64);
        const auto word = [&](int which) {
            return std::atomic_ref<const std::uint64_t>(bits[which][i / 64]).load(std::memory_order_relaxed);
        };
        return ((word(0) | word(1)) & bit) != 0;
    }
    std::uint32_t free_slots() const { return nelems - alloc_count.load(std::memory_order_relaxed); }

    /// Index of the object containing `addr`, which must lie in [base, limit()).
    std::uint32_t object_index(std::uintptr_t addr) const {
        if (is_large()) return 0;
        return static_cast<std::uint32_t>((static_cast<std::uint64_t>(addr - base) * div_magic) >> 32);
    }
    std::uintptr_t object_base(std::uint32_t index) const { return base + index * elem_size; }

    /// Go's nextFreeFast: allocates a slot using only alloc_cache, or returns
    /// nullptr when the cache word is exhausted or the span is full.
    void* next_free_fast() {
        const std::uint64_t cache = alloc_cache;
        if (cache == 0) return nullptr;
        const unsigned bit = static_cast<unsigned>(std::countr_zero(cache));
        const std::uint32_t index = free_index.load(std::memory_order_relaxed) + bit;
        if (index >= nelems) return nullptr;
        const std::uint32_t next = index + 1;
        if (next % 64 == 0 && next != nelems) return nullptr;  // cache word needs a refill
        alloc_cache = (cache >> bit) >> 1;  // two shifts: bit + 1 may be 64
        free_index.store(next, std::memory_order_relaxed);
        alloc_count.store(alloc_count.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
        return reinterpret_cast<void*>(base + index * elem_size);
    }

    /// Go's nextFreeIndex: allocates the next free slot, refilling alloc_cache
    /// from the bitmap as needed. Returns nelems when the span is full.
    std::uint32_t next_free_index();

    /// Loads alloc_cache for the 64-slot word starting at `word_start` (a multiple of 64).
    void refill_alloc_cache(std::uint32_t word_start);

    /// Resets the span to describe a fresh run of pages for `spc` (0 for large).
    void init(std::uintptr_t base_addr, std::size_t pages, std::size_t spc, bool is_noscan);

    /// Checks (S1)-(S3); returns nullptr or a description of the first violation.
    const char* verify() const;
};

/// An intrusive doubly-linked list of spans.
class SpanList {
public:
    bool empty() const { return head_ == nullptr; }
    Span* front() const { return head_; }
    std::size_t size() const { return size_; }
    void push_front(Span* s);
    void remove(Span* s);
    Span* pop_front();

    template <class F>
    void for_each(F&& f) const {
        for (Span* s = head_; s != nullptr;) {
            Span* next = s->next;  // f may move s to another list
            f(s);
            s = next;
        }
    }

private:
    Span* head_ = nullptr;
    std::size_t size_ = 0;
};

}  // namespace gcheap::detail
