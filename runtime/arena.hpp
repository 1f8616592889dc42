// Arenas and the arena index: the address -> span map.
//
// Heap memory lives in 64 MiB arenas (Go's heapArena on linux/amd64), each
// aligned to its size and described by an off-heap ArenaMeta holding one span
// pointer per 8 KiB page and the page heap's per-page "released" bits.
//
// What metadata costs: an arena's ArenaMeta (68 KiB) is mapped when the page
// heap first commits memory in that arena, not when it reserves the address
// space (Go maps its heapArena as the heap grows into it too), and it is never
// initialised: an anonymous mapping reads as zeros, which is exactly a null
// span map with no released bits. Its pages become resident only as they are
// written — one page for the released bits and `base`, then 8 bytes per page
// of in-use span. Reserving address space therefore costs no memory at all,
// and metadata grows with the memory really used: value-initialising it, as
// we once did for every arena of a reservation, made alloc(4 TiB) leave
// 4.3 GB resident and alloc(2^46) run out of memory on metadata alone.
//
// The index is a two-level radix table over the 47-bit user address space:
// L1 (2^11 entries, inside ArenaIndex) -> L2 blocks of 2^10 arena pointers
// (mapped on demand). span_of(addr) is therefore O(1) for every address,
// including addresses outside the heap (answer: nullptr) and interior pointers.
//
// Invariants:
//   (A1) every arena holding committed heap memory is in the index, and an
//        arena in the index lies in address space this heap has reserved
//        (an arena enters the index when commitment first reaches it; one may
//        be indexed with nothing committed after a commit the page heap
//        could not complete);
//   (A2) meta->spans[p] != nullptr iff page p belongs to an in-use span, and then
//        points at that span (every page of the span, not only the first);
//   (A3) meta->released bit p is set only for free pages, and then the page's
//        memory reads as zeros (never touched, or madvised away).
// Locking: writers hold the page heap lock. Readers (conservative scanning,
// lookups) use acquire loads and need no lock; a span pointer they read stays
// a valid descriptor for as long as the world stays as it was when read (the
// collector reads with the world stopped).
#pragma once

#include "runtime/os_memory.hpp"
#include "runtime/size_classes.hpp"

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace gcheap::detail {

struct Span;

inline constexpr std::size_t kArenaShift = 26;
inline constexpr std::size_t kArenaSize = std::size_t{1} << kArenaShift;  // 64 MiB
inline constexpr std::size_t kPagesPerArena = kArenaSize / kPageSize;     // 8192
inline constexpr std::size_t kAddressBits = 47;
inline constexpr std::size_t kArenaL2Bits = 10;
inline constexpr std::size_t kArenaL1Bits = kAddressBits - kArenaShift - kArenaL2Bits;

// Never constructed: add_arena_locked() takes it as the zero-filled mapping
// holds it, which the static_asserts in arena.cpp show to be a valid state.
struct ArenaMeta {
    std::atomic<Span*> spans[kPagesPerArena];
    std::uint64_t released[kPagesPerArena / 64];  // guarded by the page heap lock
    std::uintptr_t base;

    static std::size_t page_of(std::uintptr_t addr) { return (addr >> kPageShift) & (kPagesPerArena - 1); }
    bool is_released(std::size_t page) const { return (released[page / 64] >> (page % 64)) & 1; }
    void set_released(std::size_t page, bool on) {
        const std::uint64_t bit = std::uint64_t{1} << (page % 64);
        released[page / 64] = on ? (released[page / 64] | bit) : (released[page / 64] & ~bit);
    }
};

class ArenaIndex {
public:
    explicit ArenaIndex(OsMemory& os) : os_(os) {}
    ArenaIndex(const ArenaIndex&) = delete;
    ArenaIndex& operator=(const ArenaIndex&) = delete;
    ~ArenaIndex();

    /// The arena holding `addr`, or nullptr if this heap has none there.
    ArenaMeta* arena_of(std::uintptr_t addr) const {
        if ((addr >> kAddressBits) != 0) return nullptr;
        const std::atomic<ArenaMeta*>* l2 = l1_[addr >> (kArenaShift + kArenaL2Bits)].load(std::memory_order_acquire);
        if (l2 == nullptr) return nullptr;
        return l2[(addr >> kArenaShift) & ((std::size_t{1} << kArenaL2Bits) - 1)].load(std::memory_order_acquire);
    }

    /// The in-use span whose pages contain `addr`, or nullptr.
    Span* span_of(std::uintptr_t addr) const {
        const ArenaMeta* meta = arena_of(addr);
        if (meta == nullptr) return nullptr;
        return meta->spans[ArenaMeta::page_of(addr)].load(std::memory_order_acquire);
    }

    /// Creates metadata for the arena at `base` (aligned, reserved by the
    /// caller, not yet indexed). Returns nullptr if the OS refuses metadata
    /// memory. Lock held.
    ArenaMeta* add_arena_locked(std::uintptr_t base);

    /// Indexes every arena overlapping [begin, end) that is not indexed yet
    /// (the page heap calls it for each range it commits). False if the OS
    /// refuses metadata memory; the arenas indexed before that stay. Lock held.
    bool cover_locked(std::uintptr_t begin, std::uintptr_t end);

    /// Sets the page map entries of [base, base + npages pages) to `span`. Lock held.
    void set_pages_locked(std::uintptr_t base, std::size_t npages, Span* span);

    /// [lowest, highest) address of any arena: a cheap first filter for
    /// conservative scanning. Both 0 while there is no arena.
    std::uintptr_t lowest() const { return lowest_.load(std::memory_order_relaxed); }
    std::uintptr_t highest() const { return highest_.load(std::memory_order_relaxed); }

    /// Bytes of metadata mapped for arenas and the index (MemStats.GCSys):
    /// mapped, as Go counts its heapArena, not only the resident part.
    std::size_t sys_bytes() const { return sys_bytes_; }
    std::size_t arena_count() const { return arena_count_; }

    /// Visits every arena in address order.
    template <class F>
    void for_each_arena(F&& f) const {
        for (std::size_t i = 0; i < kL1Entries; ++i) {
            const std::atomic<ArenaMeta*>* l2 = l1_[i].load(std::memory_order_acquire);
            if (l2 == nullptr) continue;
            for (std::size_t j = 0; j < kL2Entries; ++j) {
                if (ArenaMeta* m = l2[j].load(std::memory_order_acquire)) f(*m);
            }
        }
    }

    /// Visits every in-use span once (at its first page), in address order.
    /// The caller keeps the page map still (allocator gate closed or world stopped).
    template <class F>
    void for_each_span(F&& f) const {
        for_each_arena([&](const ArenaMeta& meta) {
            for (std::size_t p = 0; p < kPagesPerArena; ++p) {
                Span* span = meta.spans[p].load(std::memory_order_relaxed);
                if (span != nullptr && first_page_of(span, meta.base + p * kPageSize)) f(span);
            }
        });
    }

private:
    static bool first_page_of(const Span* span, std::uintptr_t page);
    static constexpr std::size_t kL1Entries = std::size_t{1} << kArenaL1Bits;
    static constexpr std::size_t kL2Entries = std::size_t{1} << kArenaL2Bits;
    static constexpr std::size_t kL2Bytes = kL2Entries * sizeof(std::atomic<ArenaMeta*>);
    static std::size_t meta_bytes();

    OsMemory& os_;
    std::atomic<std::atomic<ArenaMeta*>*> l1_[kL1Entries] = {};
    std::size_t sys_bytes_ = 0;
    std::size_t arena_count_ = 0;
    std::atomic<std::uintptr_t> lowest_{0};
    std::atomic<std::uintptr_t> highest_{0};
};

}  // namespace gcheap::detail
