// gcheap — standard-library allocators: container storage in gcheap memory,
// so that the pointers a container holds are seen by the collector (Boehm
// GC's gc_allocator and traceable_allocator). Included by <gcheap/gcheap.hpp>.
//
// Which one to choose:
//
//   gcheap::allocator<T>             the container object itself is seen by the
//                                    collector: a local of a registered thread,
//                                    a global, static or thread_local, memory
//                                    registered with add_roots(), or a field of
//                                    a gcheap object.
//   gcheap::traceable_allocator<T>   it is not: a container inside a malloc'd or
//                                    new'd object, in a std::function capture's
//                                    heap storage, in a global when globals are
//                                    not scanned (GCHEAP_SCAN_GLOBALS=off), or
//                                    reached only through such memory.
//
//   std::vector<Node*, gcheap::allocator<Node*>> nodes;   // a local: nodes stay alive
//   struct Cache { std::unordered_map<long, Node*, std::hash<long>, std::equal_to<long>,
//                      gcheap::traceable_allocator<std::pair<const long, Node*>>> map; };
//   Cache* cache = new Cache;                             // in malloc memory: still alive
//
// Node containers (std::map, std::list, std::unordered_map, std::deque's
// blocks) rebind the allocator to their node types, so every node, bucket
// array and block map is in gcheap memory too. What the elements own through
// std::allocator is not: std::string's buffer, std::function's captured state,
// std::shared_ptr's control block, a nested container's storage — anything
// allocated with std::allocator, malloc or new is never scanned, so a gcheap
// pointer kept only there does not keep its object alive. Give nested
// containers a gcheap allocator too, and keep pointers out of the rest.
//
// A thread that holds such a container on its stack, or takes pointers out
// of one, must be registered, as for any gcheap pointer: a thread registers
// when it first allocates, so a thread that only reads (a queue's consumer)
// calls register_current_thread() or holds a ThreadScope.
#pragma once

#include <gcheap/gcheap.hpp>

#include <cstddef>
#include <limits>
#include <new>
#include <type_traits>

namespace gcheap {

/// True for types whose objects hold no pointers to gcheap objects: arithmetic
/// types and enums. gcheap::allocator gives them never-scanned storage
/// (alloc_noscan), so that a number that looks like an address keeps nothing
/// alive and a large buffer costs the collector nothing. Specialize it as
/// std::true_type for a pointer-free type of your own (a struct of numbers).
template <class T>
struct is_pointer_free : std::bool_constant<std::is_arithmetic_v<T> || std::is_enum_v<T>> {};
template <class T>
inline constexpr bool is_pointer_free_v = is_pointer_free<T>::value;

namespace detail {

/// n * sizeof(T), or std::bad_array_new_length (a std::bad_alloc) if it overflows.
template <class T>
std::size_t container_bytes(std::size_t n) {
    if (n > std::numeric_limits<std::size_t>::max() / sizeof(T)) throw std::bad_array_new_length();
    return n * sizeof(T);
}

}  // namespace detail

/// Boehm's gc_allocator: storage in collected gcheap memory. The storage is
/// scanned conservatively (unless is_pointer_free_v<T>), so what the elements
/// point to stays alive for as long as the storage is reachable, and the
/// collector reclaims the storage once nothing points to it any more.
///
/// The container object must be seen by the collector (see the top of this
/// file): its storage is reachable only through it. A container with this
/// allocator inside malloc'd memory loses not only its elements' objects but
/// its own storage, which is then reused under it; use traceable_allocator.
///
/// deallocate() does nothing today: the storage a container gives back (after
/// growing, on erase, in its destructor) is garbage, freed by a later
/// collection. It will free explicitly once gcheap has an explicit free.
/// A container that is never destroyed (inside a gcheap object that is
/// collected) has its storage reclaimed too, but no destructor runs: what
/// its elements own elsewhere (a long std::string's buffer) leaks.
///
/// Storage is zeroed, aligned to alignof(T); over-aligned types (alignof(T) > 8)
/// come from alloc_aligned(), which is always scanned, and alignments above
/// 8192 throw std::bad_alloc. Stateless: all instances compare equal.
template <class T>
class allocator {
public:
    using value_type = T;
    using size_type = std::size_t;
    using difference_type = std::ptrdiff_t;
    using propagate_on_container_copy_assignment = std::true_type;
    using propagate_on_container_move_assignment = std::true_type;
    using propagate_on_container_swap = std::true_type;
    using is_always_equal = std::true_type;

    constexpr allocator() noexcept = default;
    template <class U>
    constexpr allocator(const allocator<U>&) noexcept {}

    /// Storage for n objects of type T (not constructed).
    /// @throws std::bad_array_new_length if n * sizeof(T) overflows,
    ///         std::bad_alloc if the heap cannot satisfy it.
    [[nodiscard]] T* allocate(std::size_t n) {
        const std::size_t bytes = detail::container_bytes<T>(n);
        if constexpr (alignof(T) > 8) return static_cast<T*>(alloc_aligned(bytes, alignof(T)));
        else if constexpr (is_pointer_free_v<T>) return static_cast<T*>(alloc_noscan(bytes));
        else return static_cast<T*>(alloc(bytes));
    }
    /// Does nothing (see above); the collector reclaims the storage.
    void deallocate(T*, std::size_t) noexcept {}
};

template <class T, class U>
constexpr bool operator==(const allocator<T>&, const allocator<U>&) noexcept {
    return true;
}

/// Boehm's traceable_allocator: storage that the container owns explicitly.
/// allocate() takes it from alloc_uncollectable() and deallocate() gives it
/// back with free_uncollectable(); in between it is a root, scanned at every
/// collection wherever the container object itself lives, so the elements'
/// objects stay alive while they are in the container. The storage is never
/// collected: a container that is never destroyed keeps it, and everything
/// it points to, for ever (like a leaked std::allocator container).
///
/// Costs more than allocator: each allocation and deallocation registers or
/// unregisters a root under a lock, and each block is scanned at every
/// collection. Pointer-free element types gain nothing from it; use
/// std::allocator for them. Storage is zeroed and aligned to alignof(T)
/// (at most 8192). Stateless: all instances compare equal.
template <class T>
class traceable_allocator {
public:
    using value_type = T;
    using size_type = std::size_t;
    using difference_type = std::ptrdiff_t;
    using propagate_on_container_copy_assignment = std::true_type;
    using propagate_on_container_move_assignment = std::true_type;
    using propagate_on_container_swap = std::true_type;
    using is_always_equal = std::true_type;

    constexpr traceable_allocator() noexcept = default;
    template <class U>
    constexpr traceable_allocator(const traceable_allocator<U>&) noexcept {}

    /// Storage for n objects of type T (not constructed), a root until deallocate().
    /// @throws std::bad_array_new_length if n * sizeof(T) overflows,
    ///         std::bad_alloc if the heap cannot satisfy it.
    [[nodiscard]] T* allocate(std::size_t n) {
        constexpr std::size_t alignment = alignof(T) > 8 ? alignof(T) : 8;
        return static_cast<T*>(alloc_uncollectable(detail::container_bytes<T>(n), alignment));
    }
    /// free_uncollectable(p): the storage becomes garbage, freed by a later
    /// collection. `p` must come from allocate() of a traceable_allocator
    /// (any instance) and not be deallocated yet; otherwise std::terminate.
    void deallocate(T* p, std::size_t) noexcept { free_uncollectable(p); }
};

template <class T, class U>
constexpr bool operator==(const traceable_allocator<T>&, const traceable_allocator<U>&) noexcept {
    return true;
}

}  // namespace gcheap
