// Scenario 3 — pathological survivors.
//
// As scenario 2, then keep every 512th object (2,048 objects, 32 KiB in all)
// and drop the rest. A span of the 16-byte class holds 512 objects on one
// 8 KiB page, so every page keeps exactly one survivor: the collector is
// non-moving, the page cannot be freed, and 32 KiB of live data hold 16 MiB
// of memory. Worse, the room is useless to other sizes: the 2^19 32-byte
// objects allocated next belong to another size class and need 16 MiB of
// new pages while 16 MiB of 16-byte slots stand empty.
//
// Usage: scenario3_pathological_survivors [--check] [--csv FILE] [--heap-maps PREFIX]
#include "common/scenario.hpp"

using namespace scenario;

namespace {

using Small = Bytes<16>;
using Large = Bytes<32>;
constexpr std::size_t kN = 1 << 20;
constexpr std::size_t kStep = 512;  // = objects per span of the 16-byte class

// The story's roots, registered with gcheap::add_roots() in main().
struct Story {
    Slice<Small*> objects;    // 2^20 pointers (8 MiB)
    Slice<Small*> survivors;  // every 512th of them (2048 pointers, 16 KiB)
    Slice<Large*> more;       // 2^19 pointers to 32-byte objects (4 MiB)
};
Story story;

[[gnu::noinline]] void allocate_objects() { story.objects = allocate<Small>(kN); }

[[gnu::noinline]] void keep_every_512th() {
    story.survivors = copy_every(story.objects, 0, kN, kStep);
    story.objects = {};
}

[[gnu::noinline]] void allocate_larger_objects() { story.more = allocate<Large>(kN / 2); }

}  // namespace

int main(int argc, char** argv) {
    const Options options = parse_options(argc, argv);
    gcheap::add_roots(&story, &story + 1);

    GoComparison table("Scenario 3: pathological survivors (keep every 512th 16-byte object)");

    // (1) The baseline.
    table.point("(1) start", {0.41, 0.25}, measure());

    // (2) As scenario 2: 16 MiB of 16-byte objects + the 8 MiB array.
    allocate_objects();
    table.point("(2) 2^20 16-byte objects", {24.41, 0.24}, measure());

    // (3) One survivor per page: all 2048 pages stay in use, almost empty.
    //     maxFragmentation shows it: 16 MiB of in-use pages hold 32 KiB.
    keep_every_512th();
    table.point("(3) every 512th kept", {16.41, 16.19}, measure());
    write_map(options, "every-512th-kept");

    // (4) 2^19 objects of 32 bytes (16 MiB + a 4 MiB array) cannot use the
    //     free 16-byte slots: the heap grows by 20 MiB.
    allocate_larger_objects();
    table.point("(4) 2^19 32-byte objects", {36.39, 16.17}, measure());
    write_map(options, "32-byte-objects");

    use(story.survivors, story.more);
    const int failures = table.print();
    table.write_csv(options.csv, "3");
    return finish(options, failures);
}
