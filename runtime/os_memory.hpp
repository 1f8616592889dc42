// The one seam between gcheap and the operating system's virtual memory.
//
// Address space moves through Go's states (runtime/mem.go):
//
//   None --reserve--> Reserved (PROT_NONE) --commit--> Ready (read/write)
//   Ready --release--> Released (still read/write, madvise(MADV_DONTNEED): the
//   kernel drops the pages, the next touch yields zero-filled pages) --touch--> Ready
//
// Preconditions, stated once: every address and length is a multiple of the OS
// page size; commit/release only act on ranges this object reserved.
// Postconditions: reserve() returns nullptr (never throws) when the OS refuses;
// commit() and release() return false on failure and leave the range as it
// was. Accounting is done by the callers (page heap, metadata allocators), at
// the moment they call in here, so that HeapSys and HeapReleased stay exact.
//
// Fault injection (tests and GCHEAP_DEBUG later): fail_after(kind, n) makes the
// n-th next call of that kind fail as the OS would.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace gcheap::detail {

enum class OsCall : std::uint8_t { kReserve, kCommit, kRelease, kMapMetadata, kCount };

class OsMemory {
public:
    /// Reserves `size` bytes of address space aligned to `alignment` (a power
    /// of two, at least the OS page size), trying `hint` first when non-zero.
    void* reserve(std::size_t size, std::size_t alignment, std::uintptr_t hint);
    /// Makes a reserved range readable and writable.
    bool commit(void* addr, std::size_t size);
    /// Returns the physical pages of a committed range to the OS.
    bool release(void* addr, std::size_t size);
    /// Returns reserved address space to the OS.
    void unmap(void* addr, std::size_t size);
    /// Maps zeroed read/write memory for off-heap metadata.
    void* map_metadata(std::size_t size);

    static std::size_t os_page_size();

    /// Count of failed release() calls (a failed madvise is never fatal).
    std::uint64_t release_failures() const { return release_failures_.load(std::memory_order_relaxed); }

    /// Test hook: the `nth` next call of `kind` (1 = the very next) fails.
    void fail_after_for_testing(OsCall kind, std::uint64_t nth);

private:
    bool should_fail(OsCall kind);

    std::atomic<std::uint64_t> release_failures_{0};
    std::atomic<std::uint64_t> fail_countdown_[static_cast<int>(OsCall::kCount)] = {};
};

}  // namespace gcheap::detail
