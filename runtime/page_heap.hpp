// PageHeap: page runs for spans, growth from the OS, and the released-page
// bookkeeping that keeps HeapSys / HeapIdle / HeapReleased exact (Go's mheap).
//
// Free pages have no span descriptor: they are recorded as maximal runs in two
// indexes, by address (for coalescing and for scavenging from the top) and by
// (length, address) (for allocation). Allocation is best fit, lowest address
// among equals — Go's policy from 1.12 to 1.13 (its treap); Go 1.14+ uses
// address-ordered first fit via a radix tree of bitmaps. Both keep the heap
// compact; best fit is O(log n) with standard containers. A run is carved from
// its low end. Carving and coalescing move the runs' index nodes to their new
// keys instead of erasing and inserting, so that the usual allocation and
// free call no malloc while holding the lock.
//
// Counters (bytes; all guarded by mutex()):
//   heap_inuse    pages of in-use spans                      (MemStats.HeapInuse)
//   heap_free     free pages still resident                  (HeapIdle - HeapReleased)
//   heap_released free pages returned to the OS or never used (HeapReleased)
// Invariants (verify_locked() checks them):
//   (P1) heap_inuse + heap_free + heap_released == bytes committed (HeapSys)
//   (P2) free runs are disjoint, maximal (no two adjacent) and lie in committed memory
//   (P3) heap_released == kPageSize * (number of released bits); released bits
//        are set only on free pages (arena.hpp A3)
//   (P4) both free-run indexes hold the same runs
//   (P5) no resident free page lies at or above the release cursor
// Newly committed memory counts as released, as in Go: it is not resident yet.
//
// Growth (grow_locked) is Go's mheap.grow in three steps, cheapest refusal
// first: reserve address space if the current reservation is too small
// (PROT_NONE: costs nothing), commit what is needed (where the kernel charges
// memory and refuses what its overcommit policy will not back), and only then
// index the arenas the commit reached (arena metadata, arena.hpp). So a request
// the OS will not commit — alloc(1 TiB) on a 24 GiB machine — fails after a
// few system calls, with nothing touched, and leaves the heap as it was: the
// reservation made for it is unmapped again and no metadata was created.
// Checking requests against a bound of our own (RAM + swap from sysinfo) was
// the alternative; it would repeat the kernel's own test under
// vm.overcommit_memory=0, be looser than CommitLimit under 2, and overrule an
// administrator who chose 1 (where malloc and Go are granted such requests
// too). RLIMIT_AS needs no check of ours: the kernel applies it at reserve.
// So the kernel's answer at commit is the one we use, as malloc and Go do.
//
// Locking: mutex() guards everything here, the span descriptor pool and the
// arena index writes. It is the innermost lock: thread cache -> central -> page heap.
// It spins before it sleeps (sync.hpp): threads refilling their caches at the
// same moment met here often enough that futex sleeps and wake-ups took a
// tenth of a two-thread allocation benchmark's CPU time.
#pragma once

#include "runtime/arena.hpp"
#include "runtime/fixalloc.hpp"
#include "runtime/os_memory.hpp"
#include "runtime/span.hpp"
#include "runtime/sync.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <utility>
#include <vector>

namespace gcheap::detail {

/// std::allocator that counts the bytes it hands out, so that the page heap's
/// own containers show up in MemStats.OtherSys.
template <class T>
struct MeteredAllocator {
    using value_type = T;
    std::size_t* bytes;
    explicit MeteredAllocator(std::size_t* counter) : bytes(counter) {}
    template <class U>
    MeteredAllocator(const MeteredAllocator<U>& other) : bytes(other.bytes) {}
    T* allocate(std::size_t n) {
        T* p = std::allocator<T>{}.allocate(n);
        *bytes += n * sizeof(T);
        return p;
    }
    void deallocate(T* p, std::size_t n) {
        *bytes -= n * sizeof(T);
        std::allocator<T>{}.deallocate(p, n);
    }
    template <class U>
    bool operator==(const MeteredAllocator<U>& other) const { return bytes == other.bytes; }
};

/// Page ranges of a new span that held stale bytes and must be zeroed. The
/// allocator zeroes them after dropping the lock; released pages are already zero.
struct DirtyPages {
    static constexpr std::size_t kMaxRanges = 8;
    std::size_t count = 0;
    bool overflow = false;  // more ranges than fit: zero the whole span
    std::pair<std::uintptr_t, std::size_t> ranges[kMaxRanges];  // (address, bytes)

    bool any() const { return count != 0 || overflow; }
    void add(std::uintptr_t addr, std::size_t bytes);
    /// Zeroes the recorded ranges of [base, base + bytes).
    void zero(std::uintptr_t base, std::size_t bytes) const;
};

class PageHeap {
public:
    PageHeap(OsMemory& os, ArenaIndex& index);
    PageHeap(const PageHeap&) = delete;
    PageHeap& operator=(const PageHeap&) = delete;
    ~PageHeap();

    SpinningMutex& mutex() { return mu_; }

    /// Allocates a span of `npages` for span class `spc` (0 or 1 for large
    /// objects), growing the heap if needed. Records in `dirty` which pages
    /// need zeroing. Returns nullptr if the OS refuses memory.
    Span* alloc_span_locked(std::size_t npages, std::size_t spc, bool noscan, DirtyPages& dirty);

    /// Returns a span's pages to the free runs and its descriptor to the pool.
    void free_span_locked(Span* span);

    /// Releases up to `bytes` of resident free pages to the OS, highest
    /// addresses first. Returns the bytes released.
    std::size_t release_locked(std::size_t bytes);

    std::uint64_t heap_inuse_locked() const { return heap_inuse_; }
    std::uint64_t heap_free_locked() const { return heap_free_; }
    std::uint64_t heap_released_locked() const { return heap_released_; }
    std::uint64_t heap_sys_locked() const { return heap_inuse_ + heap_free_ + heap_released_; }
    std::size_t span_inuse_bytes_locked() const { return span_pool_.inuse_bytes(); }
    std::size_t span_sys_bytes_locked() const { return span_pool_.sys_bytes(); }
    std::size_t other_sys_bytes_locked() const { return container_bytes_; }
    std::size_t free_run_count_locked() const { return free_by_addr_.size(); }

    /// Whether `addr` lies in a free run (resident or released).
    bool is_committed_free_locked(std::uintptr_t addr) const {
        auto it = free_by_addr_.upper_bound(addr);
        if (it == free_by_addr_.begin()) return false;
        --it;
        return addr < it->first + it->second * kPageSize;
    }

    /// Visits every free run (base, pages) in address order (heap maps).
    template <class F>
    void for_each_free_run_locked(F&& f) const {
        for (const auto& [base, npages] : free_by_addr_) f(base, npages);
    }

    /// Checks P1-P4 and A2/A3; returns nullptr or a description of the first violation.
    const char* verify_locked() const;

private:
    static constexpr std::size_t kGrowBytes = std::size_t{4} << 20;  // Go's palloc chunk

    bool grow_locked(std::size_t npages);
    bool reserve_locked(std::size_t bytes, bool& contiguous);
    /// Where growth stands: restored, and the newest reservation unmapped,
    /// when the commit that reservation was made for is refused.
    struct GrowthState {
        std::uintptr_t next_hint;
        std::uintptr_t commit_cursor;
        std::uintptr_t reserve_end;
    };
    void unreserve_newest_locked(const GrowthState& before);
    bool is_released_locked(std::uintptr_t page) const;
    void insert_free_run_locked(std::uintptr_t base, std::size_t npages);
    void erase_free_run_locked(std::uintptr_t base, std::size_t npages);
    /// Turns the free run (base, npages) into (new_base, new_pages) in both
    /// indexes, moving their nodes instead of freeing and allocating them.
    void rekey_free_run_locked(std::uintptr_t base, std::size_t npages, std::uintptr_t new_base,
                               std::size_t new_pages);
    std::size_t claim_pages_locked(std::uintptr_t base, std::size_t npages, DirtyPages& dirty);
    void set_released_locked(std::uintptr_t base, std::size_t npages, bool released);

    using Run = std::pair<std::size_t, std::uintptr_t>;  // (npages, base)

    OsMemory& os_;
    ArenaIndex& index_;
    SpinningMutex mu_;
    FixAlloc<Span> span_pool_;
    std::size_t container_bytes_ = 0;
    std::map<std::uintptr_t, std::size_t, std::less<>,
             MeteredAllocator<std::pair<const std::uintptr_t, std::size_t>>>
        free_by_addr_;
    std::set<Run, std::less<>, MeteredAllocator<Run>> free_by_size_;
    std::vector<std::pair<std::uintptr_t, std::size_t>, MeteredAllocator<std::pair<std::uintptr_t, std::size_t>>>
        reservations_;

    std::uintptr_t next_hint_;
    std::uintptr_t commit_cursor_ = 0;  // next uncommitted byte of the current reservation
    std::uintptr_t reserve_end_ = 0;

    std::uint64_t committed_ = 0;
    // No free resident page lies at or above this address (release_locked's
    // starting point); raised whenever pages are freed above it.
    std::uintptr_t release_cursor_ = ~std::uintptr_t{0};
    std::uint64_t heap_inuse_ = 0;
    std::uint64_t heap_free_ = 0;
    std::uint64_t heap_released_ = 0;
};

}  // namespace gcheap::detail
