// Page heap: see page_heap.hpp for the policy, counters and invariants.
#include "runtime/page_heap.hpp"

#include "runtime/sanitizers.hpp"

#include <cstring>

namespace gcheap::detail {

namespace {

// Go places the heap at 0x00c000000000 and up on linux/amd64: addresses that
// small integers and text rarely look like, which keeps conservative scanning
// precise. Sanitizers own that part of the address space, so we let the
// kernel choose there.
constexpr std::uintptr_t kFirstArenaHint = kSanitizedAddressSpace ? 0 : 0x00c000000000;

constexpr std::size_t round_up(std::size_t n, std::size_t to) { return (n + to - 1) / to * to; }

}  // namespace

void DirtyPages::add(std::uintptr_t addr, std::size_t bytes) {
    if (count > 0 && ranges[count - 1].first + ranges[count - 1].second == addr) {
        ranges[count - 1].second += bytes;
    } else if (count < kMaxRanges) {
        ranges[count++] = {addr, bytes};
    } else {
        overflow = true;
    }
}

void DirtyPages::zero(std::uintptr_t base, std::size_t bytes) const {
    if (overflow) {
        std::memset(reinterpret_cast<void*>(base), 0, bytes);
        return;
    }
    for (std::size_t i = 0; i < count; ++i) std::memset(reinterpret_cast<void*>(ranges[i].first), 0, ranges[i].second);
}

PageHeap::PageHeap(OsMemory& os, ArenaIndex& index)
    : os_(os),
      index_(index),
      span_pool_(os),
      free_by_addr_(MeteredAllocator<std::pair<const std::uintptr_t, std::size_t>>(&container_bytes_)),
      free_by_size_(MeteredAllocator<Run>(&container_bytes_)),
      reservations_(MeteredAllocator<std::pair<std::uintptr_t, std::size_t>>(&container_bytes_)),
      next_hint_(kFirstArenaHint) {}

PageHeap::~PageHeap() {
    for (const auto& [base, bytes] : reservations_) os_.unmap(reinterpret_cast<void*>(base), bytes);
}

Span* PageHeap::alloc_span_locked(std::size_t npages, std::size_t spc, bool noscan, DirtyPages& dirty) {
    auto it = free_by_size_.lower_bound(Run{npages, 0});
    if (it == free_by_size_.end()) {
        if (!grow_locked(npages)) return nullptr;
        it = free_by_size_.lower_bound(Run{npages, 0});
        if (it == free_by_size_.end()) return nullptr;
    }
    Span* span = span_pool_.create();
    if (span == nullptr) return nullptr;

    const auto [run_pages, run_base] = *it;
    if (run_pages > npages) {
        rekey_free_run_locked(run_base, run_pages, run_base + npages * kPageSize, run_pages - npages);
    } else {
        erase_free_run_locked(run_base, run_pages);
    }

    const std::size_t released_pages = claim_pages_locked(run_base, npages, dirty);
    heap_released_ -= released_pages * kPageSize;
    heap_free_ -= (npages - released_pages) * kPageSize;
    heap_inuse_ += npages * kPageSize;

    span->init(run_base, npages, spc, noscan);
    span->needzero = dirty.any();
    index_.set_pages_locked(run_base, npages, span);
    return span;
}

void PageHeap::free_span_locked(Span* span) {
    release_cursor_ = std::max(release_cursor_, span->end());
    index_.set_pages_locked(span->base, span->npages, nullptr);
    heap_inuse_ -= span->npages * kPageSize;
    heap_free_ += span->npages * kPageSize;
    insert_free_run_locked(span->base, span->npages);
    span->state = SpanState::kDead;
    span_pool_.destroy(span);
}

std::size_t PageHeap::claim_pages_locked(std::uintptr_t base, std::size_t npages, DirtyPages& dirty) {
    std::size_t released = 0;
    std::uintptr_t addr = base;
    for (std::size_t i = 0; i < npages; ++i, addr += kPageSize) {
        ArenaMeta* meta = index_.arena_of(addr);
        const std::size_t page = ArenaMeta::page_of(addr);
        if (meta->is_released(page)) {
            ++released;
            meta->set_released(page, false);
        } else {
            dirty.add(addr, kPageSize);
        }
    }
    return released;
}

void PageHeap::set_released_locked(std::uintptr_t base, std::size_t npages, bool released) {
    std::uintptr_t addr = base;
    for (std::size_t i = 0; i < npages; ++i, addr += kPageSize) {
        index_.arena_of(addr)->set_released(ArenaMeta::page_of(addr), released);
    }
}

void PageHeap::insert_free_run_locked(std::uintptr_t base, std::size_t npages) {
    // Coalesce with the runs just below and just above, reusing their index
    // nodes: the common cases allocate nothing inside the lock.
    auto above = free_by_addr_.find(base + npages * kPageSize);
    auto below = free_by_addr_.lower_bound(base);
    bool has_below = false;
    if (below != free_by_addr_.begin()) {
        --below;
        has_below = below->first + below->second * kPageSize == base;
    }
    if (has_below) {
        const std::uintptr_t below_base = below->first;
        const std::size_t below_pages = below->second;
        std::size_t total = below_pages + npages;
        if (above != free_by_addr_.end()) {
            total += above->second;
            erase_free_run_locked(above->first, above->second);
        }
        rekey_free_run_locked(below_base, below_pages, below_base, total);
    } else if (above != free_by_addr_.end()) {
        rekey_free_run_locked(above->first, above->second, base, npages + above->second);
    } else {
        free_by_addr_.emplace(base, npages);
        free_by_size_.emplace(npages, base);
    }
}

void PageHeap::rekey_free_run_locked(std::uintptr_t base, std::size_t npages, std::uintptr_t new_base,
                                     std::size_t new_pages) {
    auto by_addr = free_by_addr_.extract(base);
    by_addr.key() = new_base;
    by_addr.mapped() = new_pages;
    free_by_addr_.insert(std::move(by_addr));
    auto by_size = free_by_size_.extract(Run{npages, base});
    by_size.value() = Run{new_pages, new_base};
    free_by_size_.insert(std::move(by_size));
}

void PageHeap::erase_free_run_locked(std::uintptr_t base, std::size_t npages) {
    free_by_addr_.erase(base);
    free_by_size_.erase(Run{npages, base});
}

bool PageHeap::reserve_locked(std::size_t bytes, bool& contiguous) {
    const std::size_t size = round_up(bytes, kArenaSize);
    if (size < bytes) return false;
    // Room first, so that a reservation is never mapped and then forgotten
    // because recording it threw.
    reservations_.reserve(reservations_.size() + 1);
    void* memory = os_.reserve(size, kArenaSize, next_hint_);
    if (memory == nullptr) return false;
    const auto base = reinterpret_cast<std::uintptr_t>(memory);
    if (next_hint_ != 0) next_hint_ = base == next_hint_ ? base + size : 0;  // stop hinting once refused
    reservations_.emplace_back(base, size);
    // No arena is indexed here: metadata waits for commitment (A1), so that
    // address space reserved for a request the OS then refuses costs nothing.
    contiguous = commit_cursor_ != 0 && base == reserve_end_;
    if (!contiguous) commit_cursor_ = base;  // the old reservation's tail stays unused
    reserve_end_ = base + size;
    return true;
}

bool PageHeap::grow_locked(std::size_t npages) {
    if (npages > (std::size_t{1} << kAddressBits) / kPageSize) return false;
    const std::size_t full_bytes = round_up(npages * kPageSize, kGrowBytes);
    // A free run ending at the commit cursor will coalesce with the new pages.
    std::size_t tail_pages = 0;
    if (!free_by_addr_.empty()) {
        const auto& [last_base, last_pages] = *free_by_addr_.rbegin();
        if (last_base + last_pages * kPageSize == commit_cursor_) tail_pages = last_pages;
    }
    std::size_t bytes = round_up((npages - std::min(tail_pages, npages)) * kPageSize, kGrowBytes);
    const GrowthState before{next_hint_, commit_cursor_, reserve_end_};
    bool reserved = false;
    if (commit_cursor_ == 0 || commit_cursor_ + bytes > reserve_end_) {
        bool contiguous = false;
        if (!reserve_locked(full_bytes, contiguous)) return false;
        reserved = true;
        if (!contiguous) bytes = full_bytes;
    }
    const std::uintptr_t base = commit_cursor_;
    if (!os_.commit(reinterpret_cast<void*>(base), bytes)) {
        // Refused before anything was spent on it. A reservation made for this
        // request goes back, or the old reservation's tail would be abandoned
        // for it (and a refused 2^46-byte request would keep half the address
        // space).
        if (reserved) unreserve_newest_locked(before);
        return false;
    }
    // The committed range is not counted until its arenas are indexed. If
    // metadata is refused, the range stays committed, untouched and unclaimed
    // at the commit cursor; the next growth commits it again (making a
    // writable range writable is a no-op) and takes it.
    if (!index_.cover_locked(base, base + bytes)) return false;
    commit_cursor_ += bytes;
    committed_ += bytes;
    const std::size_t pages = bytes / kPageSize;
    set_released_locked(base, pages, true);
    heap_released_ += bytes;
    insert_free_run_locked(base, pages);
    return true;
}

void PageHeap::unreserve_newest_locked(const GrowthState& before) {
    const auto [base, size] = reservations_.back();
    reservations_.pop_back();
    os_.unmap(reinterpret_cast<void*>(base), size);  // no arena of it is indexed: nothing was committed (A1)
    next_hint_ = before.next_hint;
    commit_cursor_ = before.commit_cursor;
    reserve_end_ = before.reserve_end;
}

bool PageHeap::is_released_locked(std::uintptr_t page) const {
    return index_.arena_of(page)->is_released(ArenaMeta::page_of(page));
}

std::size_t PageHeap::release_locked(std::size_t bytes) {
    std::size_t released = 0;
    // Start at the release cursor: no resident free page lies above it, so
    // repeated small releases do not walk the same released pages again.
    auto it = std::make_reverse_iterator(free_by_addr_.lower_bound(release_cursor_));
    for (; it != free_by_addr_.rend() && released < bytes; ++it) {
        const std::uintptr_t run_base = it->first;
        std::uintptr_t addr = std::min(run_base + it->second * kPageSize, release_cursor_);
        // Walk the run from its top, releasing maximal stretches of resident pages.
        while (addr > run_base && released < bytes) {
            while (addr > run_base && is_released_locked(addr - kPageSize)) addr -= kPageSize;
            if (addr == run_base) break;
            const std::uintptr_t stretch_end = addr;
            while (addr > run_base && !is_released_locked(addr - kPageSize) && stretch_end - addr < bytes - released) {
                addr -= kPageSize;
            }
            const std::size_t stretch = stretch_end - addr;
            if (!os_.release(reinterpret_cast<void*>(addr), stretch)) return released;  // counted by OsMemory
            set_released_locked(addr, stretch / kPageSize, true);
            heap_free_ -= stretch;
            heap_released_ += stretch;
            released += stretch;
        }
        release_cursor_ = addr;  // everything from here up is released or in use
    }
    return released;
}

const char* PageHeap::verify_locked() const {
    if (heap_inuse_ + heap_free_ + heap_released_ != committed_) return "inuse + free + released != committed (P1)";
    if (free_by_addr_.size() != free_by_size_.size()) return "free-run indexes differ (P4)";
    std::uintptr_t previous_end = 0;
    std::uint64_t free_bytes = 0;
    std::uint64_t released_bytes = 0;
    for (const auto& [base, npages] : free_by_addr_) {
        if (free_by_size_.count(Run{npages, base}) != 1) return "free run missing from the size index (P4)";
        if (base == previous_end) return "adjacent free runs were not coalesced (P2)";
        if (base < previous_end) return "free runs overlap (P2)";
        previous_end = base + npages * kPageSize;
        for (std::uintptr_t addr = base; addr < previous_end; addr += kPageSize) {
            const ArenaMeta* meta = index_.arena_of(addr);
            if (meta == nullptr) return "free run outside every arena (P2)";
            if (meta->spans[ArenaMeta::page_of(addr)].load(std::memory_order_relaxed) != nullptr)
                return "free page mapped to a span (A2)";
            if (meta->is_released(ArenaMeta::page_of(addr))) {
                released_bytes += kPageSize;
            } else {
                free_bytes += kPageSize;
                if (addr >= release_cursor_) return "resident free page above the release cursor (P5)";
            }
        }
    }
    if (released_bytes != heap_released_) return "heap_released differs from released page bits (P3)";
    if (free_bytes != heap_free_) return "heap_free differs from resident free pages";
    std::uint64_t mapped_pages = 0;
    const char* problem = nullptr;
    index_.for_each_arena([&](const ArenaMeta& meta) {
        for (std::size_t p = 0; p < kPagesPerArena; ++p) {
            const Span* span = meta.spans[p].load(std::memory_order_relaxed);
            if (span == nullptr) continue;
            ++mapped_pages;
            if (span->state != SpanState::kInUse) problem = "page mapped to a dead span (A2)";
            if (meta.is_released(p)) problem = "released bit on an in-use page (A3)";
            const std::uintptr_t addr = meta.base + p * kPageSize;
            if (addr < span->base || addr >= span->end()) problem = "page mapped to a span not covering it (A2)";
        }
    });
    if (problem != nullptr) return problem;
    if (mapped_pages * kPageSize != heap_inuse_) return "heap_inuse differs from pages mapped to spans";
    return nullptr;
}

}  // namespace gcheap::detail
