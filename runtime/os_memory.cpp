// Linux implementation of the OS memory seam (see os_memory.hpp).
#include "runtime/os_memory.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

namespace gcheap::detail {

namespace {

void* map_anonymous(void* addr, std::size_t size, int prot, int extra_flags) {
    void* p = ::mmap(addr, size, prot, MAP_PRIVATE | MAP_ANONYMOUS | extra_flags, -1, 0);
    return p == MAP_FAILED ? nullptr : p;
}

std::uintptr_t page_down(std::uintptr_t a) { return a & ~(OsMemory::os_page_size() - 1); }
std::uintptr_t page_up(std::uintptr_t a) { return page_down(a + OsMemory::os_page_size() - 1); }

// msync(MS_ASYNC) does nothing to the pages (a no-op since Linux 2.6.19) but
// fails with ENOMEM if any page of the range is unmapped.
bool pages_mapped(std::uintptr_t begin, std::uintptr_t end) {
    if (begin >= end) return true;
    return ::msync(reinterpret_cast<void*>(begin), end - begin, MS_ASYNC) == 0 || errno != ENOMEM;
}

}  // namespace

std::string describe_range(std::uintptr_t begin, std::uintptr_t end) {
    char buffer[80];
    std::snprintf(buffer, sizeof buffer, "[%#lx, %#lx)", static_cast<unsigned long>(begin),
                  static_cast<unsigned long>(end));
    return buffer;
}

bool is_mapped(std::uintptr_t begin, std::uintptr_t end) {
    if (begin >= end) return true;
    return pages_mapped(page_down(begin), page_up(end));
}

std::uintptr_t lowest_mapped(std::uintptr_t lo, std::uintptr_t hi) {
    const std::uintptr_t page = OsMemory::os_page_size();
    const std::uintptr_t top = page_up(hi);
    std::uintptr_t mapped = top;  // [mapped, top) is known to be mapped
    std::uintptr_t below = page_down(lo);
    if (pages_mapped(below, top)) return std::max(lo, below);
    // Invariant: [mapped, top) mapped, [below, top) not wholly mapped.
    while (mapped - below > page) {
        const std::uintptr_t mid = page_down(below + (mapped - below) / 2);
        if (pages_mapped(mid, top)) mapped = mid;
        else below = mid;
    }
    return mapped == top ? hi : std::max(lo, mapped);
}

std::uintptr_t mapping_end(std::uintptr_t addr, std::uintptr_t limit) {
    const std::uintptr_t page = OsMemory::os_page_size();
    const std::uintptr_t start = page_down(addr);
    if (!pages_mapped(start, start + page)) return addr;
    // Grow the probe exponentially, then bisect: [start, good) mapped, [start, bad) not.
    std::uintptr_t good = start + page;
    std::uintptr_t bad = 0;
    for (std::uintptr_t step = page; good < limit; step *= 2) {
        const std::uintptr_t next = std::min(page_up(limit), good + step);
        if (!pages_mapped(start, next)) {
            bad = next;
            break;
        }
        good = next;
    }
    if (bad == 0) return std::min(good, limit);
    while (bad - good > page) {
        const std::uintptr_t mid = page_down(good + (bad - good) / 2);
        if (pages_mapped(start, mid)) good = mid;
        else bad = mid;
    }
    return std::min(good, limit);
}

std::size_t OsMemory::os_page_size() {
    static const std::size_t size = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    return size;
}

bool OsMemory::should_fail(OsCall kind) {
    auto& countdown = fail_countdown_[static_cast<int>(kind)];
    std::uint64_t n = countdown.load(std::memory_order_relaxed);
    while (n != 0) {
        if (n == 1 && fail_sticky_[static_cast<int>(kind)].load(std::memory_order_relaxed)) return true;
        if (countdown.compare_exchange_weak(n, n - 1, std::memory_order_relaxed)) return n == 1;
    }
    return false;
}

void OsMemory::clear_faults_for_testing() {
    for (int k = 0; k < static_cast<int>(OsCall::kCount); ++k) {
        fail_sticky_[k].store(false, std::memory_order_relaxed);
        fail_countdown_[k].store(0, std::memory_order_relaxed);
    }
}

void OsMemory::report_thread_failure(const char* role, int error, const char* consequence) {
    std::fprintf(stderr, "gcheap: cannot start the %s thread: %s; %s\n", role, std::strerror(error), consequence);
}

void OsMemory::fail_after_for_testing(OsCall kind, std::uint64_t nth, bool sticky) {
    fail_sticky_[static_cast<int>(kind)].store(sticky, std::memory_order_relaxed);
    fail_countdown_[static_cast<int>(kind)].store(nth, std::memory_order_relaxed);
}

void* OsMemory::reserve(std::size_t size, std::size_t alignment, std::uintptr_t hint) {
    if (should_fail(OsCall::kReserve)) return nullptr;
    // No MAP_NORESERVE: a PROT_NONE private mapping is not charged anyway, and
    // the flag would make the later mprotect(PROT_READ | PROT_WRITE) uncharged
    // too, so that the kernel's overcommit policy never saw a commit and
    // alloc(1 TiB) "succeeded" on a 24 GiB machine (see commit()).
    constexpr int kReserveFlags = 0;
    if (hint != 0 && hint % alignment == 0) {
        // MAP_FIXED_NOREPLACE: take the hint only if nothing lives there.
        void* p = map_anonymous(reinterpret_cast<void*>(hint), size, PROT_NONE, kReserveFlags | MAP_FIXED_NOREPLACE);
        if (p == reinterpret_cast<void*>(hint)) return p;
        if (p != nullptr) ::munmap(p, size);  // kernels before 4.17 treat the flag as a hint
    }
    // Over-reserve and trim to get the alignment.
    const std::size_t padded = size + alignment;
    if (padded < size) return nullptr;
    void* raw = map_anonymous(nullptr, padded, PROT_NONE, kReserveFlags);
    if (raw == nullptr) return nullptr;
    const auto start = reinterpret_cast<std::uintptr_t>(raw);
    const std::uintptr_t aligned = (start + alignment - 1) & ~(alignment - 1);
    if (aligned > start) ::munmap(raw, aligned - start);
    const std::uintptr_t tail = start + padded - (aligned + size);
    if (tail > 0) ::munmap(reinterpret_cast<void*>(aligned + size), tail);
    return reinterpret_cast<void*>(aligned);
}

bool OsMemory::commit(void* addr, std::size_t size) {
    if (should_fail(OsCall::kCommit)) return false;
    // Making a private mapping writable charges it to the commit count
    // (VM_ACCOUNT), under the overcommit policy: with vm.overcommit_memory=0
    // a single request larger than RAM + swap fails with ENOMEM at once, with
    // 2 anything past CommitLimit does, with 1 nothing does — as for malloc and
    // for Go, whose sysMap commits the same way. The check comes before any
    // page is touched, so a refusal costs one system call.
    if (::mprotect(addr, size, PROT_READ | PROT_WRITE) == 0) return true;
    // mprotect works mapping by mapping: when the range spans two (adjacent
    // reservations the kernel did not merge), the first may already be
    // writable. Put it back: the range was reserved and untouched.
    const int error = errno;
    ::mprotect(addr, size, PROT_NONE);
    errno = error;
    return false;
}

bool OsMemory::release(void* addr, std::size_t size) {
    const bool injected = should_fail(OsCall::kRelease);
    if (injected || ::madvise(addr, size, MADV_DONTNEED) != 0) {
        const int error = injected ? EAGAIN : errno;
        const std::uint64_t failures = release_failures_.fetch_add(1, std::memory_order_relaxed) + 1;
        // Reported on stderr the first time and every 1024th time after, never fatal.
        if (failures == 1 || failures % 1024 == 0) {
            std::fprintf(stderr,
                         "gcheap: madvise(MADV_DONTNEED) of %zu bytes failed: %s (failure %llu; the pages stay "
                         "resident and are counted as such)\n",
                         size, std::strerror(error), static_cast<unsigned long long>(failures));
        }
        return false;
    }
    return true;
}

void OsMemory::prefault(void* addr, std::size_t size) {
#ifndef MADV_POPULATE_WRITE
    constexpr int MADV_POPULATE_WRITE = 23;  // older headers; the kernel decides
#endif
    if (!prefault_supported_.load(std::memory_order_relaxed)) return;
    const int saved_errno = errno;  // advisory: the caller's errno is not ours to change
    if (::madvise(addr, size, MADV_POPULATE_WRITE) != 0 && errno == EINVAL) {
        prefault_supported_.store(false, std::memory_order_relaxed);  // a kernel before 5.14
    }
    errno = saved_errno;
}

void OsMemory::unmap(void* addr, std::size_t size) { ::munmap(addr, size); }

void* OsMemory::map_metadata(std::size_t size) {
    if (should_fail(OsCall::kMapMetadata)) return nullptr;
    return map_anonymous(nullptr, size, PROT_READ | PROT_WRITE, 0);
}

}  // namespace gcheap::detail
