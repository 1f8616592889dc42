// gcheap — a garbage-collected heap for C++, built the way Go's runtime
// manages memory. This header brings in the whole public API.
//
// All functions operate on the process-wide default heap, which is created on
// first use and lives until the process exits. They are thread-safe.
#pragma once

#include <gcheap/mem_stats.hpp>

#include <cstddef>
#include <new>
#include <type_traits>
#include <utility>

namespace gcheap {

/// Allocates `bytes` of zeroed memory that the collector scans conservatively
/// for pointers. Objects up to 32 KiB are rounded up to one of Go's 68 size
/// classes; larger ones get their own run of 8 KiB pages.
///
/// The result is aligned to 8 bytes, and to the largest power of two (up to
/// 8192) dividing the object's size-class size. `alloc(0)` returns one shared
/// non-null address, as Go does for zero-size objects; never write to it.
///
/// @throws std::bad_alloc if the size cannot be satisfied (too large, or the
///         OS refuses memory). The heap stays usable afterwards.
void* alloc(std::size_t bytes);

/// As alloc(), but the object is never scanned: it must hold no pointers to
/// gcheap objects that need to keep them alive. Pointer-free objects smaller
/// than 16 bytes are packed together into 16-byte blocks (Go's tiny allocator).
void* alloc_noscan(std::size_t bytes);

/// Allocates zeroed, scanned memory of `bytes` aligned to `alignment` (a power
/// of two). Alignments up to 8192 are served from size classes or page runs
/// without waste beyond the class rounding; larger alignments throw
/// std::bad_alloc.
void* alloc_aligned(std::size_t bytes, std::size_t alignment);

/// Constructs a T in scanned gcheap memory, honouring alignof(T).
///
/// The collector does not run destructors: T's destructor runs only if the
/// program calls it. Prefer types whose destructors need not run.
template <class T, class... Args>
T* make(Args&&... args) {
    static_assert(!std::is_array_v<T>, "gcheap::make<T[]> is not supported; allocate an array with alloc()");
    void* memory = alignof(T) <= alignof(std::max_align_t) && alignof(T) <= 8
                       ? alloc(sizeof(T))
                       : alloc_aligned(sizeof(T), alignof(T));
    return ::new (memory) T(std::forward<Args>(args)...);
}

}  // namespace gcheap
