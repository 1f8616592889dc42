// Mark stack storage; see mark_queue.hpp.
#include "gc/mark_queue.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <cstring>

namespace gcheap::detail {

MarkStack::~MarkStack() {
    if (items_ != nullptr) ::munmap(items_, capacity_ * sizeof(MarkRange));
}

bool MarkStack::make_room() {
    // At least half taken from the bottom: moving the rest down is cheaper
    // than growing. Otherwise grow, and compact only if growing is refused.
    if (bottom_ > 0 && bottom_ * 2 >= capacity_) return compact();
    return grow() || (bottom_ > 0 && compact());
}

bool MarkStack::compact() {
    std::memmove(items_, items_ + bottom_, (top_ - bottom_) * sizeof(MarkRange));
    top_ -= bottom_;
    bottom_ = 0;
    return true;
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
        std::memcpy(items, items_ + bottom_, (top_ - bottom_) * sizeof(MarkRange));
        ::munmap(items_, capacity_ * sizeof(MarkRange));
    }
    top_ -= bottom_;
    bottom_ = 0;
    items_ = items;
    capacity_ = capacity;
    return true;
}

std::size_t MarkStack::take_bottom(MarkRange* out, std::size_t count) {
    count = std::min(count, size());
    std::memcpy(out, items_ + bottom_, count * sizeof(MarkRange));
    bottom_ += count;
    if (bottom_ == top_) bottom_ = top_ = 0;
    return count;
}

}  // namespace gcheap::detail
