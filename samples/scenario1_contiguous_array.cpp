// Scenario 1 — a contiguous array.
//
// One array of 2^20 elements of 16 bytes: a single 16 MiB object. A pointer to
// one element keeps the whole array alive; dropping that pointer frees all of
// it, and free_os_memory() hands the pages back to the OS.
//
// At every numbered point the program collects, returns free pages to the OS
// (Go: runtime.GC(); debug.FreeOSMemory()) and reports
//   heapUsage        = HeapSys - HeapReleased  (heap pages still resident)
//   maxFragmentation = HeapInuse - HeapAlloc   (free room inside in-use spans)
// next to the figures Go 1.21 printed for the same program.
//
// Usage: scenario1_contiguous_array [--check] [--csv FILE]
#include "common/scenario.hpp"

using namespace scenario;

namespace {

using Element = Bytes<16>;        // pointer-free: the array is not scanned
constexpr std::size_t kN = 1 << 20;  // 2^20 elements x 16 B = 16 MiB

// The story's pointers live here, and only here. gcheap scans thread stacks
// and registered ranges, not globals: main() registers this struct with
// gcheap::add_roots(). A pointer is dropped by overwriting its slot.
struct Story {
    Slice<Element> array;
    Element* first = nullptr;
};
Story story;

// Each step is a noinline function: whatever it leaves in registers or in its
// frame is gone (or wiped by measure()) before the next collection.
[[gnu::noinline]] void allocate_array() { story.array = make_slice<Element>(kN); }

[[gnu::noinline]] void keep_only_first_element() {
    story.first = &story.array[0];  // a pointer to element 0 (the array's first byte)...
    story.array = {};               // ...and the slice itself is dropped
}

[[gnu::noinline]] void drop_first_element() {
    use(*story.first);
    story.first = nullptr;
}

}  // namespace

int main(int argc, char** argv) {
    const Options options = parse_options(argc, argv);
    gcheap::add_roots(&story, &story + 1);

    GoComparison table("Scenario 1: contiguous array (one 16 MiB array of 2^20 16-byte elements)");

    // (1) The baseline: the heap as the program starts.
    table.point("(1) start", {0.41, 0.24}, measure());

    // (2) One 16 MiB object: 2048 pages of its own, no room wasted.
    allocate_array();
    table.point("(2) array allocated", {16.41, 0.24}, measure());

    // (3) Only a pointer to element 0 remains: the collector marks the object
    //     it points into, so all 16 MiB stay.
    keep_only_first_element();
    table.point("(3) pointer to element 0 kept", {16.41, 0.24}, measure());

    // (4) The last pointer is gone: the whole array is freed and its pages
    //     are returned to the OS.
    drop_first_element();
    table.point("(4) pointer dropped", {0.41, 0.24}, measure());

    const int failures = table.print();
    table.write_csv(options.csv, "1");
    return finish(options, failures);
}
