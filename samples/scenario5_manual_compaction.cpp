// Scenario 5 — manual compaction.
//
// Scenario 3 left 2,048 survivors pinning 2,048 pages (16 MiB for 32 KiB of
// data). The collector never moves objects, but the program can: allocate a
// fresh copy of each survivor that sits on a sparse span (gcheap::is_sparse,
// gcheap::relocate), point to the copy, and drop the original. The copies are
// allocated one after the other, so they fill 4 pages; the old pages become
// empty and go back to the OS.
//
// This works because the program knows every pointer to a survivor (here:
// one slot in the survivors array). A copy is a new object: any pointer
// left to the original keeps the original alive, and sees its old value.
//
// Usage: scenario5_manual_compaction [--check] [--csv FILE] [--heap-maps PREFIX]
#include "common/scenario.hpp"

using namespace scenario;

namespace {

using Element = Bytes<16>;
constexpr std::size_t kN = 1 << 20;
constexpr std::size_t kStep = 512;

// The story's roots, registered with gcheap::add_roots() in main().
struct Story {
    Slice<Element*> objects;
    Slice<Element*> survivors;
};
Story story;

[[gnu::noinline]] void allocate_objects() { story.objects = allocate<Element>(kN); }

[[gnu::noinline]] void keep_every_512th() {
    story.survivors = copy_every(story.objects, 0, kN, kStep);
    story.objects = {};
}

// The compaction: each survivor on a sparse span (under a quarter full) is
// copied to a fresh slot of its size class — gcheap::relocate(), which is
// allocate-and-copy — and its slot updated. The original loses its last
// pointer here. The first copies fill one of the sparse spans, which then
// stops being sparse: the few survivors already on it stay where they are.
[[gnu::noinline]] void compact_survivors() {
    for (Element*& slot : story.survivors) {
        if (gcheap::is_sparse(slot, 0.25)) slot = gcheap::relocate(slot);
    }
}

}  // namespace

int main(int argc, char** argv) {
    const Options options = parse_options(argc, argv);
    gcheap::add_roots(&story, &story + 1);

    GoComparison table("Scenario 5: manual compaction (copy the survivors of scenario 3)");

    // (1) The baseline. Go's (1) was not published for this program; it runs
    //     scenario 3's first steps, so scenario 3's (1) stands in for it.
    table.point("(1) start", {0.41, 0.25}, measure());

    // (2) Scenario 3's point (3): one survivor per page.
    allocate_objects();
    keep_every_512th();
    table.point("(2) every 512th kept", {16.42, 16.20}, measure());
    write_map(options, "before-compaction");

    // (3) Each survivor replaced by a fresh copy: 32 KiB of copies in 4
    //     pages (plus the 16 KiB survivors array); 2,048 pages freed.
    compact_survivors();
    table.point("(3) survivors copied", {0.47, 0.25}, measure());
    write_map(options, "after-compaction");
    table.note("Go's (1) for this program is not published: scenario 3's (1), 0.41/0.25, stands in for it.");

    use(story.survivors);
    const int failures = table.print();
    table.write_csv(options.csv, "5");
    return finish(options, failures);
}
