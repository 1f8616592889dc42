// Registered root ranges; see roots.hpp.
#include "gc/roots.hpp"

#include "runtime/sync.hpp"

#include <cstdio>
#include <stdexcept>
#include <string>

namespace gcheap::detail {

namespace {

std::string describe(std::uintptr_t begin, std::uintptr_t end) {
    char buffer[80];
    std::snprintf(buffer, sizeof buffer, "[%#lx, %#lx)", static_cast<unsigned long>(begin),
                  static_cast<unsigned long>(end));
    return buffer;
}

}  // namespace

void RootSet::add(const void* begin, const void* end) {
    const auto b = reinterpret_cast<std::uintptr_t>(begin);
    const auto e = reinterpret_cast<std::uintptr_t>(end);
    if (b > e) throw std::invalid_argument("gcheap::add_roots: begin is above end in " + describe(b, e));
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
    throw std::invalid_argument("gcheap::remove_roots: the range " + describe(b, e) +
                                " was never added (ranges are removed with the exact bounds they were added with)");
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
