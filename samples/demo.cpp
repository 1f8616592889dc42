// demo: allocates a few million objects of mixed sizes from gcheap and prints
// the heap counters of MemStats (Go's names and meanings).
//
// Usage: demo [SCALE]   SCALE multiplies the object counts (default 1).
#include <gcheap/gcheap.hpp>

#include <fmt/core.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <string_view>
#include <vector>

namespace {

// The pointer table itself lives in gcheap memory (scanned), so the collector
// sees every object the demo keeps: a buffer from malloc is not a GC root.
template <class T>
struct GcAllocator {
    using value_type = T;
    GcAllocator() = default;
    template <class U>
    GcAllocator(const GcAllocator<U>&) noexcept {}
    T* allocate(std::size_t n) { return static_cast<T*>(gcheap::alloc(n * sizeof(T))); }
    void deallocate(T*, std::size_t) noexcept {}  // the collector reclaims it
    template <class U>
    bool operator==(const GcAllocator<U>&) const noexcept { return true; }
};

struct Batch {
    std::string_view what;
    std::size_t count;
    std::size_t bytes;
    bool noscan;
};

double mib(std::uint64_t bytes) { return static_cast<double>(bytes) / (1024.0 * 1024.0); }

}  // namespace

int main(int argc, char** argv) {
    double scale = 1.0;
    if (argc > 1) {
        scale = std::strtod(argv[1], nullptr);
        if (!(scale > 0.0)) {
            fmt::print(stderr, "usage: {} [SCALE>0]\n", argv[0]);
            return 2;
        }
    }
    const auto scaled = [scale](std::size_t n) {
        const auto s = static_cast<std::size_t>(static_cast<double>(n) * scale);
        return s > 0 ? s : std::size_t{1};
    };

    const Batch batches[] = {
        {"16 B", scaled(2'000'000), 16, false},
        {"64 B", scaled(1'000'000), 64, false},
        {"1 KiB", scaled(50'000), 1024, false},
        {"8 B noscan (tiny)", scaled(1'000'000), 8, true},
        {"40 KiB (large)", scaled(200), 40 * 1024, false},
    };

    std::size_t total = 0;
    for (const Batch& b : batches) total += b.count;

    std::vector<void*, GcAllocator<void*>> kept;
    kept.reserve(total);

    const auto start = std::chrono::steady_clock::now();
    for (const Batch& b : batches) {
        for (std::size_t i = 0; i < b.count; ++i) {
            kept.push_back(b.noscan ? gcheap::alloc_noscan(b.bytes) : gcheap::alloc(b.bytes));
        }
        fmt::print("allocated {:>9} x {}\n", b.count, b.what);
    }
    const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
    fmt::print("{} objects in {:.3f} s\n\n", kept.size(), elapsed.count());

    const gcheap::MemStats s = gcheap::read_mem_stats();
    const auto row = [](std::string_view name, std::uint64_t bytes) {
        fmt::print("  {:<20} {:>10.2f} MiB\n", name, mib(bytes));
    };
    fmt::print("MemStats:\n");
    row("HeapSys", s.HeapSys);
    row("HeapIdle", s.HeapIdle);
    row("HeapInuse", s.HeapInuse);
    row("HeapReleased", s.HeapReleased);
    row("HeapAlloc", s.HeapAlloc);
    fmt::print("  {:<20} {:>10}\n", "HeapObjects", s.HeapObjects);
    fmt::print("  {:<20} {:>10}\n", "Mallocs", s.Mallocs);
    row("TotalAlloc", s.TotalAlloc);
    row("Sys", s.Sys);
    fmt::print("\n");
    row("heap_usage()", s.heap_usage());
    row("max_fragmentation()", s.max_fragmentation());

    // Keep the table reachable until the statistics have been read.
    return kept.empty() ? 1 : 0;
}
