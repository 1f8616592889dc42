// MarkStack: the explicit stack of grey ranges the marker works through
// (Go's gcWork buffers, Boehm's mark stack).
//
// Marking never recurses on the C stack: a grey object is pushed as the range
// of words to scan, and large ranges are scanned in chunks, the rest pushed
// back. The stack grows by doubling, with memory mapped directly from the OS
// (never malloc: the world is stopped while marking, and a suspended thread
// may hold the C allocator's locks).
//
// Overflow: when the stack cannot grow (the OS refuses, or the configured
// limit is reached), push() returns false and the caller records overflow;
// the object stays marked but unscanned, and the marker rescans the heap for
// such objects afterwards (Boehm's overflow-and-rescan). Marking therefore
// always completes, in bounded memory.
//
// Not thread-safe: each mark worker owns one; sharing goes through
// Marker's pool. Items live in [bottom_, top_): push and pop work at the top
// (depth first), take_bottom() hands the oldest items — usually the largest
// pending subgraphs — to other workers in O(count), without moving the rest;
// the live items move down only when the top reaches the end.
#pragma once

#include <cstddef>
#include <cstdint>

namespace gcheap::detail {

struct MarkRange {
    std::uintptr_t begin;
    std::uintptr_t end;
};

class MarkStack {
public:
    MarkStack() = default;
    ~MarkStack();
    MarkStack(const MarkStack&) = delete;
    MarkStack& operator=(const MarkStack&) = delete;

    bool push(MarkRange range) {
        if (top_ == capacity_ && !make_room()) return false;
        items_[top_++] = range;
        return true;
    }
    bool pop(MarkRange& out) {
        if (top_ == bottom_) return false;
        --top_;
        std::uintptr_t begin = items_[top_].begin;
        std::uintptr_t end = items_[top_].end;
        // Two scalar loads, never one 16-byte load: push() stores the words
        // separately, and a wide load of a just-pushed item (every node of a
        // list) misses store forwarding and stalls; the compiler otherwise
        // widens the load when the item is copied on whole.
        asm("" : "+r"(begin), "+r"(end));
        out = {begin, end};
        return true;
    }
    std::size_t size() const { return top_ - bottom_; }
    bool empty() const { return top_ == bottom_; }
    void clear() { top_ = bottom_ = 0; }
    /// Moves the oldest `count` items (the bottom of the stack) out to `out`.
    std::size_t take_bottom(MarkRange* out, std::size_t count);

    /// Caps the number of entries (0: no cap); used to test overflow handling.
    void set_limit(std::size_t max_entries) { limit_ = max_entries; }
    /// Bytes mapped for the stack (MemStats.GCSys).
    std::size_t sys_bytes() const { return capacity_ * sizeof(MarkRange); }

private:
    /// Moves the live items down over taken ones, or grows; false on overflow.
    bool make_room();
    bool compact();
    bool grow();

    MarkRange* items_ = nullptr;
    std::size_t bottom_ = 0;
    std::size_t top_ = 0;
    std::size_t capacity_ = 0;
    std::size_t limit_ = 0;
};

}  // namespace gcheap::detail
