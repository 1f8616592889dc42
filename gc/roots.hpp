// RootSet: memory ranges the user registers with add_roots(), scanned
// conservatively at every collection (Boehm's GC_add_roots, Go's data/bss
// roots), and uncollectable objects: gcheap objects that are roots until they
// are freed explicitly (Boehm's GC_MALLOC_UNCOLLECTABLE, the storage of
// gcheap::traceable_allocator).
//
// Semantics (documented in docs/design.md, "Roots"):
//   - a range [begin, end) may be registered several times, and ranges may
//     overlap or nest; each registration is scanned on its own (marking is
//     idempotent, so this costs only time);
//   - remove(begin, end) removes one registration with exactly these bounds
//     and throws std::invalid_argument if there is none — a range is never
//     split or trimmed;
//   - begin > end is rejected with std::invalid_argument; empty ranges are
//     accepted and scan nothing;
//   - an uncollectable object is registered once, by the base address its
//     allocation returned, and stays marked at every collection (so its
//     referents stay alive too) until remove_object(); removing an address
//     that is not registered throws std::invalid_argument and changes nothing.
// Locking: mutex() guards the set. The collector holds it from before it
// stops the world until after it restarts it, so that no suspended thread can
// be holding it (registration allocates with malloc).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <unordered_set>

namespace gcheap::detail {

class RootSet {
public:
    void add(const void* begin, const void* end);
    void remove(const void* begin, const void* end);
    void add_object(const void* base);
    void remove_object(const void* base);

    std::mutex& mutex() { return mu_; }
    template <class F>
    void for_each_locked(F&& f) const {
        for (const auto& [begin, end] : ranges_) f(begin, end);
    }
    template <class F>
    void for_each_object_locked(F&& f) const {
        for (std::uintptr_t base : objects_) f(base);
    }
    std::size_t bytes_locked() const;
    std::size_t count();
    std::size_t object_count();

private:
    std::mutex mu_;
    std::multimap<std::uintptr_t, std::uintptr_t> ranges_;  // begin -> end
    std::unordered_set<std::uintptr_t> objects_;            // uncollectable object bases
};

}  // namespace gcheap::detail
