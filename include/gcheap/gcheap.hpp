// gcheap — a garbage-collected heap for C++, built the way Go's runtime
// manages memory. This header brings in the whole public API.
//
// All functions operate on the process-wide default heap, which is created on
// first use and lives until the process exits. They are thread-safe.
#pragma once

#include <gcheap/fragmentation.hpp>
#include <gcheap/mem_stats.hpp>
#include <gcheap/options.hpp>
#include <gcheap/partition.hpp>
#include <gcheap/profiler.hpp>
#include <gcheap/relocation.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
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

/// runtime.GC(): runs a full collection and returns after sweeping has
/// finished, so that read_mem_stats() right after it is exact. The calling
/// thread is registered if it was not. Safe from any thread, finalizers included.
void collect();

/// debug.FreeOSMemory(): a full collection, then every free page is returned
/// to the OS (madvise(MADV_DONTNEED)); HeapReleased grows accordingly.
void free_os_memory();

/// Registers [begin, end) as a root range, scanned conservatively at every
/// collection. Ranges may overlap, nest or repeat; each registration is
/// scanned. Throws std::invalid_argument if begin > end.
void add_roots(const void* begin, const void* end);
/// Removes one registration with exactly these bounds; throws
/// std::invalid_argument, naming the range, if there is none.
void remove_roots(const void* begin, const void* end);

/// Boehm's GC_MALLOC_UNCOLLECTABLE: zeroed, scanned gcheap memory that is a
/// root until free_uncollectable(): the object is never collected, and what
/// it points to stays alive. For storage that the program owns explicitly
/// but that holds gcheap pointers (gcheap::traceable_allocator). `alignment`
/// as for alloc_aligned(). Each call returns a distinct object, even for 0 bytes.
/// @throws std::bad_alloc as alloc() does.
void* alloc_uncollectable(std::size_t bytes, std::size_t alignment = 8);
/// Ends the registration of an object from alloc_uncollectable(): it is then
/// an ordinary object, freed by a later collection once unreachable. nullptr
/// does nothing. Throws std::invalid_argument, naming the address, for any
/// other pointer that alloc_uncollectable() did not return or that was freed.
void free_uncollectable(void* object);

/// Fibers and coroutines: registers [lo, hi) as a stack that registered
/// threads may switch to (ucontext, boost.context, a coroutine library's
/// stacks). While registered, a thread stopped on it is scanned from its
/// stack pointer to `hi` (and its own thread stack whole), and when no thread
/// runs on it, the whole stack is scanned, because a suspended fiber's frames
/// are live. Register a stack before any thread switches to it, remove it
/// after the last switch away. Throws std::invalid_argument if lo >= hi or if
/// the stack overlaps a registered one.
void add_stack(const void* lo, const void* hi);
/// Removes a stack registered with exactly these bounds; throws
/// std::invalid_argument, naming it, if there is none.
void remove_stack(const void* lo, const void* hi);

/// Registers the calling thread: its stack and registers are scanned
/// conservatively at every collection. A thread is registered automatically
/// when it first allocates or collects; register a thread explicitly when it
/// holds gcheap pointers without allocating. Idempotent.
void register_current_thread();
/// Unregisters the calling thread (its stack stops being a root). Throws
/// std::logic_error if the thread is not registered.
void unregister_current_thread();

/// Registers the calling thread for the scope's lifetime (RAII). Scopes nest:
/// only the scope that registered the thread unregisters it, so a scope
/// inside an already registered thread (or an inner scope) leaves the
/// registration as it found it.
class ThreadScope {
public:
    ThreadScope();
    ~ThreadScope();
    ThreadScope(const ThreadScope&) = delete;
    ThreadScope& operator=(const ThreadScope&) = delete;

private:
    bool registered_here_;
};

/// runtime.SetFinalizer: once `object` (the start of a gcheap object) is
/// unreachable, `finalizer(object)` runs once on the finalizer thread; the
/// object is kept alive for that call and freed by a later collection.
/// nullptr clears. Throws std::invalid_argument for a pointer that is not the
/// start of an allocated object, or if a finalizer is already set, and
/// std::system_error (registering nothing) if the finalizer thread cannot start.
void set_finalizer(void* object, void (*finalizer)(void*));

/// runtime.KeepAlive: keeps `object` reachable up to this point.
inline void keep_alive(const void* object) { asm volatile("" : : "g"(object) : "memory"); }

/// debug.SetGCPercent: returns the previous value; a negative value disables
/// automatic collection (collect() still works).
int set_gc_percent(int percent);

/// Starts or stops the background scavenger, which returns free pages to the
/// OS at about 1% of one CPU (GCHEAP_SCAVENGER=off at start-up). Returns the
/// previous setting. free_os_memory() works either way.
bool set_background_scavenger(bool enabled);

/// debug.SetMemoryLimit: a soft limit on Sys - HeapReleased, in bytes; the
/// collector runs more often as it nears. Returns the previous limit; a
/// negative argument only queries it.
std::int64_t set_memory_limit(std::int64_t limit);

/// Sets the self-check modes of GCHEAP_DEBUG at run time, e.g.
/// "checkmark,verify" or "clobberfree,torture=1000"; "" or "off" turns them
/// off (docs/debugging.md). Returns the previous setting in the same syntax.
/// Throws std::invalid_argument, changing nothing, for an unknown mode.
std::string set_debug_modes(std::string_view modes);

}  // namespace gcheap

// Standard-library allocators over the functions above (container storage in
// gcheap memory). Included last: it uses the declarations of this header.
#include <gcheap/allocator.hpp>
