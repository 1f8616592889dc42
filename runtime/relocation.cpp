// Relocation help: what the heap knows about one object, and copying it to a
// fresh slot of the same span class (include/gcheap/relocation.hpp).
//
// The collector never moves objects; a program that holds every pointer to
// an object can. Heap::relocate allocates through the ordinary allocator, so
// copies made one after another fill the thread's current span of the class
// — usually a partial span from the central list — and the spans the
// originals pinned are freed by the next collection once nothing points to
// the originals.
//
// Locking: object_info() takes no lock. It reads the page map (acquire loads)
// and fields fixed while the span is in use; the caller holds a pointer to a
// live object, so the span cannot be freed under it. alloc_count is read
// relaxed: it is as of the last sweep, plus allocations since.
#include "runtime/heap.hpp"

#include <gcheap/gcheap.hpp>

#include <fmt/format.h>

#include <cstring>
#include <stdexcept>

namespace gcheap::detail {

bool Heap::object_info(const void* addr, ObjectInfo& out) const {
    ObjectRef ref;
    if (!find_object(reinterpret_cast<std::uintptr_t>(addr), ref)) return false;  // not an allocated object
    const Span* span = ref.span;
    out.base = ref.base;
    out.size = span->elem_size;
    out.requested = span->is_large() ? span->requested_size : span->elem_size;
    out.size_class = span->size_class;
    out.noscan = span->noscan;
    out.span_live = span->alloc_count.load(std::memory_order_relaxed);
    out.span_slots = span->nelems;
    return true;
}

bool Heap::is_sparse(const void* object, double threshold) const {
    if (!(threshold >= 0.0 && threshold <= 1.0)) {
        throw std::invalid_argument(fmt::format("gcheap::is_sparse: threshold {} is not in [0, 1]", threshold));
    }
    ObjectInfo info;
    if (!object_info(object, info)) {
        throw std::invalid_argument(
            fmt::format("gcheap::is_sparse: {} does not point into an object of the heap", fmt::ptr(object)));
    }
    if (info.size_class == 0) return false;  // a large object fills its span
    return static_cast<double>(info.span_live) < threshold * static_cast<double>(info.span_slots);
}

void* Heap::relocate(const void* object, std::size_t type_size) {
    ObjectInfo info;
    if (!object_info(object, info)) {
        throw std::invalid_argument(
            fmt::format("gcheap::relocate: {} does not point into an object of the heap", fmt::ptr(object)));
    }
    if (type_size > info.size) {
        throw std::invalid_argument(
            fmt::format("gcheap::relocate: a {}-byte type does not fit the {}-byte object at {}", type_size, info.size,
                        fmt::ptr(object)));
    }
    void* copy = nullptr;
    std::size_t bytes = 0;
    if (info.noscan && info.size_class == kTinySizeClass && type_size < kTinySize) {
        // A tiny object (possibly inside a shared 16-byte block): back to the tiny allocator.
        copy = alloc(type_size, true);
        bytes = type_size;
    } else if (info.base != reinterpret_cast<std::uintptr_t>(object)) {
        throw std::invalid_argument(
            fmt::format("gcheap::relocate: {} points inside an object, not at its start", fmt::ptr(object)));
    } else if (info.size_class == 0) {
        copy = alloc(info.requested, info.noscan);  // the same number of pages
        bytes = info.requested;
    } else {
        // The same span class, even where a plain alloc() of this size would
        // choose another (8-byte noscan objects go to the tiny allocator).
        copy = alloc_small(current_cache(), span_class(info.size_class, info.noscan));
        bytes = info.size;
    }
    std::memcpy(copy, object, bytes);
    gcheap::keep_alive(object);  // the original stays reachable until the copy is complete
    return copy;
}

}  // namespace gcheap::detail
