// Scenario 2 — an array of pointers.
//
// The same 16 MiB as scenario 1, but as 2^20 separately allocated 16-byte
// objects, plus the 8 MiB array of pointers to them (Go's []*T). Now each
// object lives or dies on its own: keeping one object no longer keeps the
// rest, and the pages they occupied go back to the OS.
//
// The objects are small (16 B), so they are not given pages of their own: they
// are packed 512 to a span of one 8 KiB page, in Go's 16-byte size class.
//
// Usage: scenario2_array_of_pointers [--check] [--csv FILE]
#include "common/scenario.hpp"

using namespace scenario;

namespace {

using Element = Bytes<16>;
constexpr std::size_t kN = 1 << 20;

// The story's roots, registered with gcheap::add_roots() in main() (see
// scenario 1): overwrite a slot to drop what it points to.
struct Story {
    Slice<Element*> objects;  // the 8 MiB array of 2^20 pointers
    Element* kept = nullptr;
};
Story story;

[[gnu::noinline]] void allocate_objects() { story.objects = allocate<Element>(kN); }

[[gnu::noinline]] void keep_one_object() {
    story.kept = story.objects[0];
    story.objects = {};  // the array goes, and with it every other object
}

}  // namespace

int main(int argc, char** argv) {
    const Options options = parse_options(argc, argv);
    gcheap::add_roots(&story, &story + 1);

    GoComparison table("Scenario 2: array of pointers (2^20 separate 16-byte objects + an 8 MiB pointer array)");

    // (1) The baseline.
    table.point("(1) start", {0.44, 0.27}, measure());

    // (2) 16 MiB of objects in 2048 one-page spans, plus the 8 MiB array
    //     (a large object: 1024 pages of its own). Every slot is used.
    allocate_objects();
    table.point("(2) objects allocated", {24.44, 0.26}, measure());

    // (3) Only objects[0] is kept: its one span stays (8 KiB), everything
    //     else is freed and returned to the OS.
    keep_one_object();
    table.point("(3) one object kept", {0.45, 0.27}, measure());

    use(*story.kept);
    const int failures = table.print();
    table.write_csv(options.csv, "2");
    return finish(options, failures);
}
