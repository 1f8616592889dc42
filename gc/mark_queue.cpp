// Mark stack storage; see mark_queue.hpp.
#include "gc/mark_queue.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <cstring>

namespace gcheap::detail {

MarkStack::~MarkStack() {
    if (items_ != nullptr) ::munmap(items_, capacity_ * sizeof(MarkRange));
}

bool MarkStack::grow() {
    std::size_t capacity = capacity_ == 0 ? 4096 : capacity_ * 2;
    if (limit_ != 0) capacity = std::min(capacity, limit_);
    if (capacity <= capacity_) return false;
    void* memory = ::mmap(nullptr, capacity * sizeof(MarkRange), PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED) return false;
    auto* items = static_cast<MarkRange*>(memory);
    if (items_ != nullptr) {
        std::memcpy(items, items_, size_ * sizeof(MarkRange));
        ::munmap(items_, capacity_ * sizeof(MarkRange));
    }
    items_ = items;
    capacity_ = capacity;
    return true;
}

std::size_t MarkStack::take_bottom(MarkRange* out, std::size_t count) {
    count = std::min(count, size_);
    std::memcpy(out, items_, count * sizeof(MarkRange));
    std::memmove(items_, items_ + count, (size_ - count) * sizeof(MarkRange));
    size_ -= count;
    return count;
}

}  // namespace gcheap::detail
