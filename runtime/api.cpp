// The public gcheap:: functions: thin wrappers over the default heap.
#include <gcheap/gcheap.hpp>

#include "gc/collector.hpp"
#include "runtime/heap.hpp"
#include "runtime/heap_map.hpp"
#include "runtime/scavenger.hpp"

namespace gcheap {

void* alloc(std::size_t bytes) { return detail::default_heap().alloc(bytes, false); }

void* alloc_noscan(std::size_t bytes) { return detail::default_heap().alloc(bytes, true); }

void* alloc_aligned(std::size_t bytes, std::size_t alignment) {
    return detail::default_heap().alloc_aligned(bytes, alignment, false);
}

MemStats read_mem_stats() { return detail::default_heap().read_mem_stats(); }

void collect() {
    detail::Heap& heap = detail::default_heap();
    heap.register_current_thread();  // the caller's stack is a root like any other
    heap.collector().collect();
}

void free_os_memory() {
    detail::Heap& heap = detail::default_heap();
    heap.register_current_thread();
    heap.collector().collect();
    heap.release_free_pages();
}

void add_roots(const void* begin, const void* end) { detail::default_heap().collector().roots().add(begin, end); }

void remove_roots(const void* begin, const void* end) {
    detail::default_heap().collector().roots().remove(begin, end);
}

void register_current_thread() { detail::default_heap().register_current_thread(); }

void unregister_current_thread() { detail::default_heap().unregister_current_thread(); }

ThreadScope::ThreadScope() : registered_here_(!detail::default_heap().is_current_thread_registered()) {
    if (registered_here_) register_current_thread();
}

ThreadScope::~ThreadScope() {
    // The thread may have unregistered itself inside the scope: not an error here.
    if (registered_here_ && detail::default_heap().is_current_thread_registered()) unregister_current_thread();
}

void set_finalizer(void* object, void (*finalizer)(void*)) {
    detail::default_heap().collector().finalizers().set(object, finalizer);
}

bool set_background_scavenger(bool enabled) { return detail::default_heap().scavenger().set_enabled(enabled); }

int set_gc_percent(int percent) { return detail::default_heap().collector().pacer().set_gc_percent(percent); }

std::int64_t set_memory_limit(std::int64_t limit) {
    return detail::default_heap().collector().pacer().set_memory_limit(limit);
}

std::string set_debug_modes(std::string_view modes) {
    const DebugOptions next = DebugOptions::parse(modes);  // throws before anything changes
    return detail::default_heap().set_debug(next).to_string();
}

FragmentationReport fragmentation_report() { return detail::default_heap().fragmentation_report(); }

void write_heap_map(const char* path) { detail::write_heap_map(detail::default_heap(), path); }

bool is_sparse(const void* object, double threshold) { return detail::default_heap().is_sparse(object, threshold); }

void* detail::relocate_object(const void* object, std::size_t type_size) {
    return detail::default_heap().relocate(object, type_size);
}

}  // namespace gcheap
