// scenario.hpp — what the fragmentation scenarios in samples/ share:
//
//   1. the helpers Go users write for these experiments — allocate<T>(n),
//      copy_every(...), use(...) — on top of gcheap's public API;
//   2. what "dropping" a pointer means under a conservative collector;
//   3. the measure itself (heapUsage, maxFragmentation);
//   4. the command line, tables, checks and CSV files every scenario shares;
//   5. fresh heaps: running the program again in a child process.
//
// Read a scenario first (scenario1_contiguous_array.cpp is the shortest); come
// here when it calls something it does not define.
#pragma once

#include <gcheap/gcheap.hpp>

#include <fmt/core.h>
#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace scenario {

// ===========================================================================
// 1. Go-style helpers
// ===========================================================================

/// N bytes of plain data, like Go's [N]byte: the element type of the scenarios.
template <std::size_t N>
struct Bytes {
    unsigned char data[N];
};

/// Whether T holds no pointers to gcheap objects. Go's compiler knows this for
/// every type and allocates such objects in "noscan" spans that the collector
/// never reads; in C++ we say it ourselves and call gcheap::alloc_noscan.
/// Pointer-free objects smaller than 16 bytes are then packed by Go's tiny
/// allocator (scenario 6).
template <class T>
inline constexpr bool pointer_free = std::is_arithmetic_v<T>;
template <std::size_t N>
inline constexpr bool pointer_free<Bytes<N>> = true;

/// Go's slice header: a pointer to a gcheap array and its length. Copying a
/// Slice copies the header, not the elements — as in Go.
template <class T>
struct Slice {
    T* data = nullptr;
    std::size_t len = 0;

    T& operator[](std::size_t i) const { return data[i]; }
    std::size_t size() const { return len; }
    T* begin() const { return data; }
    T* end() const { return data + len; }
};

/// new(T): one zeroed T in gcheap memory (noscan when T is pointer-free).
template <class T>
T* new_object() {
    static_assert(std::is_trivially_default_constructible_v<T> && std::is_trivially_destructible_v<T>);
    void* memory = pointer_free<T> ? gcheap::alloc_noscan(sizeof(T)) : gcheap::alloc(sizeof(T));
    return static_cast<T*>(memory);  // gcheap memory is zeroed: a zero T
}

/// make([]T, n): a zeroed gcheap array of n T. An array of pointers is
/// scanned; an array of pointer-free T is not.
template <class T>
Slice<T> make_slice(std::size_t n) {
    static_assert(std::is_trivially_default_constructible_v<T> && std::is_trivially_destructible_v<T>);
    void* memory = pointer_free<T> ? gcheap::alloc_noscan(n * sizeof(T)) : gcheap::alloc(n * sizeof(T));
    return {static_cast<T*>(memory), n};
}

/// The Go experiment's allocate[T](n): a slice of n pointers to n separately
/// allocated zeroed T. The pointer array comes first, then the objects, in
/// index order, so consecutive objects share spans.
///
/// noinline, like every step of the stories: each step reads as one function
/// in a profile, and its locals (the loop's last pointers) die with its frame.
template <class T>
[[gnu::noinline]] Slice<T*> allocate(std::size_t n) {
    Slice<T*> s = make_slice<T*>(n);
    for (std::size_t i = 0; i < n; ++i) s[i] = new_object<T>();
    return s;
}

/// The Go experiment's copyEvery(s, start, stop, step): a new slice holding
/// s[start], s[start+step], ... below stop. The pointers are copied, not the
/// objects: the new slice keeps exactly those objects alive.
template <class T>
[[gnu::noinline]] Slice<T> copy_every(Slice<T> s, std::size_t start, std::size_t stop, std::size_t step) {
    stop = std::min(stop, s.len);
    const std::size_t n = start < stop ? (stop - start + step - 1) / step : 0;
    Slice<T> r = make_slice<T>(n);
    for (std::size_t i = 0; i < n; ++i) r[i] = s[start + i * step];
    return r;
}

/// use(values...): makes values observable, so that the compiler cannot drop
/// a computation or a variable the story wants to exist (Go users write
/// `use(x)` or `runtime.KeepAlive(x)` for the same purpose).
template <class... Ts>
void use(const Ts&... values) {
    (gcheap::keep_alive(&values), ...);
}

// ===========================================================================
// 2. Dropping pointers under a conservative collector
// ===========================================================================
//
// gcheap finds roots conservatively: every word of every registered thread's
// stack (from where it stands up), its registers, the program's globals and
// the ranges given to gcheap::add_roots(). Anything that looks like a pointer
// into an object keeps it alive. So "dropping" a pointer means leaving no copy
// of it in any of those places:
//
//   * keep the story's pointers in one place the program controls — a global
//     struct (registered with add_roots() too, which costs nothing more and
//     keeps the samples correct with GCHEAP_SCAN_GLOBALS=off), or gcheap
//     objects reachable from it — and drop a pointer by overwriting that slot
//     with nullptr;
//   * create and traverse objects in functions that return before the
//     measurement: their temporaries die with their frames. gcheap scans the
//     collecting thread from where collect() was called, so the dead frames
//     below it are not roots (no stack wiping is needed);
//   * never keep gcheap pointers only in malloc'd memory (a std::vector with
//     std::allocator, std::string, new): the collector does not read it, so
//     objects referenced only from there are freed under your feet. Use
//     gcheap arrays (Slice above) or containers with gcheap::allocator.

// ===========================================================================
// 3. The measure
// ===========================================================================

constexpr double kMiB = 1024.0 * 1024.0;

/// What a scenario reports at a numbered point, in bytes.
struct Sample {
    std::uint64_t heap_usage = 0;         ///< HeapSys - HeapReleased
    std::uint64_t max_fragmentation = 0;  ///< HeapInuse - HeapAlloc
    std::uint64_t heap_alloc = 0;         ///< HeapAlloc (live bytes, as slots)
    std::uint64_t heap_objects = 0;       ///< HeapObjects

    double heap_usage_mib() const { return static_cast<double>(heap_usage) / kMiB; }
    double max_fragmentation_mib() const { return static_cast<double>(max_fragmentation) / kMiB; }
    double heap_alloc_mib() const { return static_cast<double>(heap_alloc) / kMiB; }
};

/// runtime.GC(); debug.FreeOSMemory(): its own frame, so that nothing of the
/// caller's (uninitialised slots included) is live while it collects.
[[gnu::noinline]] inline void collect_and_release() {
    gcheap::collect();
    gcheap::free_os_memory();
}

/// runtime.ReadMemStats(&m), reduced to the figures the scenarios print.
[[gnu::noinline]] inline Sample read_sample() {
    const gcheap::MemStats m = gcheap::read_mem_stats();
    return {m.heap_usage(), m.max_fragmentation(), m.HeapAlloc, m.HeapObjects};
}

/// What every scenario does at a numbered point: collect, return every free
/// page to the OS, read the counters.
inline Sample measure() {
    collect_and_release();
    return read_sample();
}

/// A pair of figures in MiB, as the Go experiment published them.
struct Figures {
    double heap_usage = 0;
    double max_fragmentation = 0;
};

inline Figures mib(const Sample& s) { return {s.heap_usage_mib(), s.max_fragmentation_mib()}; }

/// Rounds to two decimals, as printed: comparisons use the printed values.
inline double round2(double v) { return std::round(v * 100.0) / 100.0; }

/// Baseline-subtracted figures within this distance (MiB) of Go's pass.
constexpr double kTolerance = 0.10;

inline bool within(double ours, double go) { return std::fabs(round2(ours) - round2(go)) <= kTolerance + 1e-9; }

// ===========================================================================
// 4. Command line, tables, CSV
// ===========================================================================

/// Options every scenario accepts.
///   --check       exit 1 unless the figures pass the scenario's check
///   --csv FILE    also write the numbers to FILE
///   --scale X     multiply the scenario's sizes by X (0 < X <= 1; scenarios 6, 7)
///   --heap-maps PREFIX  write heap maps PREFIX<name>.svg where the scenario
///                 draws them (write_map(); docs/fragmentation.md)
/// plus the scenario's own `--NAME VALUE` options (`extra`), left in `rest`;
/// anything else is an error (exit status 2).
struct Options {
    bool check = false;
    std::string csv;
    double scale = 1.0;
    std::string heap_maps;
    std::vector<std::string> rest;
    std::string program;
};

inline Options parse_options(int argc, char** argv, std::initializer_list<std::string_view> extra = {}) {
    Options o;
    o.program = argc > 0 ? argv[0] : "scenario";
    for (int i = 1; i < argc; ++i) {
        const std::string_view a = argv[i];
        const auto value = [&]() -> std::string {
            if (i + 1 >= argc) {
                fmt::print(stderr, "{}: {} needs a value\n", o.program, a);
                std::exit(2);
            }
            return argv[++i];
        };
        if (a == "--check") {
            o.check = true;
        } else if (a == "--csv") {
            o.csv = value();
        } else if (a == "--heap-maps") {
            o.heap_maps = value();
        } else if (a == "--scale") {
            const std::string v = value();
            o.scale = std::strtod(v.c_str(), nullptr);
            if (!(o.scale > 0.0 && o.scale <= 1.0)) {
                fmt::print(stderr, "{}: --scale must be in (0, 1], got {}\n", o.program, v);
                std::exit(2);
            }
        } else if (a == "-h" || a == "--help") {
            fmt::print("usage: {} [--check] [--csv FILE] [--scale X] [--heap-maps PREFIX]\n", o.program);
            std::exit(0);
        } else if (std::find(extra.begin(), extra.end(), a) != extra.end()) {
            o.rest.emplace_back(a);
            o.rest.push_back(value());
        } else {
            fmt::print(stderr, "{}: unknown argument {}\n", o.program, a);
            std::exit(2);
        }
    }
    return o;
}

/// With --heap-maps PREFIX, draws the heap as it is now into PREFIX<name>.svg
/// (gcheap::write_heap_map); otherwise nothing. Call it right after measure(),
/// so that the map shows the heap the figures describe.
inline void write_map(const Options& o, std::string_view name) {
    if (o.heap_maps.empty()) return;
    const std::string path = fmt::format("{}{}.svg", o.heap_maps, name);
    gcheap::write_heap_map(path.c_str());
    fmt::print(stderr, "{}: wrote {}\n", o.program, path);
}

/// Scenario-specific option `--name VALUE` from Options::rest, or nullopt.
inline std::optional<std::string> option_value(const Options& o, std::string_view name) {
    for (std::size_t i = 0; i + 1 < o.rest.size(); ++i)
        if (o.rest[i] == name) return o.rest[i + 1];
    return std::nullopt;
}

/// A CSV file; silently nothing when no path was given.
class Csv {
public:
    Csv(const std::string& path, std::string_view header) {
        if (path.empty()) return;
        file_ = std::fopen(path.c_str(), "w");
        if (file_ == nullptr) throw std::runtime_error(fmt::format("cannot write {}: {}", path, std::strerror(errno)));
        fmt::print(file_, "{}\n", header);
    }
    ~Csv() {
        if (file_ != nullptr) std::fclose(file_);
    }
    Csv(const Csv&) = delete;
    Csv& operator=(const Csv&) = delete;

    template <class... Args>
    void row(fmt::format_string<Args...> format, Args&&... args) {
        if (file_ != nullptr) fmt::print(file_, "{}\n", fmt::format(format, std::forward<Args>(args)...));
    }

private:
    std::FILE* file_ = nullptr;
};

/// Quotes a CSV field when needed.
inline std::string csv_field(std::string_view s) {
    if (s.find_first_of(",\"\n") == std::string_view::npos) return std::string(s);
    std::string q = "\"";
    for (char c : s) {
        if (c == '"') q += '"';
        q += c;
    }
    return q + '"';
}

/// The comparison table of scenarios 1-5: one line per metric and point, with
/// Go's figure, ours, the difference, then the same with point (1) — the
/// baseline — subtracted, and whether that is within 0.1 MiB of Go's.
class GoComparison {
public:
    explicit GoComparison(std::string title) : title_(std::move(title)) {}

    /// A numbered point measured in this process: baseline = the first point added.
    void point(std::string label, Figures go, const Sample& ours) {
        const Figures o = mib(ours);
        if (rows_.empty()) {
            go_base_ = go;
            ours_base_ = o;
        }
        rows_.push_back({std::move(label), go, o,
                         {go.heap_usage - go_base_.heap_usage, go.max_fragmentation - go_base_.max_fragmentation},
                         {o.heap_usage - ours_base_.heap_usage, o.max_fragmentation - ours_base_.max_fragmentation},
                         true});
    }
    /// A row whose figures are baseline-subtracted already (scenario 4: each
    /// step runs in a fresh process with its own baseline).
    void subtracted(std::string label, Figures go_minus_base, Figures ours_minus_base) {
        rows_.push_back({std::move(label), {}, {}, go_minus_base, ours_minus_base, false});
    }
    /// A note printed under the table.
    void note(std::string text) { notes_.push_back(std::move(text)); }

    /// Prints the table; returns the number of figures off by more than 0.1 MiB.
    int print() const {
        int failures = 0;
        std::size_t w = 5;
        for (const Row& r : rows_) w = std::max(w, r.label.size());
        fmt::print("\n{}\n", title_);
        fmt::print("{}\n", std::string(title_.size(), '='));
        fmt::print("{:<{}}  {:<17}{:>8}{:>8}{:>8}  |{:>9}{:>12}{:>8}  {}\n", "point", w, "metric (MiB)", "Go", "gcheap",
                   "diff", "Go-(1)", "gcheap-(1)", "diff", "within 0.1");
        for (const Row& r : rows_) {
            for (int m = 0; m < 2; ++m) {
                const auto pick = [m](const Figures& f) { return m == 0 ? f.heap_usage : f.max_fragmentation; };
                const double gb = pick(r.go_base), ob = pick(r.ours_base);
                const bool ok = within(ob, gb);
                failures += ok ? 0 : 1;
                std::string absolute = r.has_absolute ? fmt::format("{:>8.2f}{:>8.2f}{:>+8.2f}", pick(r.go),
                                                                    pick(r.ours), round2(pick(r.ours)) - round2(pick(r.go)))
                                                      : fmt::format("{:>8}{:>8}{:>8}", "", "", "");
                fmt::print("{:<{}}  {:<17}{}  |{:>9.2f}{:>12.2f}{:>+8.2f}  {}\n", m == 0 ? r.label : "", w,
                           m == 0 ? "heapUsage" : "maxFragmentation", absolute, gb, ob, round2(ob) - round2(gb),
                           ok ? "yes" : "NO");
            }
        }
        for (const std::string& n : notes_) fmt::print("{}\n", n);
        fmt::print("{} of {} baseline-subtracted figures within 0.1 MiB of Go's\n", 2 * rows_.size() - failures,
                   2 * rows_.size());
        return failures;
    }

    /// One CSV line per point and metric.
    void write_csv(const std::string& path, std::string_view scenario) const {
        Csv csv(path, "scenario,point,metric,go_mib,gcheap_mib,go_minus_base_mib,gcheap_minus_base_mib,within_0_1");
        for (const Row& r : rows_) {
            for (int m = 0; m < 2; ++m) {
                const auto pick = [m](const Figures& f) { return m == 0 ? f.heap_usage : f.max_fragmentation; };
                const std::string go = r.has_absolute ? fmt::format("{:.2f}", pick(r.go)) : "";
                const std::string ours = r.has_absolute ? fmt::format("{:.4f}", pick(r.ours)) : "";
                csv.row("{},{},{},{},{},{:.2f},{:.4f},{}", scenario, csv_field(r.label),
                        m == 0 ? "heapUsage" : "maxFragmentation", go, ours, pick(r.go_base), pick(r.ours_base),
                        within(pick(r.ours_base), pick(r.go_base)) ? "yes" : "no");
            }
        }
    }

private:
    struct Row {
        std::string label;
        Figures go, ours, go_base, ours_base;
        bool has_absolute;
    };
    std::string title_;
    std::vector<Row> rows_;
    std::vector<std::string> notes_;
    Figures go_base_{}, ours_base_{};
};

/// Ends a scenario: with --check, exit status 1 when `failures` > 0.
inline int finish(const Options& o, int failures, std::string_view what = "figure(s) off by more than 0.1 MiB") {
    if (!o.check) return 0;
    if (failures > 0) {
        fmt::print("CHECK FAILED: {} {}\n", failures, what);
        return 1;
    }
    fmt::print("CHECK PASSED\n");
    return 0;
}

// ===========================================================================
// 5. Fresh heaps: running this program again
// ===========================================================================
//
// The public API has one heap per process, so "each in a fresh heap" means
// "each in a fresh process". Child runs this same executable (/proc/self/exe)
// with other arguments and talks to it over its stdin and stdout.

class Child {
public:
    explicit Child(const std::vector<std::string>& args) {
        int in[2], out[2];
        if (::pipe(in) != 0 || ::pipe(out) != 0) throw std::runtime_error("pipe failed");
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_adddup2(&actions, in[0], STDIN_FILENO);
        posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
        for (int fd : {in[0], in[1], out[0], out[1]}) posix_spawn_file_actions_addclose(&actions, fd);

        std::vector<std::string> full{"/proc/self/exe"};
        full.insert(full.end(), args.begin(), args.end());
        std::vector<char*> argv;
        for (std::string& a : full) argv.push_back(a.data());
        argv.push_back(nullptr);

        const int rc = posix_spawn(&pid_, "/proc/self/exe", &actions, nullptr, argv.data(), environ);
        posix_spawn_file_actions_destroy(&actions);
        ::close(in[0]);
        ::close(out[1]);
        if (rc != 0) {
            ::close(in[1]);
            ::close(out[0]);
            throw std::runtime_error(fmt::format("posix_spawn failed: {}", std::strerror(rc)));
        }
        to_child_ = ::fdopen(in[1], "w");
        from_child_ = ::fdopen(out[0], "r");
    }
    ~Child() {
        try {
            wait();
        } catch (...) {
        }
    }
    Child(const Child&) = delete;
    Child& operator=(const Child&) = delete;

    /// Sends one line to the child's stdin.
    void send(std::string_view line) {
        fmt::print(to_child_, "{}\n", line);
        std::fflush(to_child_);
    }
    /// Reads one line from the child's stdout (without the newline); throws at EOF.
    std::string receive() {
        std::string line;
        for (int c; (c = std::fgetc(from_child_)) != EOF && c != '\n';) line += static_cast<char>(c);
        if (line.empty() && std::feof(from_child_)) throw std::runtime_error("child process ended early");
        return line;
    }
    /// Closes the child's stdin and waits for it; throws unless it exited with 0.
    void wait() {
        if (pid_ <= 0) return;
        if (to_child_ != nullptr) std::fclose(to_child_);
        to_child_ = nullptr;
        int status = 0;
        while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
        }
        pid_ = -1;
        if (from_child_ != nullptr) std::fclose(from_child_);
        from_child_ = nullptr;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            throw std::runtime_error(fmt::format("child process failed (status {:#x})", status));
    }

private:
    pid_t pid_ = -1;
    std::FILE* to_child_ = nullptr;
    std::FILE* from_child_ = nullptr;
};

/// Sample <-> one line of text, for passing measurements between processes.
inline std::string to_line(const Sample& s) {
    return fmt::format("{} {} {} {}", s.heap_usage, s.max_fragmentation, s.heap_alloc, s.heap_objects);
}
inline Sample from_line(const std::string& line) {
    Sample s;
    unsigned long long a = 0, b = 0, c = 0, d = 0;
    if (std::sscanf(line.c_str(), "%llu %llu %llu %llu", &a, &b, &c, &d) != 4)
        throw std::runtime_error(fmt::format("bad measurement line from child: '{}'", line));
    s.heap_usage = a;
    s.max_fragmentation = b;
    s.heap_alloc = c;
    s.heap_objects = d;
    return s;
}

}  // namespace scenario
