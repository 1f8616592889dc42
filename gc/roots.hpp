// RootSet: memory ranges the user registers with add_roots(), scanned
// conservatively at every collection (Boehm's GC_add_roots, Go's data/bss roots).
//
// Semantics (documented in docs/design.md, "Roots"):
//   - a range [begin, end) may be registered several times, and ranges may
//     overlap or nest; each registration is scanned on its own (marking is
//     idempotent, so this costs only time);
//   - remove(begin, end) removes one registration with exactly these bounds
//     and throws std::invalid_argument if there is none — a range is never
//     split or trimmed;
//   - begin > end is rejected with std::invalid_argument; empty ranges are
//     accepted and scan nothing.
// Locking: mutex() guards the set. The collector holds it from before it
// stops the world until after it restarts it, so that no suspended thread can
// be holding it (registration allocates with malloc).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>

namespace gcheap::detail {

class RootSet {
public:
    void add(const void* begin, const void* end);
    void remove(const void* begin, const void* end);

    std::mutex& mutex() { return mu_; }
    template <class F>
    void for_each_locked(F&& f) const {
        for (const auto& [begin, end] : ranges_) f(begin, end);
    }
    std::size_t bytes_locked() const;
    std::size_t count();

private:
    std::mutex mu_;
    std::multimap<std::uintptr_t, std::uintptr_t> ranges_;  // begin -> end
};

}  // namespace gcheap::detail
