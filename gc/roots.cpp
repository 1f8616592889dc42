// Registered root ranges; see roots.hpp.
#include "gc/roots.hpp"

#include "runtime/os_memory.hpp"
#include "runtime/sync.hpp"

#include <cstdio>
#include <stdexcept>
#include <string>

namespace gcheap::detail {


void RootSet::add(const void* begin, const void* end) {
    const auto b = reinterpret_cast<std::uintptr_t>(begin);
    const auto e = reinterpret_cast<std::uintptr_t>(end);
    if (b > e) throw std::invalid_argument("gcheap::add_roots: begin is above end in " + describe_range(b, e));
    MutatorLock<> lock(mu_);
    ranges_.emplace(b, e);
}

void RootSet::remove(const void* begin, const void* end) {
    const auto b = reinterpret_cast<std::uintptr_t>(begin);
    const auto e = reinterpret_cast<std::uintptr_t>(end);
    MutatorLock<> lock(mu_);
    auto [first, last] = ranges_.equal_range(b);
    for (auto it = first; it != last; ++it) {
        if (it->second == e) {
            ranges_.erase(it);
            return;
        }
    }
    throw std::invalid_argument("gcheap::remove_roots: the range " + describe_range(b, e) +
                                " was never added (ranges are removed with the exact bounds they were added with)");
}

void RootSet::add_object(const void* base) {
    MutatorLock<> lock(mu_);
    objects_.insert(reinterpret_cast<std::uintptr_t>(base));
}

void RootSet::remove_object(const void* base) {
    MutatorLock<> lock(mu_);
    if (objects_.erase(reinterpret_cast<std::uintptr_t>(base)) == 0) {
        char buffer[160];
        std::snprintf(buffer, sizeof buffer,
                      "gcheap::free_uncollectable: %p is not an uncollectable object (not returned by "
                      "alloc_uncollectable, or freed already)",
                      base);
        throw std::invalid_argument(buffer);
    }
}

std::size_t RootSet::object_count() {
    MutatorLock<> lock(mu_);
    return objects_.size();
}

std::size_t RootSet::bytes_locked() const {
    std::size_t bytes = 0;
    for (const auto& [begin, end] : ranges_) bytes += end - begin;
    return bytes;
}

std::size_t RootSet::count() {
    MutatorLock<> lock(mu_);
    return ranges_.size();
}

}  // namespace gcheap::detail
