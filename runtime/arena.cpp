// Arena index maintenance (see arena.hpp for the invariants).
#include "runtime/arena.hpp"

#include "runtime/span.hpp"

#include <type_traits>

namespace gcheap::detail {

// ArenaMeta and the L2 blocks are used as the zero-filled mappings hold them,
// without running a constructor (see arena.hpp: constructing would write every
// page). That is sound because all-zero bytes are their value-initialised
// state: null pointers in lock-free atomics that hold nothing but the pointer,
// and clear bits. Nothing needs destroying: the destructor only unmaps.
static_assert(std::atomic<Span*>::is_always_lock_free && sizeof(std::atomic<Span*>) == sizeof(Span*));
static_assert(std::atomic<ArenaMeta*>::is_always_lock_free &&
              sizeof(std::atomic<ArenaMeta*>) == sizeof(ArenaMeta*));
static_assert(std::is_trivially_destructible_v<ArenaMeta> && std::is_standard_layout_v<ArenaMeta>);

std::size_t ArenaIndex::meta_bytes() {
    const std::size_t page = OsMemory::os_page_size();
    return (sizeof(ArenaMeta) + page - 1) / page * page;
}

ArenaIndex::~ArenaIndex() {
    for (std::size_t i = 0; i < kL1Entries; ++i) {
        std::atomic<ArenaMeta*>* l2 = l1_[i].load(std::memory_order_relaxed);
        if (l2 == nullptr) continue;
        for (std::size_t j = 0; j < kL2Entries; ++j) {
            if (ArenaMeta* m = l2[j].load(std::memory_order_relaxed)) os_.unmap(m, meta_bytes());
        }
        os_.unmap(l2, kL2Bytes);
    }
}

bool ArenaIndex::first_page_of(const Span* span, std::uintptr_t page) { return span->base == page; }

ArenaMeta* ArenaIndex::add_arena_locked(std::uintptr_t base) {
    const std::size_t l1 = base >> (kArenaShift + kArenaL2Bits);
    const std::size_t l2_index = (base >> kArenaShift) & (kL2Entries - 1);
    std::atomic<ArenaMeta*>* l2 = l1_[l1].load(std::memory_order_relaxed);
    if (l2 == nullptr) {
        void* block = os_.map_metadata(kL2Bytes);
        if (block == nullptr) return nullptr;
        l2 = static_cast<std::atomic<ArenaMeta*>*>(block);  // zero-filled: no arenas
        sys_bytes_ += kL2Bytes;
        l1_[l1].store(l2, std::memory_order_release);
    }
    void* memory = os_.map_metadata(meta_bytes());
    if (memory == nullptr) return nullptr;
    sys_bytes_ += meta_bytes();
    auto* meta = static_cast<ArenaMeta*>(memory);  // zero-filled: null spans, no released bits
    meta->base = base;  // the one write; with 4 KiB pages, on the page of the released bits
    l2[l2_index].store(meta, std::memory_order_release);
    ++arena_count_;
    if (lowest_.load(std::memory_order_relaxed) == 0 || base < lowest_.load(std::memory_order_relaxed)) {
        lowest_.store(base, std::memory_order_relaxed);
    }
    if (base + kArenaSize > highest_.load(std::memory_order_relaxed)) {
        highest_.store(base + kArenaSize, std::memory_order_relaxed);
    }
    return meta;
}

bool ArenaIndex::cover_locked(std::uintptr_t begin, std::uintptr_t end) {
    for (std::uintptr_t arena = begin & ~(kArenaSize - 1); arena < end; arena += kArenaSize) {
        if (arena_of(arena) == nullptr && add_arena_locked(arena) == nullptr) return false;
    }
    return true;
}

void ArenaIndex::set_pages_locked(std::uintptr_t base, std::size_t npages, Span* span) {
    std::uintptr_t addr = base;
    for (std::size_t i = 0; i < npages; ++i, addr += kPageSize) {
        arena_of(addr)->spans[ArenaMeta::page_of(addr)].store(span, std::memory_order_release);
    }
}

}  // namespace gcheap::detail
