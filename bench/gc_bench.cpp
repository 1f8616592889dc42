// Collector benchmark: full-collection pause and mark throughput on two live
// heaps, and the classic GCBench, for gcheap, Boehm GC and glibc malloc/free.
// Results and the method are recorded in docs/performance.md ("Collector").
//
// A plain main() program, not Google Benchmark: every measurement runs in a
// fresh child process (this executable, re-run with --only), so that peak RSS
// (VmHWM of the child's own address space) belongs to one allocator alone and
// no collector's threads, signal handlers or heap disturb another's numbers.
// The parent only starts children and prints tables; it allocates nothing
// from either collector. (benchmark_main is linked into every bench/ program,
// but it is a static archive: its main() is not pulled in next to this one.)
//
// Usage:
//   gc_bench [--bench=all|pause|gcbench] [--reps=N] [--collections=K]
//       Runs every variant N times (default 5), repetitions interleaved
//       round-robin against drift, and prints Markdown tables of medians with
//       the min-max range.
//   gc_bench --only=VARIANT --bench=pause --heap=list|array [--collections=K] [--gctrace]
//   gc_bench --only=VARIANT --bench=gcbench
//       One measurement in this process; prints one "@result key=value ..." line.
//
// Variants:
//   gcheap      gcheap, mark_threads = 0 (one per online CPU: 2 here)
//   gcheap-1t   gcheap, mark_threads = 1 (the collecting thread marks alone)
//   gcheap-gogc150  GCBench only: gcheap with GOGC 150, which gives about
//               Boehm's peak RSS (a same-memory comparison)
//   boehm       Boehm GC, default marker count (GC_INIT; parallel marking is
//               started explicitly if the library did not start it)
//   boehm-1t    Boehm GC, GC_set_markers_count(1)
//   malloc      glibc malloc/free (no collector)
//
// Pause benchmark (--bench=pause): builds a live heap, then times K full
// collections after one untimed warm-up collection.
//   list    10^6 linked 16-byte nodes {next, value}, linked in allocation
//           order; the head is the only root. 16 MB (15.3 MiB) live.
//   array   100 MiB of live 64-byte objects (1,638,400) reachable from one
//           pointer array (12.5 MiB, itself a large scanned object); the
//           objects hold small integers, no pointers. 112.5 MiB live.
// gcheap: a fresh gcheap::detail::Heap (gc_percent -1 so that building does
// not collect, no background sweeper); the root is a global registered with
// the heap's RootSet. Each cycle is heap.collector().collect(); "pause" is
// that cycle's PauseNs from read_mem_stats() (gate closed -> world restarted:
// stop, mark, mark termination), "collect" the wall time of collect(), which
// adds sweeping every span before returning.
// Boehm: built with GC_disable(), then GC_enable(); each cycle is
// GC_gcollect(); "pause" runs from GC_EVENT_PRE_STOP_WORLD to
// GC_EVENT_POST_START_WORLD (GC_set_on_collection_event), "collect" is the
// wall time of GC_gcollect(), which first finishes the lazy sweep of the
// previous cycle and leaves this cycle's sweep to later allocations.
// malloc: no pause; "collect" is the time to free() the whole structure once
// (K = 1), for context.
// Mark throughput = nominal live bytes (what the program allocated and keeps:
// 16 MB or 112.5 MiB, the same for every allocator) / pause.
//
// GCBench (--bench=gcbench): the Ellis/Kovac/Boehm benchmark as in Boehm's
// GCBench.c: a stretch tree of depth 18, a long-lived tree of depth 16 and an
// array of 500,000 doubles (pointer-free), then for depth 4, 6, ..., 16,
// NumIters(depth) trees built top-down (Populate) and as many bottom-up
// (MakeTree). Nodes are {left, right, int i, int j}, 24 bytes.
//   gcheap: the default heap through the public API (gcheap::make<Node>,
//           gcheap::alloc_noscan for the array), automatic collection by the
//           pacer (GOGC 100, background sweeper); GCHEAP_MARK_THREADS=1 is
//           set for gcheap-1t, GCHEAP_GOGC=150 for gcheap-gogc150. Roots:
//           the stack, conservatively.
//   boehm:  GC_MALLOC nodes, GC_MALLOC_ATOMIC array, default settings.
//   malloc: malloc nodes, every dropped tree freed explicitly.
// Reported: wall time of the whole benchmark, process CPU time (user + sys,
// all threads), peak RSS (VmHWM), collections, total and longest pause.
#include <gcheap/gcheap.hpp>

#include "gc/collector.hpp"
#include "runtime/heap.hpp"

#include <algorithm>
#include <cinttypes>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#ifdef GCHEAP_BENCH_HAVE_BOEHM
#define GC_THREADS
#define GC_NO_THREAD_REDIRECTS  // this program starts no threads of its own
#include <gc/gc.h>
#endif

namespace {

// ---------------------------------------------------------------------------
// Utilities
// ---------------------------------------------------------------------------

std::uint64_t now_ns() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

/// A field of /proc/self/status in bytes ("VmHWM", "VmRSS"), 0 if absent.
std::uint64_t proc_status_bytes(const char* field) {
    std::FILE* f = std::fopen("/proc/self/status", "r");
    if (f == nullptr) return 0;
    char line[256];
    std::uint64_t kib = 0;
    const std::size_t len = std::strlen(field);
    while (std::fgets(line, sizeof line, f) != nullptr) {
        if (std::strncmp(line, field, len) == 0 && line[len] == ':') {
            kib = std::strtoull(line + len + 1, nullptr, 10);
            break;
        }
    }
    std::fclose(f);
    return kib * 1024;
}

double process_cpu_seconds() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
           static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

constexpr double kMiB = 1024.0 * 1024.0;

double median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/// The "@result key=value ..." line a child prints for the parent.
class Result {
public:
    void add(const char* key, double value) { values_.emplace_back(key, value); }
    void print() const {
        std::string line = "@result";
        char buf[64];
        for (const auto& [key, value] : values_) {
            std::snprintf(buf, sizeof buf, " %s=%.9g", key.c_str(), value);
            line += buf;
        }
        std::printf("%s\n", line.c_str());
        std::fflush(stdout);
    }

private:
    std::vector<std::pair<std::string, double>> values_;
};

enum class Kind { kGcheap, kBoehm, kMalloc };

struct Variant {
    const char* name;
    Kind kind;
    unsigned mark_threads;  // 0: the allocator's default
    int gogc;               // gcheap's GOGC in GCBench; 0: the default (100)
    bool pause;             // part of the pause benchmark (GOGC does not matter there)
};

constexpr Variant kVariants[] = {
    {"gcheap", Kind::kGcheap, 0, 0, true},          {"gcheap-1t", Kind::kGcheap, 1, 0, true},
    {"gcheap-gogc150", Kind::kGcheap, 0, 150, false}, {"boehm", Kind::kBoehm, 0, 0, true},
    {"boehm-1t", Kind::kBoehm, 1, 0, true},         {"malloc", Kind::kMalloc, 0, 0, true},
};

const Variant* find_variant(std::string_view name) {
    for (const Variant& v : kVariants) {
        if (name == v.name) return &v;
    }
    return nullptr;
}

bool have_boehm() {
#ifdef GCHEAP_BENCH_HAVE_BOEHM
    return true;
#else
    return false;
#endif
}

// ---------------------------------------------------------------------------
// Boehm set-up: pause timing through the collection-event callback
// ---------------------------------------------------------------------------

#ifdef GCHEAP_BENCH_HAVE_BOEHM
struct BoehmTimes {
    std::uint64_t stop_begin = 0;
    std::uint64_t mark_begin = 0;
    std::uint64_t last_pause = 0;
    std::uint64_t last_mark = 0;
    std::uint64_t total_pause = 0;
    std::uint64_t max_pause = 0;
    std::uint64_t pauses = 0;
};
BoehmTimes g_boehm;

// Called with Boehm's lock held (or the world stopped): no allocation here.
void GC_CALLBACK on_boehm_event(GC_EventType event) {
    const std::uint64_t t = now_ns();
    switch (event) {
        case GC_EVENT_PRE_STOP_WORLD: g_boehm.stop_begin = t; break;
        case GC_EVENT_MARK_START: g_boehm.mark_begin = t; break;
        case GC_EVENT_MARK_END: g_boehm.last_mark = t - g_boehm.mark_begin; break;
        case GC_EVENT_POST_START_WORLD:
            g_boehm.last_pause = t - g_boehm.stop_begin;
            g_boehm.total_pause += g_boehm.last_pause;
            g_boehm.max_pause = std::max(g_boehm.max_pause, g_boehm.last_pause);
            ++g_boehm.pauses;
            break;
        default: break;
    }
}

/// GC_INIT with `markers` marker threads (0: Boehm's choice); returns the
/// number of marker threads, the initiating one included.
unsigned init_boehm(unsigned markers) {
    if (markers != 0) GC_set_markers_count(markers);
    GC_INIT();
    // Markers start with the first thread the client creates, or here.
    if (GC_get_parallel() == 0 && markers != 1) GC_start_mark_threads();
    GC_set_on_collection_event(on_boehm_event);
    return static_cast<unsigned>(GC_get_parallel()) + 1;
}
#endif

// ---------------------------------------------------------------------------
// Pause benchmark
// ---------------------------------------------------------------------------

struct ListNode {
    ListNode* next;
    std::uintptr_t value;
};
static_assert(sizeof(ListNode) == 16);

constexpr std::size_t kListNodes = 1000000;
constexpr std::size_t kObjectBytes = 64;
constexpr std::size_t kObjects = (std::size_t{100} << 20) / kObjectBytes;  // 1,638,400
constexpr std::size_t kObjectWords = kObjectBytes / sizeof(std::uintptr_t);

enum class Shape { kList, kArray };

std::uint64_t nominal_live_bytes(Shape shape) {
    return shape == Shape::kList ? kListNodes * sizeof(ListNode)
                                 : kObjects * kObjectBytes + kObjects * sizeof(void*);
}

// The only root of the structure. Boehm scans the executable's data and bss;
// gcheap scans it because it is registered with the heap's RootSet.
void* volatile g_root = nullptr;

/// Builds the structure with `alloc(bytes)` (zeroed or not), returns its root.
template <class Alloc>
void* build(Shape shape, Alloc&& alloc) {
    if (shape == Shape::kList) {
        ListNode* head = nullptr;
        ListNode* tail = nullptr;
        for (std::size_t i = 0; i < kListNodes; ++i) {
            auto* node = static_cast<ListNode*>(alloc(sizeof(ListNode)));
            node->next = nullptr;
            node->value = i;
            if (tail == nullptr) {
                head = node;
                g_root = head;
            } else {
                tail->next = node;
            }
            tail = node;
        }
        return head;
    }
    auto** array = static_cast<std::uintptr_t**>(alloc(kObjects * sizeof(void*)));
    g_root = array;
    for (std::size_t i = 0; i < kObjects; ++i) {
        auto* object = static_cast<std::uintptr_t*>(alloc(kObjectBytes));
        for (std::size_t w = 0; w < kObjectWords; ++w) object[w] = i * kObjectWords + w;  // no pointers
        array[i] = object;
    }
    return array;
}

/// Walks the structure and checks every value: the collectors freed nothing.
bool verify(Shape shape, void* root) {
    if (shape == Shape::kList) {
        std::size_t i = 0;
        for (auto* node = static_cast<ListNode*>(root); node != nullptr; node = node->next, ++i) {
            if (node->value != i) return false;
        }
        return i == kListNodes;
    }
    auto** array = static_cast<std::uintptr_t**>(root);
    for (std::size_t i = 0; i < kObjects; ++i) {
        for (std::size_t w = 0; w < kObjectWords; ++w) {
            if (array[i][w] != i * kObjectWords + w) return false;
        }
    }
    return true;
}

void free_structure(Shape shape, void* root) {
    if (shape == Shape::kList) {
        for (auto* node = static_cast<ListNode*>(root); node != nullptr;) {
            ListNode* next = node->next;
            std::free(node);
            node = next;
        }
        return;
    }
    auto** array = static_cast<std::uintptr_t**>(root);
    for (std::size_t i = 0; i < kObjects; ++i) std::free(array[i]);
    std::free(array);
}

struct PauseSamples {
    std::vector<double> pause_ns;
    std::vector<double> collect_ns;
    std::vector<double> mark_ns;  // Boehm only: MARK_START -> MARK_END
};

/// `heap_bytes` < 0: no collector (malloc), no pause, mark or heap figures.
void report_pause(Result& r, Shape shape, const PauseSamples& s, double build_s, std::uint64_t rss_after_build,
                  double heap_bytes) {
    r.add("build_s", build_s);
    r.add("collect_ms", median(s.collect_ns) / 1e6);
    r.add("live_mib", static_cast<double>(nominal_live_bytes(shape)) / kMiB);
    if (heap_bytes >= 0) {
        const double pause = median(s.pause_ns);
        r.add("pause_ms", pause / 1e6);
        r.add("pause_min_ms", *std::min_element(s.pause_ns.begin(), s.pause_ns.end()) / 1e6);
        r.add("pause_max_ms", *std::max_element(s.pause_ns.begin(), s.pause_ns.end()) / 1e6);
        if (!s.mark_ns.empty()) r.add("mark_ms", median(s.mark_ns) / 1e6);
        r.add("mark_mibps", static_cast<double>(nominal_live_bytes(shape)) / kMiB / (pause / 1e9));
        r.add("heap_mib", heap_bytes / kMiB);
    }
    r.add("rss_after_build_mib", static_cast<double>(rss_after_build) / kMiB);
    r.add("peak_rss_mib", static_cast<double>(proc_status_bytes("VmHWM")) / kMiB);
}

int run_pause_gcheap(const Variant& v, Shape shape, int collections, bool gctrace) {
    gcheap::HeapOptions options;
    options.gc_percent = -1;  // building does not collect; collect() still does
    options.mark_threads = v.mark_threads;
    options.background_sweeper = false;
    options.gctrace = gctrace ? 1 : 0;
    auto heap = std::make_unique<gcheap::detail::Heap>(options);
    heap->collector().roots().add(const_cast<void**>(&g_root), const_cast<void**>(&g_root) + 1);

    const std::uint64_t t0 = now_ns();
    void* root = build(shape, [&](std::size_t n) { return heap->alloc(n, false); });
    const double build_s = static_cast<double>(now_ns() - t0) / 1e9;
    const std::uint64_t rss_after_build = proc_status_bytes("VmRSS");

    PauseSamples s;
    gcheap::MemStats stats;
    for (int k = -1; k < collections; ++k) {  // k = -1: warm-up
        const std::uint64_t c0 = now_ns();
        heap->collector().collect();
        const std::uint64_t c1 = now_ns();
        stats = heap->read_mem_stats();
        if (k < 0) continue;
        s.pause_ns.push_back(static_cast<double>(stats.PauseNs[(stats.NumGC + 255) % 256]));
        s.collect_ns.push_back(static_cast<double>(c1 - c0));
    }
    if (!verify(shape, root)) {
        std::fprintf(stderr, "gc_bench: %s freed live objects (%s)\n", v.name,
                     shape == Shape::kList ? "list" : "array");
        return 1;
    }
    Result r;
    r.add("mark_threads", static_cast<double>(heap->collector().marker().mark_threads()));
    report_pause(r, shape, s, build_s, rss_after_build, static_cast<double>(stats.HeapInuse));
    r.add("heap_alloc_mib", static_cast<double>(stats.HeapAlloc) / kMiB);
    r.print();
    gcheap::keep_alive(root);
    heap->collector().roots().remove(const_cast<void**>(&g_root), const_cast<void**>(&g_root) + 1);
    g_root = nullptr;
    return 0;
}

int run_pause_boehm([[maybe_unused]] const Variant& v, [[maybe_unused]] Shape shape,
                    [[maybe_unused]] int collections) {
#ifdef GCHEAP_BENCH_HAVE_BOEHM
    const unsigned markers = init_boehm(v.mark_threads);
    GC_disable();
    const std::uint64_t t0 = now_ns();
    void* root = build(shape, [](std::size_t n) { return GC_MALLOC(n); });
    const double build_s = static_cast<double>(now_ns() - t0) / 1e9;
    const std::uint64_t rss_after_build = proc_status_bytes("VmRSS");
    GC_enable();

    PauseSamples s;
    for (int k = -1; k < collections; ++k) {
        const std::uint64_t c0 = now_ns();
        GC_gcollect();
        const std::uint64_t c1 = now_ns();
        if (k < 0) continue;
        s.pause_ns.push_back(static_cast<double>(g_boehm.last_pause));
        s.mark_ns.push_back(static_cast<double>(g_boehm.last_mark));
        s.collect_ns.push_back(static_cast<double>(c1 - c0));
    }
    if (!verify(shape, root)) {
        std::fprintf(stderr, "gc_bench: %s freed live objects\n", v.name);
        return 1;
    }
    Result r;
    r.add("mark_threads", markers);
    report_pause(r, shape, s, build_s, rss_after_build, static_cast<double>(GC_get_heap_size()));
    r.print();
    GC_reachable_here(root);
    return 0;
#else
    std::fprintf(stderr, "gc_bench: built without Boehm GC (libgc-dev)\n");
    return 2;
#endif
}

int run_pause_malloc(Shape shape) {
    const std::uint64_t t0 = now_ns();
    void* root = build(shape, [](std::size_t n) { return std::malloc(n); });
    const double build_s = static_cast<double>(now_ns() - t0) / 1e9;
    const std::uint64_t rss_after_build = proc_status_bytes("VmRSS");
    if (!verify(shape, root)) return 1;
    PauseSamples s;
    const std::uint64_t c0 = now_ns();
    free_structure(shape, root);
    s.collect_ns.push_back(static_cast<double>(now_ns() - c0));
    Result r;
    report_pause(r, shape, s, build_s, rss_after_build, -1);
    r.print();
    return 0;
}

// ---------------------------------------------------------------------------
// GCBench (Ellis, Kovac, Boehm), after Boehm's GCBench.c
// ---------------------------------------------------------------------------

struct Node {
    Node* left;
    Node* right;
    int i = 0;
    int j = 0;
    explicit Node(Node* l = nullptr, Node* r = nullptr) : left(l), right(r) {}
};
static_assert(sizeof(Node) == 24);

constexpr int kStretchTreeDepth = 18;
constexpr int kLongLivedTreeDepth = 16;
constexpr int kArraySize = 500000;
constexpr int kMinTreeDepth = 4;
constexpr int kMaxTreeDepth = 16;

constexpr int tree_size(int depth) { return (1 << (depth + 1)) - 1; }
constexpr int num_iters(int depth) { return 2 * tree_size(kStretchTreeDepth) / tree_size(depth); }

struct GcheapNodes {
    static Node* make(Node* l = nullptr, Node* r = nullptr) { return gcheap::make<Node>(l, r); }
    static double* make_array(std::size_t n) { return static_cast<double*>(gcheap::alloc_noscan(n * sizeof(double))); }
    static void drop(Node*) {}
};

#ifdef GCHEAP_BENCH_HAVE_BOEHM
struct BoehmNodes {
    static Node* make(Node* l = nullptr, Node* r = nullptr) { return ::new (GC_MALLOC(sizeof(Node))) Node(l, r); }
    static double* make_array(std::size_t n) { return static_cast<double*>(GC_MALLOC_ATOMIC(n * sizeof(double))); }
    static void drop(Node*) {}
};
#endif

struct MallocNodes {
    static Node* make(Node* l = nullptr, Node* r = nullptr) {
        void* p = std::malloc(sizeof(Node));
        if (p == nullptr) throw std::bad_alloc();
        return ::new (p) Node(l, r);
    }
    static double* make_array(std::size_t n) { return static_cast<double*>(std::calloc(n, sizeof(double))); }
    static void drop(Node* node) {
        if (node == nullptr) return;
        drop(node->left);
        drop(node->right);
        std::free(node);
    }
};

template <class A>
struct GCBench {
    // Build the tree top-down.
    static void populate(int depth, Node* node) {
        if (depth <= 0) return;
        --depth;
        node->left = A::make();
        node->right = A::make();
        populate(depth, node->left);
        populate(depth, node->right);
    }
    // Build the tree bottom-up.
    static Node* make_tree(int depth) {
        if (depth <= 0) return A::make();
        Node* left = make_tree(depth - 1);
        Node* right = make_tree(depth - 1);
        return A::make(left, right);
    }
    static void time_construction(int depth) {
        const int iters = num_iters(depth);
        for (int i = 0; i < iters; ++i) {
            Node* temp = A::make();
            populate(depth, temp);
            A::drop(temp);
        }
        for (int i = 0; i < iters; ++i) {
            Node* temp = make_tree(depth);
            A::drop(temp);
        }
    }
    /// Returns false if the long-lived data did not survive.
    static bool run() {
        Node* stretch = make_tree(kStretchTreeDepth);
        A::drop(stretch);
        stretch = nullptr;

        Node* long_lived = A::make();
        populate(kLongLivedTreeDepth, long_lived);
        double* array = A::make_array(kArraySize);
        for (int i = 0; i < kArraySize / 2; ++i) array[i] = 1.0 / i;

        for (int depth = kMinTreeDepth; depth <= kMaxTreeDepth; depth += 2) time_construction(depth);

        const bool ok = long_lived != nullptr && long_lived->left != nullptr && array[1000] == 1.0 / 1000;
        gcheap::keep_alive(long_lived);
        gcheap::keep_alive(array);
        if constexpr (std::is_same_v<A, MallocNodes>) {
            A::drop(long_lived);
            std::free(array);
        }
        return ok;
    }
};

void report_gcbench(Result& r, double wall_s, double cpu_s, double num_gc, double pause_total_ns, double pause_max_ns) {
    r.add("wall_s", wall_s);
    r.add("cpu_s", cpu_s);
    r.add("peak_rss_mib", static_cast<double>(proc_status_bytes("VmHWM")) / kMiB);
    if (num_gc < 0) return;  // malloc: no collector
    r.add("num_gc", num_gc);
    r.add("pause_total_ms", pause_total_ns / 1e6);
    r.add("pause_max_ms", pause_max_ns / 1e6);
}

int run_gcbench(const Variant& v) {
    Result r;
    if (v.kind == Kind::kGcheap) {
        // The default heap reads its options at first use.
        if (v.mark_threads != 0) setenv("GCHEAP_MARK_THREADS", std::to_string(v.mark_threads).c_str(), 1);
        if (v.gogc != 0) setenv("GCHEAP_GOGC", std::to_string(v.gogc).c_str(), 1);
        const double cpu0 = process_cpu_seconds();
        const std::uint64_t t0 = now_ns();
        const bool ok = GCBench<GcheapNodes>::run();
        const double wall = static_cast<double>(now_ns() - t0) / 1e9;
        const double cpu = process_cpu_seconds() - cpu0;
        if (!ok) return 1;
        const gcheap::MemStats s = gcheap::read_mem_stats();
        std::uint64_t max_pause = 0;
        for (std::uint32_t i = 0; i < std::min<std::uint32_t>(s.NumGC, 256); ++i) {
            max_pause = std::max(max_pause, s.PauseNs[i]);
        }
        r.add("mark_threads", static_cast<double>(gcheap::detail::default_heap().collector().marker().mark_threads()));
        report_gcbench(r, wall, cpu, s.NumGC, static_cast<double>(s.PauseTotalNs), static_cast<double>(max_pause));
    } else if (v.kind == Kind::kBoehm) {
#ifdef GCHEAP_BENCH_HAVE_BOEHM
        const unsigned markers = init_boehm(v.mark_threads);
        const std::uint64_t gc0 = g_boehm.pauses;
        const double cpu0 = process_cpu_seconds();
        const std::uint64_t t0 = now_ns();
        const bool ok = GCBench<BoehmNodes>::run();
        const double wall = static_cast<double>(now_ns() - t0) / 1e9;
        const double cpu = process_cpu_seconds() - cpu0;
        if (!ok) return 1;
        r.add("mark_threads", markers);
        report_gcbench(r, wall, cpu, static_cast<double>(g_boehm.pauses - gc0),
                       static_cast<double>(g_boehm.total_pause), static_cast<double>(g_boehm.max_pause));
#else
        std::fprintf(stderr, "gc_bench: built without Boehm GC (libgc-dev)\n");
        return 2;
#endif
    } else {
        const double cpu0 = process_cpu_seconds();
        const std::uint64_t t0 = now_ns();
        const bool ok = GCBench<MallocNodes>::run();
        const double wall = static_cast<double>(now_ns() - t0) / 1e9;
        const double cpu = process_cpu_seconds() - cpu0;
        if (!ok) return 1;
        report_gcbench(r, wall, cpu, -1, 0, 0);
    }
    r.print();
    return 0;
}

// ---------------------------------------------------------------------------
// Driver: one child process per measurement
// ---------------------------------------------------------------------------

using Values = std::map<std::string, double>;

std::string self_path() {
    char buf[4096];
    const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0) return "gc_bench";
    buf[n] = '\0';
    return buf;
}

/// Runs this program with `args`; returns the parsed @result line, or empty.
Values run_child(const std::string& exe, const std::string& args) {
    const std::string command = "'" + exe + "' " + args;
    std::FILE* pipe = popen(command.c_str(), "r");
    Values values;
    if (pipe == nullptr) return values;
    char line[4096];
    while (std::fgets(line, sizeof line, pipe) != nullptr) {
        if (std::strncmp(line, "@result", 7) != 0) continue;
        char* save = nullptr;
        for (char* tok = strtok_r(line + 7, " \n", &save); tok != nullptr; tok = strtok_r(nullptr, " \n", &save)) {
            char* eq = std::strchr(tok, '=');
            if (eq == nullptr) continue;
            *eq = '\0';
            values[tok] = std::strtod(eq + 1, nullptr);
        }
    }
    const int status = pclose(pipe);
    if (status != 0) {
        std::fprintf(stderr, "gc_bench: child failed (status %d): %s\n", status, command.c_str());
        values.clear();
    }
    return values;
}

struct Cell {
    std::vector<double> samples;
    std::string format(const char* fmt, bool range) const {
        if (samples.empty()) return "–";
        char buf[128];
        const double med = median(samples);
        const auto [lo, hi] = std::minmax_element(samples.begin(), samples.end());
        std::string out;
        std::snprintf(buf, sizeof buf, fmt, med);
        out = buf;
        if (range && samples.size() > 1 && *lo != *hi) {
            out += " (";
            std::snprintf(buf, sizeof buf, fmt, *lo);
            out += buf;
            out += "–";
            std::snprintf(buf, sizeof buf, fmt, *hi);
            out += buf;
            out += ")";
        }
        return out;
    }
};

struct Column {
    const char* key;
    const char* title;
    const char* fmt;
    bool range = true;  // show min-max after the median
};

void print_table(const char* title, const std::vector<std::string>& rows,
                 std::map<std::string, std::map<std::string, Cell>>& cells, const std::vector<Column>& columns) {
    std::printf("\n### %s\n\n| variant |", title);
    for (const Column& c : columns) std::printf(" %s |", c.title);
    std::printf("\n|---|");
    for (std::size_t i = 0; i < columns.size(); ++i) std::printf("---:|");
    std::printf("\n");
    for (const std::string& row : rows) {
        std::printf("| %s |", row.c_str());
        for (const Column& c : columns) std::printf(" %s |", cells[row][c.key].format(c.fmt, c.range).c_str());
        std::printf("\n");
    }
    std::fflush(stdout);
}

std::string load_average() {
    double load[3] = {0, 0, 0};
    if (getloadavg(load, 3) != 3) return "?";
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.2f %.2f %.2f", load[0], load[1], load[2]);
    return buf;
}

int run_driver(const std::string& bench, int reps, int collections) {
    const std::string exe = self_path();
    const bool pause = bench == "all" || bench == "pause";
    const bool gcbench = bench == "all" || bench == "gcbench";
    std::vector<const Variant*> variants;
    for (const Variant& v : kVariants) {
        if (v.kind != Kind::kBoehm || have_boehm()) variants.push_back(&v);
    }
    std::vector<std::string> pause_rows, gcbench_rows;
    for (const Variant* v : variants) {
        if (v->pause) pause_rows.push_back(v->name);
        gcbench_rows.push_back(v->name);
    }

    const std::string load_before = load_average();
    const std::uint64_t t0 = now_ns();
    std::map<std::string, std::map<std::string, Cell>> list_cells, array_cells, gcbench_cells;
    const auto collect_into = [](std::map<std::string, Cell>& cells, const Values& values) {
        for (const auto& [key, value] : values) cells[key].samples.push_back(value);
    };
    // Round-robin: every variant once per repetition, so that drift in the
    // machine's load spreads over all of them.
    for (int rep = 0; rep < reps; ++rep) {
        for (const Variant* v : variants) {
            const std::string only = std::string("--only=") + v->name;
            if (pause && v->pause) {
                const std::string k = std::to_string(v->kind == Kind::kMalloc ? 1 : collections);
                for (const char* heap : {"list", "array"}) {
                    std::fprintf(stderr, "rep %d/%d: pause %s %s\n", rep + 1, reps, heap, v->name);
                    const Values values =
                        run_child(exe, only + " --bench=pause --heap=" + heap + " --collections=" + k);
                    collect_into((std::string_view(heap) == "list" ? list_cells : array_cells)[v->name], values);
                }
            }
            if (gcbench) {
                std::fprintf(stderr, "rep %d/%d: gcbench %s\n", rep + 1, reps, v->name);
                collect_into(gcbench_cells[v->name], run_child(exe, only + " --bench=gcbench"));
            }
        }
    }

    std::printf("Medians of %d runs, min–max in parentheses; every run a fresh process.\n", reps);
    std::printf("Load average before: %s, after: %s; %.0f s in all.\n", load_before.c_str(), load_average().c_str(),
                static_cast<double>(now_ns() - t0) / 1e9);
    const std::vector<Column> pause_columns = {
        {"mark_threads", "markers", "%.0f", false},
        {"pause_ms", "pause ms", "%.1f"},
        {"mark_mibps", "mark MiB/s", "%.0f"},
        {"collect_ms", "collect() / free() ms", "%.1f"},
        {"heap_mib", "heap MiB", "%.1f", false},
        {"peak_rss_mib", "peak RSS MiB", "%.1f", false},
        {"build_s", "build s", "%.3f"},
    };
    if (pause) {
        print_table("Pause: 10^6 linked 16-byte nodes (15.3 MiB live)", pause_rows, list_cells, pause_columns);
        print_table("Pause: 100 MiB of 64-byte objects + 12.5 MiB pointer array (112.5 MiB live)", pause_rows,
                    array_cells, pause_columns);
    }
    if (gcbench) {
        print_table("GCBench (stretch depth 18, long-lived depth 16, 500k doubles, trees of depth 4..16)",
                    gcbench_rows, gcbench_cells,
                    {{"mark_threads", "markers", "%.0f", false},
                     {"wall_s", "wall s", "%.3f"},
                     {"cpu_s", "CPU s", "%.3f"},
                     {"peak_rss_mib", "peak RSS MiB", "%.1f"},
                     {"num_gc", "GCs", "%.0f", false},
                     {"pause_total_ms", "total pause ms", "%.0f"},
                     {"pause_max_ms", "max pause ms", "%.1f"}});
    }
    return 0;
}

int usage() {
    std::fprintf(stderr,
                 "usage: gc_bench [--bench=all|pause|gcbench] [--reps=N] [--collections=K]\n"
                 "       gc_bench --only=gcheap|gcheap-1t|gcheap-gogc150|boehm|boehm-1t|malloc --bench=pause\n"
                 "                --heap=list|array [--collections=K] [--gctrace]\n"
                 "       gc_bench --only=VARIANT --bench=gcbench\n");
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    std::string only;
    std::string bench = "all";
    std::string heap = "list";
    int reps = 5;
    int collections = 5;
    bool gctrace = false;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        const auto value = [&](std::string_view prefix, std::string& out) {
            if (arg.substr(0, prefix.size()) != prefix) return false;
            out = std::string(arg.substr(prefix.size()));
            return true;
        };
        std::string text;
        if (value("--only=", only) || value("--bench=", bench) || value("--heap=", heap)) continue;
        if (value("--reps=", text)) {
            reps = std::max(1, std::atoi(text.c_str()));
        } else if (value("--collections=", text)) {
            collections = std::max(1, std::atoi(text.c_str()));
        } else if (arg == "--gctrace") {
            gctrace = true;
        } else {
            return usage();
        }
    }
    if (bench != "all" && bench != "pause" && bench != "gcbench") return usage();
    if (only.empty()) return run_driver(bench, reps, collections);

    const Variant* v = find_variant(only);
    if (v == nullptr || bench == "all" || (heap != "list" && heap != "array")) return usage();
    if (bench == "gcbench") return run_gcbench(*v);
    const Shape shape = heap == "list" ? Shape::kList : Shape::kArray;
    switch (v->kind) {
        case Kind::kGcheap: return run_pause_gcheap(*v, shape, collections, gctrace);
        case Kind::kBoehm: return run_pause_boehm(*v, shape, collections);
        case Kind::kMalloc: return run_pause_malloc(shape);
    }
    return 1;
}
