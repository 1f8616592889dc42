// DataSegments: the writable data segments (.data, .bss) of the executable and
// of every loaded shared object, as candidate root ranges (Go's data and bss
// roots, Boehm's GC_register_dynamic_libraries); current_thread_tls_ranges():
// the calling thread's TLS blocks, for `thread_local` variables.
//
// What is enumerated: every PT_LOAD segment with PF_W of every object that
// dl_iterate_phdr reports, at [dlpi_addr + p_vaddr, + p_memsz) (p_memsz, not
// p_filesz: .bss is the zero-filled tail), minus that object's PT_GNU_RELRO
// range. RELRO (.data.rel.ro, .got, .init_array, vtables) is relocated by the
// loader and then made read-only, so it cannot hold a pointer to an object
// allocated at run time; a `const` object that is initialised at run time is
// not placed there but in .bss. Boehm excludes RELRO too. Bounds are
// word-aligned inwards (conservative scanning reads aligned words only);
// ranges are sorted by address and never overlap.
//
// Invariants and rules for the owner (the collector):
//   - dl_iterate_phdr, and so refresh() and current_thread_tls_ranges(), must
//     never be called with the world stopped: it takes the loader's lock, and
//     a stopped thread can be holding it — inside dlopen or dlclose, or in
//     C++ exception unwinding, which calls dl_iterate_phdr to find unwind
//     tables. Call refresh() before stopping the world; for_each() reads only
//     the snapshot and is safe with the world stopped.
//   - A snapshot can go stale. A dlclose between refresh() and the scan
//     unmaps the object's segments, and scanning them would fault: the
//     collector validates the ranges with the world stopped before scanning
//     them (not done here). An object dlopen'd between refresh() and the
//     stop is missing from the snapshot for that cycle, so a pointer stored
//     in its globals in that window is not seen; refreshing as late as
//     possible before each stop keeps the window short, it does not close it.
//   - refresh() rebuilds only when glibc's load counters (dlpi_adds,
//     dlpi_subs) changed since the snapshot was built. Both are read in the
//     same dl_iterate_phdr pass that would rebuild it, under the loader's
//     lock, so the counters a snapshot records always describe the list it
//     was built from. Where the counters are missing (dl_phdr_info too
//     short), every refresh() rebuilds.
//   - Not synchronised: the owner serialises refresh() against for_each(),
//     bytes() and count().
//
// TLS: each thread calls current_thread_tls_ranges() when it registers. It
// covers the modules whose TLS block is allocated in that thread at that
// moment (every module loaded at start-up: static TLS). The TLS block of a
// module dlopen'd after the thread registered is not covered, nor one that
// glibc allocates lazily (dynamic TLS) only after registration.
#pragma once

#include "runtime/os_memory.hpp"  // AddressRange

#include <cstddef>
#include <cstdint>
#include <vector>

namespace gcheap::detail {

class DataSegments {
public:
    /// Re-reads the loaded objects' program headers unless nothing was
    /// loaded or unloaded since the last refresh(). Allocates; never call it
    /// with the world stopped. On std::bad_alloc the previous snapshot stays
    /// and the next refresh() rebuilds.
    void refresh();

    /// f(begin, end) for each range, in ascending address order — the same
    /// shape as RootSet::for_each_locked. Reads only the snapshot.
    template <class F>
    void for_each(F&& f) const {
        for (const AddressRange& range : ranges_) f(range.begin, range.end);
    }
    std::size_t bytes() const { return bytes_; }
    std::size_t count() const { return ranges_.size(); }

private:
    struct LoadCounters {
        unsigned long long adds;
        unsigned long long subs;
    };

    std::vector<AddressRange> ranges_;
    std::vector<AddressRange> rebuilt_;  // refresh() builds here, then swaps: both keep their capacity
    std::size_t bytes_ = 0;
    LoadCounters counters_{0, 0};
    bool counters_valid_ = false;  // false before the first refresh() and when glibc gives no counters
};

/// Replaces the contents of `out` with the calling thread's TLS blocks,
/// [dlpi_tls_data, dlpi_tls_data + p_memsz of PT_TLS) for every module whose
/// block is allocated in this thread, word-aligned inwards and sorted.
/// Allocates and takes the loader's lock: never call it with the world stopped.
void current_thread_tls_ranges(std::vector<AddressRange>& out);

}  // namespace gcheap::detail
