// Scenario 6 — tiny objects.
//
// Scenario 3 again, with 8-byte pointer-free objects instead of 16-byte ones.
// Pointer-free requests under 16 bytes go to Go's tiny allocator: it packs them
// into 16-byte blocks, two 8-byte objects per block, 512 blocks (1,024
// objects) per page. So:
//   * the objects take half the pages (8 MiB instead of 16);
//   * keeping every 512th object leaves two survivors per page instead of
//     one, but the same number of survivors pins half as many pages.
// And one thing the counters cannot show (part B): a block is one object to
// the collector and to MemStats. It lives while any object in it lives, and
// HeapAlloc counts all 16 bytes, so the dead half of a block is invisible to
// maxFragmentation. An 8-byte object that holds a pointer is not tiny (it gets
// the 8-byte size class), and there the dead halves do show.
//
// Each variant runs in a fresh heap (this program, run again with
// `--variant NAME`), so their baselines do not mix.
//
// Usage: scenario6_tiny_objects [--check] [--csv FILE] [--scale X]
//   --scale X  2^20 * X objects (the CTest run uses 1/16)
#include "common/scenario.hpp"

#include <array>
#include <map>

using namespace scenario;

namespace {

using Small = Bytes<16>;  // scenario 3's objects: the 16-byte size class
using Tiny = Bytes<8>;    // pointer-free and under 16 bytes: tiny allocator
struct Ref {              // 8 bytes holding a pointer: the 8-byte size class
    Ref* next;
};
using Large = Bytes<32>;

// The story's roots, registered with gcheap::add_roots() in run_variant().
// Two kinds of slices: the type-erased slots below hold whichever element
// type the variant uses (the collector only sees words; types do not matter).
struct Story {
    Slice<void*> objects;
    Slice<void*> survivors;
    Slice<Large*> more;
};
Story story;

template <class T>
[[gnu::noinline]] void allocate_objects(std::size_t n) {
    const Slice<T*> s = allocate<T>(n);
    story.objects = {reinterpret_cast<void**>(s.data), s.len};
}

[[gnu::noinline]] void keep_every(std::size_t step) {
    story.survivors = copy_every(story.objects, 0, story.objects.len, step);
    story.objects = {};
}

[[gnu::noinline]] void allocate_larger_objects(std::size_t n) { story.more = allocate<Large>(n); }

// Part A: scenario 3's points (1) to (4) for element type T.
template <class T>
void part_a(std::size_t n) {
    fmt::print("{}\n", to_line(measure()));  // (1)
    allocate_objects<T>(n);
    fmt::print("{}\n", to_line(measure()));  // (2)
    keep_every(512);
    fmt::print("{}\n", to_line(measure()));  // (3)
    allocate_larger_objects(n / 2);
    fmt::print("{}\n", to_line(measure()));  // (4)
    use(story.survivors, story.more);
}

// Part B: keep every 2nd object.
template <class T>
void part_b(std::size_t n) {
    fmt::print("{}\n", to_line(measure()));  // (1)
    allocate_objects<T>(n);
    keep_every(2);
    fmt::print("{}\n", to_line(measure()));  // every 2nd kept
    use(story.survivors);
}

int run_variant(const std::string& variant, std::size_t n) {
    gcheap::add_roots(&story, &story + 1);
    if (variant == "a16") part_a<Small>(n);
    else if (variant == "a8") part_a<Tiny>(n);
    else if (variant == "b8") part_b<Tiny>(n);
    else if (variant == "b8ptr") part_b<Ref>(n);
    else return 2;
    return 0;
}

// Runs a variant in a fresh process; returns its samples minus its baseline.
std::vector<Sample> run_fresh(const std::string& variant, std::size_t n, int points) {
    Child child({"--variant", variant, "--objects", std::to_string(n)});
    std::vector<Sample> samples;
    for (int i = 0; i < points; ++i) samples.push_back(from_line(child.receive()));
    child.wait();
    for (std::size_t i = samples.size(); i-- > 0;) {
        samples[i].heap_usage -= samples[0].heap_usage;
        samples[i].max_fragmentation -= samples[0].max_fragmentation;
        samples[i].heap_alloc -= samples[0].heap_alloc;
        samples[i].heap_objects -= samples[0].heap_objects;
    }
    return samples;
}

}  // namespace

int main(int argc, char** argv) {
    const Options options = parse_options(argc, argv, {"--variant", "--objects"});
    if (const auto variant = option_value(options, "--variant"))
        return run_variant(*variant, std::stoul(option_value(options, "--objects").value_or("1048576")));

    const auto n = static_cast<std::size_t>(static_cast<double>(1 << 20) * options.scale);
    const std::vector<Sample> a16 = run_fresh("a16", n, 4), a8 = run_fresh("a8", n, 4);
    const std::vector<Sample> b8 = run_fresh("b8", n, 2), b8ptr = run_fresh("b8ptr", n, 2);

    Csv csv(options.csv, "part,variant,point,heap_usage_mib,max_fragmentation_mib,heap_alloc_mib,heap_objects");
    const auto csv_row = [&](const char* part, const char* variant, const std::string& point, const Sample& s) {
        csv.row("{},{},{},{:.4f},{:.4f},{:.4f},{}", part, variant, csv_field(point), s.heap_usage_mib(),
                s.max_fragmentation_mib(), s.heap_alloc_mib(), s.heap_objects);
    };

    // Part A.
    fmt::print("\nScenario 6: tiny objects (scenario 3 with {} objects; MiB, minus point (1); each in a fresh heap)\n", n);
    fmt::print("{}\n", std::string(100, '='));
    fmt::print("A. scenario 3's story\n");
    fmt::print("{:<26}| {:^32} | {:^32} | {:>9}\n", "", "16-byte objects", "8-byte pointer-free (tiny)", "tiny/16B");
    fmt::print("{:<26}| {:>9} {:>9} {:>12} | {:>9} {:>9} {:>12} | {:>9}\n", "point", "heapUsage", "maxFrag", "HeapObjects",
               "heapUsage", "maxFrag", "HeapObjects", "heapUsage");
    const std::array<std::string, 4> points = {"(1) start", "(2) objects allocated", "(3) every 512th kept",
                                               "(4) 32-byte objects"};
    for (std::size_t i = 1; i < 4; ++i) {
        const Sample &s = a16[i], &t = a8[i];
        fmt::print("{:<26}| {:>9.2f} {:>9.2f} {:>12} | {:>9.2f} {:>9.2f} {:>12} | {:>9.2f}\n", points[i],
                   s.heap_usage_mib(), s.max_fragmentation_mib(), s.heap_objects, t.heap_usage_mib(),
                   t.max_fragmentation_mib(), t.heap_objects, t.heap_usage_mib() / s.heap_usage_mib());
        csv_row("A", "16B", points[i], s);
        csv_row("A", "8B-tiny", points[i], t);
    }
    fmt::print("HeapObjects counts 16-byte blocks, not tiny objects: {} objects live in {} blocks at (2).\n", n,
               a8[1].heap_objects - 1);

    // Part B.
    fmt::print("\nB. keep every 2nd of {} 8-byte objects (half of the bytes die)\n", n);
    fmt::print("{:<44}| {:>9} {:>9} {:>9}\n", "", "heapUsage", "HeapAlloc", "maxFrag");
    const auto b_row = [](const char* what, const Sample& s) {
        fmt::print("{:<44}| {:>9.2f} {:>9.2f} {:>9.2f}\n", what, s.heap_usage_mib(), s.heap_alloc_mib(),
                   s.max_fragmentation_mib());
    };
    b_row("8-byte pointer-free (tiny: 2 per block)", b8[1]);
    b_row("8-byte holding a pointer (8-byte class)", b8ptr[1]);
    csv_row("B", "8B-tiny", "every 2nd kept", b8[1]);
    csv_row("B", "8B-pointer", "every 2nd kept", b8ptr[1]);
    fmt::print("Tiny: every block keeps one live half, so nothing is freed and HeapAlloc still counts all of it:\n"
               "the dead halves are waste that maxFragmentation cannot see.\n");

    // The shape the CTest run asserts.
    int failures = 0;
    const auto expect = [&](bool ok, const std::string& what) {
        fmt::print("  [{}] {}\n", ok ? "ok" : "FAILED", what);
        failures += ok ? 0 : 1;
    };
    fmt::print("\nShape:\n");
    const double ratio3 = a8[2].heap_usage_mib() / a16[2].heap_usage_mib();
    expect(ratio3 > 0.45 && ratio3 < 0.55, fmt::format("tiny packing halves the pages pinned at (3): ratio {:.3f}", ratio3));
    const double objects_pages = static_cast<double>(n) * 8 / kMiB;  // MiB of 8-byte objects
    expect(b8[1].max_fragmentation_mib() < 0.05 * objects_pages,
           fmt::format("tiny: the dead halves are invisible to maxFragmentation ({:.2f} MiB)",
                       b8[1].max_fragmentation_mib()));
    expect(std::fabs(b8ptr[1].max_fragmentation_mib() - objects_pages / 2) < 0.05 * objects_pages,
           fmt::format("8-byte class: the dead halves show as maxFragmentation ({:.2f} MiB)",
                       b8ptr[1].max_fragmentation_mib()));
    return finish(options, failures, "shape check(s) failed");
}
