// The one seam between gcheap and the operating system: virtual memory, and
// starting the heap's own threads (mark helpers, background sweeper,
// scavenger, finalizer thread).
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
// Who says no, and when (Go's sysReserve / sysMap split): reserving costs
// address space only (RLIMIT_AS applies); committing is where the kernel
// charges memory and applies its overcommit policy, so an impossible request
// fails at commit(), before the heap has spent anything on it. Every mapping
// here, metadata included, is anonymous and therefore reads as zeros: callers
// never initialise what they get to zero, so that untouched metadata pages
// cost no resident memory.
//
// Thread starts never throw: start_thread() returns the error, and each
// caller degrades as documented (fewer mark helpers, lazy sweeping only, no
// background scavenging) or reports it (set_finalizer throws std::system_error).
//
// Mapping probes (is_mapped, lowest_mapped, mapping_end) ask the kernel
// whether addresses are mapped without touching them: the collector uses
// them, with the world stopped, before it scans memory it does not own (root
// ranges the program may have unmapped, the stack a thread stopped on).
// They make system calls only, so they are safe while other threads are
// stopped anywhere.
//
// Fault injection (tests): fail_after_for_testing(kind, n) makes the n-th next
// call of that kind fail as the OS would (reserve/map: ENOMEM, commit: ENOMEM,
// release: EAGAIN, thread start: EAGAIN); `sticky` makes every call from the
// n-th on fail until clear_faults_for_testing().
#pragma once

#include <atomic>
#include <cerrno>
#include <new>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <cstddef>
#include <cstdint>

namespace gcheap::detail {

/// [begin, end) of the address space.
struct AddressRange {
    std::uintptr_t begin = 0;
    std::uintptr_t end = 0;
    bool contains(std::uintptr_t a) const { return a >= begin && a < end; }
    std::size_t bytes() const { return end - begin; }
};

/// "[0x..., 0x...)", for error messages.
std::string describe_range(std::uintptr_t begin, std::uintptr_t end);

/// Whether every page of [begin, end) is mapped (any protection). Empty: true.
bool is_mapped(std::uintptr_t begin, std::uintptr_t end);
/// The lowest page-aligned address a in [lo, hi) such that [a, hi) is
/// mapped, or hi if the page below hi is not mapped. `hi` is page-aligned or
/// the end of a mapped page.
std::uintptr_t lowest_mapped(std::uintptr_t lo, std::uintptr_t hi);
/// The end of the run of mapped pages that holds `addr`, searched no further
/// than `limit`; addr itself if its page is not mapped.
std::uintptr_t mapping_end(std::uintptr_t addr, std::uintptr_t limit);

enum class OsCall : std::uint8_t { kReserve, kCommit, kRelease, kMapMetadata, kStartThread, kCount };

class OsMemory {
public:
    /// Reserves `size` bytes of address space aligned to `alignment` (a power
    /// of two, at least the OS page size), trying `hint` first when non-zero.
    void* reserve(std::size_t size, std::size_t alignment, std::uintptr_t hint);
    /// Makes a reserved range readable and writable. The kernel charges the
    /// range to its commit count here: false (ENOMEM) when its overcommit
    /// policy refuses, at once and with nothing touched.
    bool commit(void* addr, std::size_t size);
    /// Returns the physical pages of a committed range to the OS.
    bool release(void* addr, std::size_t size);
    /// Asks the OS to back a committed, never-touched range with pages now
    /// (MADV_POPULATE_WRITE, Linux 5.14): one call instead of a fault per
    /// page. Advisory: does nothing where unsupported.
    void prefault(void* addr, std::size_t size);
    /// Returns reserved address space to the OS.
    void unmap(void* addr, std::size_t size);
    /// Maps zeroed read/write memory for off-heap metadata. Pages become
    /// resident as they are first written, not here.
    void* map_metadata(std::size_t size);

    static std::size_t os_page_size();

    /// Count of failed release() calls (a failed madvise is never fatal).
    std::uint64_t release_failures() const { return release_failures_.load(std::memory_order_relaxed); }

    /// Starts `body` on `thread`. Returns 0, or the error (EAGAIN, ...) with
    /// `thread` left empty. Never throws.
    template <class F>
    int start_thread(std::thread& thread, F&& body) {
        if (should_fail(OsCall::kStartThread)) return EAGAIN;
        try {
            thread = std::thread(std::forward<F>(body));
            return 0;
        } catch (const std::system_error& e) {
            return e.code().value() != 0 ? e.code().value() : EAGAIN;
        } catch (const std::bad_alloc&) {
            return ENOMEM;
        }
    }
    /// start_thread() for a thread the heap can do without for a while (mark
    /// helper, background sweeper, scavenger): on failure, the first time
    /// (`reported` false) writes "gcheap: cannot start the <role> thread:
    /// <error>; <consequence>" to stderr, and the caller retries later. True if started.
    template <class F>
    bool start_optional_thread(std::thread& thread, F&& body, const char* role, const char* consequence,
                               bool& reported) {
        const int error = start_thread(thread, std::forward<F>(body));
        if (error != 0 && !reported) {
            report_thread_failure(role, error, consequence);
            reported = true;
        }
        return error == 0;
    }

    /// Test hook: the `nth` next call of `kind` (1 = the very next) fails;
    /// with `sticky`, so does every later call until clear_faults_for_testing().
    void fail_after_for_testing(OsCall kind, std::uint64_t nth, bool sticky = false);
    void clear_faults_for_testing();

private:
    bool should_fail(OsCall kind);
    static void report_thread_failure(const char* role, int error, const char* consequence);

    std::atomic<std::uint64_t> release_failures_{0};
    std::atomic<bool> prefault_supported_{true};
    std::atomic<std::uint64_t> fail_countdown_[static_cast<int>(OsCall::kCount)] = {};
    std::atomic<bool> fail_sticky_[static_cast<int>(OsCall::kCount)] = {};
};

}  // namespace gcheap::detail
