// Scenario 4 — the step table.
//
// Scenario 3 up to point (3), for several steps: keep every 128th, 256th,
// 512th, 1024th or 2048th of 2^20 16-byte objects. A span of the 16-byte class
// holds 512 objects (one 8 KiB page), so:
//   step <= 512   every page keeps at least one survivor: all 16 MiB stay;
//   step  = 1024  every other page is empty and is freed: 8 MiB stay;
//   step  = 2048  one page in four keeps a survivor: 4 MiB stay.
// Survivors are few either way (at most 128 KiB): maxFragmentation is almost
// all of heapUsage. The cost of a survivor is its whole page.
//
// "Each in a fresh heap": gcheap has one heap per process, so the program
// runs itself once per step (`--step N` runs one step and prints its figures
// on stdout) and reads each child's baseline and point (3).
//
// Usage: scenario4_step_table [--check] [--csv FILE] [--step N]
#include "common/scenario.hpp"

using namespace scenario;

namespace {

using Element = Bytes<16>;
constexpr std::size_t kN = 1 << 20;

// The story's roots, registered with gcheap::add_roots() in run_step().
struct Story {
    Slice<Element*> objects;
    Slice<Element*> survivors;
};
Story story;

[[gnu::noinline]] void allocate_objects() { story.objects = allocate<Element>(kN); }

[[gnu::noinline]] void keep_every(std::size_t step) {
    story.survivors = copy_every(story.objects, 0, kN, step);
    story.objects = {};
}

// One step, in this (fresh) process: prints "baseline" and "point (3)".
int run_step(std::size_t step) {
    gcheap::add_roots(&story, &story + 1);
    const Sample baseline = measure();
    allocate_objects();
    keep_every(step);
    const Sample after = measure();
    use(story.survivors);
    fmt::print("{}\n{}\n", to_line(baseline), to_line(after));
    return 0;
}

struct Step {
    std::size_t step;
    Figures go;  // Go 1.21, baseline-subtracted
};
constexpr Step kSteps[] = {
    {128, {16.07, 15.88}}, {256, {16.03, 15.94}}, {512, {16.00, 15.94}}, {1024, {8.04, 8.00}}, {2048, {4.03, 3.99}},
};

}  // namespace

int main(int argc, char** argv) {
    const Options options = parse_options(argc, argv, {"--step"});
    if (const auto step = option_value(options, "--step")) return run_step(std::stoul(*step));

    GoComparison table("Scenario 4: step table (scenario 3 up to (3), each step in a fresh heap)");
    for (const Step& s : kSteps) {
        Child child({"--step", std::to_string(s.step)});
        const Sample baseline = from_line(child.receive());
        const Sample after = from_line(child.receive());
        child.wait();
        const Figures b = mib(baseline), a = mib(after);
        table.subtracted(fmt::format("keep every {}th", s.step), s.go,
                         {a.heap_usage - b.heap_usage, a.max_fragmentation - b.max_fragmentation});
    }
    table.note("(figures are point (3) minus point (1) of each fresh heap; Go publishes only these)");

    const int failures = table.print();
    table.write_csv(options.csv, "4");
    return finish(options, failures);
}
