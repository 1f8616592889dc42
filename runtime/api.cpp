// The public gcheap:: functions: thin wrappers over the default heap.
#include <gcheap/gcheap.hpp>

#include "runtime/heap.hpp"

namespace gcheap {

void* alloc(std::size_t bytes) { return detail::default_heap().alloc(bytes, false); }

void* alloc_noscan(std::size_t bytes) { return detail::default_heap().alloc(bytes, true); }

void* alloc_aligned(std::size_t bytes, std::size_t alignment) {
    return detail::default_heap().alloc_aligned(bytes, alignment, false);
}

MemStats read_mem_stats() { return detail::default_heap().read_mem_stats(); }

}  // namespace gcheap
