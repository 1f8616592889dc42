// Scenario 7 — the long-running-task service.
//
// A service serves requests; each request allocates about 10 MiB of
// short-lived records, all freed when it ends. Meanwhile a long-running task
// works through 50,000 entries. Each entry allocates a burst of temporaries,
// of which a few small objects (3 objects, 32-256 bytes, < 1 KiB in all) stay
// alive until the whole task ends: 19 MiB of live data at the end.
//
// What goes wrong: a kept object is allocated wherever its size class is
// currently being filled — in the middle of the current request's records or
// of the burst's temporaries, when they have the same size. When the request
// ends, its records die, but every page that received a kept object stays in
// use (scenario 3, at random). Requests come in several record sizes, so each
// size class ends up with its own set of pinned, nearly empty pages. The heap
// grows to four times the live data and stays there until the task ends.
//
// The same run, then, with each mitigation:
//   together  temporal locality: the task notes what it keeps in a plain
//             buffer and allocates the kept objects of 100 entries one after
//             the other, so they share pages;
//   pool      requests write their records into 64 KiB buffers taken from a
//             pool (and given back when they end): request memory is never
//             freed, never re-allocated, never mixed with the kept objects;
//   copy      when the number of kept objects has doubled since the last
//             copy, the task copies those on sparse spans (manual compaction
//             with gcheap::is_sparse and gcheap::relocate, as in scenario 5),
//             freeing the pages the originals pinned;
//   process   the task runs in a separate process, the fix the published
//             experience chose: the service's heap holds only requests, the
//             task's heap only the task, and the figures are their sum;
//   partition one process, one heap, two gcheap::Partitions: the task's kept
//             objects (and their array) in "task", the requests' records in
//             "requests"; the burst temporaries stay in the default partition.
//
// Every 1,000 entries (right after a request ends) each run collects, returns
// free pages to the OS and reads heapUsage and maxFragmentation. Each run is
// its own process (a fresh heap); the program starts them all and prints the
// table. The workload is seeded: every run performs the same allocations. (The
// figures still move by a few hundredths of a MiB between runs: the
// background sweeper decides in which order freed spans are reused.)
//
// Usage: scenario7_long_running_task [--check] [--csv FILE] [--scale X]
//   --scale X  X * 50,000 entries and X * 10 MiB requests (CTest uses 0.2)
#include "common/scenario.hpp"

#include <gcheap/partition.hpp>

#include <array>
#include <chrono>
#include <memory>
#include <optional>

using namespace scenario;

namespace {

// ---------------------------------------------------------------------------
// The workload
// ---------------------------------------------------------------------------

struct Workload {
    std::size_t entries = 50'000;          // entries of the long-running task
    std::size_t report_every = 1'000;      // entries between measurements
    std::size_t request_bytes = 10 << 20;  // bytes of records per request; one request per report
    std::size_t copy_first = 4'096;        // copy: first copy at this many kept objects
};

constexpr std::size_t kBurstObjects = 64;   // temporaries per entry (~14 KiB)
constexpr std::size_t kKeptPerEntry = 3;    // kept objects per entry (< 1 KiB)
constexpr std::size_t kBatchEntries = 100;  // together: entries per batch
constexpr std::size_t kPoolBuffer = 64 << 10;

// Record sizes: a request's records all have one of these sizes (a request
// type), and so do the kept objects. Burst temporaries are of all sizes.
constexpr std::array<std::size_t, 8> kRecordSizes = {32, 48, 64, 96, 128, 160, 192, 256};
constexpr std::array<std::size_t, 10> kBurstSizes = {16, 24, 32, 48, 64, 96, 128, 256, 512, 1024};

/// splitmix64: the same seed gives the same run with any compiler and library.
struct Rng {
    std::uint64_t state;
    std::uint64_t next() {
        std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
    }
    std::size_t below(std::size_t n) { return static_cast<std::size_t>(next() % n); }
};

enum class Mode { kBaseline, kTogether, kPool, kCopy, kService, kTask, kPartition };

struct Variant {
    const char* name;
    const char* what;
};
constexpr Variant kVariants[] = {
    {"baseline", "no mitigation"},
    {"together", "kept objects allocated together (100 entries at a time)"},
    {"pool", "request records written into pooled 64 KiB buffers"},
    {"copy", "kept objects on sparse spans relocated whenever their count has doubled"},
    {"process", "task in a separate process (figures: service + task)"},
    {"partition", "kept objects in one partition, request records in another"},
};

// ---------------------------------------------------------------------------
// The state: every gcheap pointer the program keeps is in here (registered
// with gcheap::add_roots) or in gcheap arrays reachable from here. Functions
// that allocate are noinline, so that their temporaries die with their frames.
// ---------------------------------------------------------------------------

struct State {
    Slice<void*> request;  // the request in flight: its records (or pool buffers)
    std::size_t request_used = 0;
    std::size_t record_size = 0;
    std::size_t buffer_fill = 0;  // pool: bytes written into the current buffer

    Slice<void*> pool;  // pool: free 64 KiB buffers
    std::size_t pool_count = 0;

    Slice<void*> kept;  // the task's long-lived objects (a growing array, as Go's append)
    std::size_t kept_count = 0;
    std::size_t kept_at_last_copy = 0;
};
State state;

Mode mode = Mode::kBaseline;
Workload work;
// partition: created by run_variant, live for the whole run.
std::optional<gcheap::Partition> task_partition;
std::optional<gcheap::Partition> request_partition;

/// A scope on `partition` when the run uses partitions, else nothing.
struct ScopeIn {
    explicit ScopeIn(std::optional<gcheap::Partition>& partition) {
        if (partition) scope.emplace(*partition);
    }
    std::optional<gcheap::PartitionScope> scope;
};
std::string scale_arg = "1";  // --scale, passed on to child processes
Rng task_rng{0x7a5c};     // the task's choices
Rng request_rng{0x5e7e};  // the requests' record sizes

// together: what the current batch keeps, as plain bytes. A std::vector is
// fine here because it holds no gcheap pointers.
std::vector<unsigned char> batch_bytes;
std::vector<std::uint16_t> batch_sizes;

// A kept object: plain bytes; the first two hold its size (for copying).
void* new_kept(std::size_t size, unsigned char fill) {
    auto* p = static_cast<unsigned char*>(gcheap::alloc_noscan(size));
    const auto s = static_cast<std::uint16_t>(size);
    std::memcpy(p, &s, sizeof s);
    std::memset(p + sizeof s, fill, size - sizeof s);
    return p;
}

[[gnu::noinline]] void keep(void* object) {
    if (state.kept_count == state.kept.len) {  // grow: a new array, the old one becomes garbage
        Slice<void*> bigger = make_slice<void*>(std::max<std::size_t>(1024, 2 * state.kept.len));
        std::copy(state.kept.begin(), state.kept.end(), bigger.begin());
        state.kept = bigger;
    }
    state.kept[state.kept_count++] = object;
}

/// One line from `file`, without the newline; false at the end.
bool read_line(std::FILE* file, std::string& line) {
    line.clear();
    int c;
    while ((c = std::fgetc(file)) != EOF && c != '\n') line += static_cast<char>(c);
    return c != EOF || !line.empty();
}

// ---------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------

[[gnu::noinline]] void start_request() {
    const ScopeIn scope(request_partition);
    state.record_size = kRecordSizes[request_rng.below(kRecordSizes.size())];
    const std::size_t slots = mode == Mode::kPool ? work.request_bytes / kPoolBuffer + 1
                                                  : work.request_bytes / state.record_size + 1;
    state.request = make_slice<void*>(slots);
    state.request_used = 0;
    state.buffer_fill = 0;
}

// Without a pool: one gcheap object per record.
[[gnu::noinline]] void allocate_records(std::size_t bytes) {
    const ScopeIn scope(request_partition);
    for (std::size_t done = 0; done < bytes && state.request_used < state.request.len; done += state.record_size) {
        auto* record = static_cast<unsigned char*>(gcheap::alloc_noscan(state.record_size));
        record[0] = 1;
        state.request[state.request_used++] = record;
    }
}

// With the pool: records are written into 64 KiB buffers from the pool.
[[gnu::noinline]] void write_records_pooled(std::size_t bytes) {
    for (std::size_t done = 0; done < bytes; done += state.record_size) {
        if (state.request_used == 0 || state.buffer_fill + state.record_size > kPoolBuffer) {
            void* buffer = nullptr;
            if (state.pool_count > 0) {
                buffer = state.pool[--state.pool_count];
                state.pool[state.pool_count] = nullptr;
            } else {
                buffer = gcheap::alloc_noscan(kPoolBuffer);
            }
            state.request[state.request_used++] = buffer;
            state.buffer_fill = 0;
        }
        static_cast<unsigned char*>(state.request[state.request_used - 1])[state.buffer_fill] = 1;
        state.buffer_fill += state.record_size;
    }
}

[[gnu::noinline]] void end_request() {
    if (mode == Mode::kPool) {  // the buffers go back to the pool
        if (state.pool.len < state.pool_count + state.request_used) {
            Slice<void*> bigger = make_slice<void*>(2 * (state.pool_count + state.request_used));
            std::copy(state.pool.begin(), state.pool.begin() + state.pool_count, bigger.begin());
            state.pool = bigger;
        }
        for (std::size_t i = 0; i < state.request_used; ++i) state.pool[state.pool_count++] = state.request[i];
    }
    state.request = {};  // the records (or the loans) are dropped
    state.request_used = 0;
}

// ---------------------------------------------------------------------------
// The long-running task
// ---------------------------------------------------------------------------

// One entry: a burst of temporaries; at three random moments during it, an
// object to keep.
[[gnu::noinline]] void process_entry(std::size_t entry) {
    Slice<void*> temporaries = make_slice<void*>(kBurstObjects);
    std::array<std::size_t, kKeptPerEntry> keep_at{};
    for (std::size_t& k : keep_at) k = task_rng.below(kBurstObjects);
    unsigned char checksum = static_cast<unsigned char>(entry);
    for (std::size_t i = 0; i < kBurstObjects; ++i) {
        const std::size_t size = kBurstSizes[task_rng.below(kBurstSizes.size())];
        auto* t = static_cast<unsigned char*>(gcheap::alloc_noscan(size));
        t[0] = checksum;
        temporaries[i] = t;
        checksum = static_cast<unsigned char>(checksum * 31 + i);
        for (std::size_t k : keep_at) {
            if (k != i) continue;
            const std::size_t size_kept = kRecordSizes[task_rng.below(kRecordSizes.size())];
            if (mode == Mode::kTogether) {  // note it down; allocate later, with the batch
                batch_sizes.push_back(static_cast<std::uint16_t>(size_kept));
                batch_bytes.push_back(checksum);
            } else {
                const ScopeIn scope(task_partition);  // the kept object and the array growing
                keep(new_kept(size_kept, checksum));
            }
        }
    }
    use(temporaries);
}  // the temporaries die here

// together: the batch's kept objects, allocated one after the other.
[[gnu::noinline]] void allocate_batch() {
    for (std::size_t i = 0; i < batch_sizes.size(); ++i) keep(new_kept(batch_sizes[i], batch_bytes[i]));
    batch_sizes.clear();
    batch_bytes.clear();
}

// copy: every kept object that sits on a sparse span gets a fresh copy
// (gcheap::is_sparse, gcheap::relocate, as scenario 5 does); the originals
// lose their pointer. Objects on well-filled spans stay where they are.
[[gnu::noinline]] void copy_kept() {
    for (std::size_t i = 0; i < state.kept_count; ++i) {
        auto* original = static_cast<unsigned char*>(state.kept[i]);
        if (gcheap::is_sparse(original, 0.5)) state.kept[i] = gcheap::relocate(original);  // copies the whole slot
    }
    state.kept_at_last_copy = state.kept_count;
}

[[gnu::noinline]] void end_task() {
    state.kept = {};
    state.kept_count = 0;
}

// Entries [from, to) and, alongside, the request that spans them: its records
// are allocated in slices between entries, as if served concurrently.
void run_block(std::size_t from, std::size_t to) {
    const bool task = mode != Mode::kService;
    const bool requests = mode != Mode::kTask;
    const std::size_t per_entry = work.request_bytes / work.report_every;
    const auto serve = [&](std::size_t bytes) {
        if (mode == Mode::kPool) write_records_pooled(bytes);
        else allocate_records(bytes);
    };
    if (requests) start_request();
    for (std::size_t e = from; e < to; ++e) {
        if (requests) serve(per_entry / 2);
        if (task) process_entry(e);
        if (requests) serve(per_entry - per_entry / 2);
        if (mode == Mode::kTogether && (e + 1) % kBatchEntries == 0) allocate_batch();
        if (mode == Mode::kCopy && state.kept_count >= std::max(work.copy_first, 2 * state.kept_at_last_copy))
            copy_kept();
    }
    if (requests) end_request();
}

// ---------------------------------------------------------------------------
// One run, in this process: a line of figures per report, then one after the
// task has ended. Lines: "<entries> <sample>".
// ---------------------------------------------------------------------------

int run_variant(const std::string& name) {
    gcheap::add_roots(&state, &state + 1);
    if (name == "process") {
        // The service runs the requests; the task runs in a child process,
        // block by block in step with it. (In a real service the two would
        // simply run side by side.)
        mode = Mode::kService;
        Child task({"--run", "task", "--scale", scale_arg});
        for (std::size_t e = 0; e < work.entries; e += work.report_every) {
            task.send("block");
            run_block(e, e + work.report_every);
            const Sample service = measure();
            const Sample t = from_line(task.receive());
            fmt::print("{} {} {}\n", e + work.report_every, to_line(service), to_line(t));
        }
        task.send("end");
        const Sample t = from_line(task.receive());
        task.wait();  // the task's process is gone: its memory with it
        const Sample service = measure();
        fmt::print("end {} {}\n", to_line(service), to_line(t));
        return 0;
    }
    if (name == "baseline") mode = Mode::kBaseline;
    else if (name == "together") mode = Mode::kTogether;
    else if (name == "pool") mode = Mode::kPool;
    else if (name == "copy") mode = Mode::kCopy;
    else if (name == "task") mode = Mode::kTask;
    else if (name == "partition") mode = Mode::kPartition;
    else throw std::invalid_argument("unknown variant " + name);
    if (mode == Mode::kPartition) {
        task_partition.emplace("task");
        request_partition.emplace("requests");
    }
    if (mode == Mode::kTask) {  // the child of "process": blocks on command
        std::size_t e = 0;
        for (std::string line; read_line(stdin, line);) {
            if (line == "block") {
                run_block(e, e + work.report_every);
                e += work.report_every;
            } else {
                end_task();
            }
            fmt::print("{}\n", to_line(measure()));
            std::fflush(stdout);
        }
        return 0;
    }
    for (std::size_t e = 0; e < work.entries; e += work.report_every) {
        run_block(e, e + work.report_every);
        fmt::print("{} {}\n", e + work.report_every, to_line(measure()));
    }
    end_task();
    fmt::print("end {}\n", to_line(measure()));
    return 0;
}

Workload scaled(double scale) {
    Workload w;
    const auto s = [scale](std::size_t v) { return std::max<std::size_t>(1, static_cast<std::size_t>(v * scale)); };
    w.entries = s(w.entries);
    w.report_every = s(w.report_every);
    w.entries -= w.entries % w.report_every;
    w.request_bytes = s(w.request_bytes);
    w.copy_first = s(w.copy_first);
    return w;
}

// ---------------------------------------------------------------------------
// The orchestrator: all runs at once, one process each; then the table.
// ---------------------------------------------------------------------------

struct Series {
    std::vector<std::size_t> entries;
    std::vector<Sample> samples;  // process: service + task
    Sample end;
    double seconds = 0;
    Sample peak() const {
        Sample p;
        for (const Sample& s : samples)
            if (s.heap_usage > p.heap_usage) p = s;
        return p;
    }
};

Sample sum(const Sample& a, const Sample& b) {
    return {a.heap_usage + b.heap_usage, a.max_fragmentation + b.max_fragmentation, a.heap_alloc + b.heap_alloc,
            a.heap_objects + b.heap_objects};
}

// "<entries|end> <sample> [<sample>]" -> entries, sample (summed if two).
std::pair<std::string, Sample> parse_line(const std::string& line) {
    std::vector<std::string> f;
    for (std::size_t i = 0; i < line.size();) {
        const std::size_t j = std::min(line.find(' ', i), line.size());
        f.push_back(line.substr(i, j - i));
        i = j + 1;
    }
    const auto sample_at = [&](std::size_t k) { return from_line(f[k] + " " + f[k + 1] + " " + f[k + 2] + " " + f[k + 3]); };
    if (f.size() == 5) return {f[0], sample_at(1)};
    if (f.size() == 9) return {f[0], sum(sample_at(1), sample_at(5))};
    throw std::runtime_error("bad line from a run: '" + line + "'");
}

}  // namespace

int main(int argc, char** argv) {
    const Options options = parse_options(argc, argv, {"--run"});
    work = scaled(options.scale);
    scale_arg = fmt::format("{}", options.scale);
    if (const auto run = option_value(options, "--run")) {
        const auto start = std::chrono::steady_clock::now();
        const int rc = run_variant(*run);
        fmt::print("time {:.3f}\n", std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
        return rc;
    }

    // Start every run; each is a fresh process with a fresh heap.
    const auto start = std::chrono::steady_clock::now();
    std::vector<std::unique_ptr<Child>> children;
    for (const Variant& v : kVariants)
        children.push_back(std::make_unique<Child>(std::vector<std::string>{"--run", v.name, "--scale", scale_arg}));

    std::vector<Series> series(std::size(kVariants));
    for (std::size_t i = 0; i < children.size(); ++i) {
        Series& s = series[i];
        for (;;) {
            const auto [at, sample] = parse_line(children[i]->receive());
            if (at == "end") {
                s.end = sample;
                break;
            }
            s.entries.push_back(std::stoul(at));
            s.samples.push_back(sample);
        }
        s.seconds = std::stod(children[i]->receive().substr(5));  // "time <seconds>"
        children[i]->wait();
    }
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

    // The table: heapUsage over the run, every 5 reports; then the peaks.
    const Series& base = series[0];
    fmt::print("\nScenario 7: a service with a long-running task ({} entries, a {:.1f} MiB request every {} entries)\n",
               work.entries, static_cast<double>(work.request_bytes) / kMiB, work.report_every);
    fmt::print("{}\n", std::string(100, '='));
    const std::size_t stride = std::max<std::size_t>(1, base.samples.size() / 10);
    const auto over_the_run = [&](const char* title, auto figure) {
        fmt::print("{}\n{:>8}", title, "entries");
        for (const Variant& v : kVariants) fmt::print("{:>10}", v.name);
        fmt::print("{:>10}\n", "live");
        for (std::size_t k = stride - 1; k < base.samples.size(); k += stride) {
            fmt::print("{:>8}", base.entries[k]);
            for (const Series& s : series) fmt::print("{:>10.2f}", figure(s.samples[k]));
            fmt::print("{:>10.2f}\n", base.samples[k].heap_alloc_mib());
        }
        fmt::print("{:>8}", "ended");
        for (const Series& s : series) fmt::print("{:>10.2f}", figure(s.end));
        fmt::print("{:>10.2f}\n", base.end.heap_alloc_mib());
    };
    over_the_run("heapUsage (MiB) after collect + free_os_memory; live = HeapAlloc of the baseline run",
                 [](const Sample& s) { return s.heap_usage_mib(); });
    over_the_run("\nmaxFragmentation (MiB)", [](const Sample& s) { return s.max_fragmentation_mib(); });
    fmt::print("\n{:<10}{:>12}{:>12}{:>10}{:>13}{:>10}  {}\n", "run", "peak heap", "maxFrag", "live", "vs baseline",
               "done (s)", "what");
    int failures = 0;
    const double base_peak = base.peak().heap_usage_mib();
    for (std::size_t i = 0; i < series.size(); ++i) {
        const Sample p = series[i].peak();
        fmt::print("{:<10}{:>12.2f}{:>12.2f}{:>10.2f}{:>12.0f}%{:>10.1f}  {}\n", kVariants[i].name, p.heap_usage_mib(),
                   p.max_fragmentation_mib(), p.heap_alloc_mib(), 100.0 * p.heap_usage_mib() / base_peak,
                   series[i].seconds, kVariants[i].what);
    }
    fmt::print("(peak: the report with the highest heapUsage; maxFrag and live at that report.\n"
               " done: each run's own time; the runs share the machine; all took {:.1f} s)\n", wall);

    // CSV: every report of every run.
    Csv csv(options.csv, "variant,entries,heap_usage_mib,max_fragmentation_mib,heap_alloc_mib");
    for (std::size_t i = 0; i < series.size(); ++i) {
        for (std::size_t k = 0; k < series[i].samples.size(); ++k) {
            const Sample& s = series[i].samples[k];
            csv.row("{},{},{:.4f},{:.4f},{:.4f}", kVariants[i].name, series[i].entries[k], s.heap_usage_mib(),
                    s.max_fragmentation_mib(), s.heap_alloc_mib());
        }
    }

    // The shape: fragmentation grows in the baseline, and every mitigation
    // lowers the peak. (kVariants ends with "partition".)
    fmt::print("\nShape:\n");
    const auto expect = [&](bool ok, const std::string& what) {
        fmt::print("  [{}] {}\n", ok ? "ok" : "FAILED", what);
        failures += ok ? 0 : 1;
    };
    const Sample bp = base.peak();
    expect(bp.heap_usage_mib() > 2.0 * bp.heap_alloc_mib(),
           fmt::format("baseline: the peak heap ({:.2f} MiB) is more than twice the live data ({:.2f} MiB)",
                       bp.heap_usage_mib(), bp.heap_alloc_mib()));
    for (std::size_t i = 1; i < series.size(); ++i) {
        const double peak = series[i].peak().heap_usage_mib();
        expect(peak < 0.8 * base_peak, fmt::format("{}: peak {:.2f} MiB is below 80% of the baseline's {:.2f} MiB",
                                                   kVariants[i].name, peak, base_peak));
    }
    // Partitions separate the lifetimes inside one heap: the task's pages
    // hold only kept objects, so next to nothing is wasted.
    const Sample pp = series[std::size(kVariants) - 1].peak();
    expect(pp.max_fragmentation_mib() < 0.1 * pp.heap_alloc_mib(),
           fmt::format("partition: maxFragmentation at the peak ({:.2f} MiB) is under 10% of the live data ({:.2f} MiB)",
                       pp.max_fragmentation_mib(), pp.heap_alloc_mib()));
    return finish(options, failures, "shape check(s) failed");
}
