// The public gcheap:: functions: thin wrappers over the default heap.
#include <gcheap/gcheap.hpp>

#include "gc/collector.hpp"
#include "runtime/heap.hpp"
#include "runtime/heap_map.hpp"
#include "runtime/scavenger.hpp"

#include <fmt/format.h>

#include <execinfo.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <system_error>

namespace gcheap {

namespace {

[[gnu::noinline]] void* alloc_on_new_default_heap(std::size_t bytes, bool noscan) {
    return detail::create_default_heap().alloc(bytes, noscan);
}

// The first allocation of the process creates the heap in a separate call,
// so that the fast path below needs no frame (see allocator.hpp).
inline void* alloc_on_default_heap(std::size_t bytes, bool noscan) {
    detail::Heap* heap = detail::g_default_heap.load(std::memory_order_acquire);
    if (heap == nullptr) [[unlikely]] return alloc_on_new_default_heap(bytes, noscan);
    return heap->alloc(bytes, noscan);
}

}  // namespace

// Aligned to a cache line: the fast path is short enough that where it
// starts within one matters. Placed 48 bytes into a line, gcheap::alloc(16)
// measured about 10 % slower than at 0 or 32 with the same instructions.
[[gnu::aligned(64)]] void* alloc(std::size_t bytes) { return alloc_on_default_heap(bytes, false); }

[[gnu::aligned(64)]] void* alloc_noscan(std::size_t bytes) { return alloc_on_default_heap(bytes, true); }

void* alloc_aligned(std::size_t bytes, std::size_t alignment) {
    return detail::default_heap().alloc_aligned(bytes, alignment, false);
}

MemStats read_mem_stats() { return detail::default_heap().read_mem_stats(); }

// The caller's stack is a root like any other: the thread registers, and
// the collection entry is this frame's, before registration's deeper calls
// leave anything below it (gc/threads.hpp).
void collect() {
    detail::run_as_collection_entry(
        [](void*) {
            detail::Heap& heap = detail::default_heap();
            heap.register_current_thread();
            heap.collector().collect();
        },
        nullptr);
}

void free_os_memory() {
    detail::run_as_collection_entry(
        [](void*) {
            detail::Heap& heap = detail::default_heap();
            heap.register_current_thread();
            heap.collector().collect();
            heap.release_free_pages();
        },
        nullptr);
}

void add_roots(const void* begin, const void* end) { detail::default_heap().collector().roots().add(begin, end); }

void remove_roots(const void* begin, const void* end) {
    detail::default_heap().collector().roots().remove(begin, end);
}

void* alloc_uncollectable(std::size_t bytes, std::size_t alignment) {
    detail::Heap& heap = detail::default_heap();
    // A zero-size request gets an object of its own: the shared zero-size
    // address cannot be registered once per caller.
    void* object = heap.alloc_aligned(bytes == 0 ? 1 : bytes, alignment, false);
    heap.collector().roots().add_object(object);
    return object;
}

void free_uncollectable(void* object) {
    if (object == nullptr) return;
    detail::default_heap().collector().roots().remove_object(object);
}

void add_stack(const void* lo, const void* hi) {
    detail::default_heap().collector().threads().add_stack(reinterpret_cast<std::uintptr_t>(lo),
                                                           reinterpret_cast<std::uintptr_t>(hi));
}

void remove_stack(const void* lo, const void* hi) {
    detail::default_heap().collector().threads().remove_stack(reinterpret_cast<std::uintptr_t>(lo),
                                                              reinterpret_cast<std::uintptr_t>(hi));
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

int set_mem_profile_rate(int bytes) { return detail::default_heap().set_mem_profile_rate(bytes); }

std::vector<MemProfileRecord> mem_profile() { return detail::default_heap().profiler().records(); }

double scale_heap_sample(double sampled, std::size_t size, int rate) {
    return detail::scale_sample(sampled, size, rate);
}

void write_heap_profile(const char* path) {
    std::FILE* out = std::fopen(path, "w");
    if (out == nullptr) {
        throw std::system_error(errno, std::generic_category(), fmt::format("gcheap::write_heap_profile: {}", path));
    }
    const bool written = detail::default_heap().profiler().write_legacy(out);
    const int error = errno;
    if (std::fclose(out) != 0 || !written) {
        throw std::system_error(written ? errno : error, std::generic_category(),
                                fmt::format("gcheap::write_heap_profile: {}", path));
    }
}

SparseSiteReport sparse_span_sites(double threshold) {
    return detail::default_heap().profiler().sparse_sites(threshold);
}

std::string to_text(const SparseSiteReport& report) {
    std::string out = fmt::format(
        "allocation sites with sampled live objects on spans under {:.0f}% full (profile rate {} B): {} sites, ~{} B\n",
        report.threshold * 100, report.rate, report.sites.size(), report.estimated_bytes);
    for (const SparseSite& site : report.sites) {
        out += fmt::format("\n~{:.0f} objects, ~{:.0f} B on {} sparse spans ({} objects, {} B sampled)\n",
                           site.estimated_objects, site.estimated_bytes, site.spans, site.sampled_objects,
                           site.sampled_bytes);
        // backtrace_symbols names what the dynamic symbol table knows
        // (link with -rdynamic for more), else module+offset.
        std::vector<void*> frames;
        for (std::uintptr_t pc : site.stack) frames.push_back(reinterpret_cast<void*>(pc));
        char** names = frames.empty() ? nullptr : backtrace_symbols(frames.data(), static_cast<int>(frames.size()));
        for (std::size_t i = 0; i < frames.size(); ++i) {
            out += fmt::format("    {:#x} {}\n", site.stack[i], names != nullptr ? names[i] : "");
        }
        std::free(names);  // NOLINT: backtrace_symbols' malloc'd array
    }
    return out;
}

void* detail::relocate_object(const void* object, std::size_t type_size) {
    return detail::default_heap().relocate(object, type_size);
}

}  // namespace gcheap
