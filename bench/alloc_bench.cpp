// Allocation fast-path benchmark: gcheap against glibc malloc, mimalloc and
// Boehm GC, for 16 B, 64 B, 1 KiB and 40 KiB objects on one and two threads.
// Results and the method are recorded in docs/performance.md.
//
// Method (the same for every allocator):
//   - Every timed iteration allocates ONE object and writes one byte into it
//     ("touch"), so that the page faults an allocator causes on fresh memory
//     are charged to it, whoever it is. gcheap itself never writes to a fresh
//     span's objects, so without the touch its page faults would go unpaid.
//   - "batch" variants keep every object in a preallocated per-thread array
//     of up to 64 Ki pointers (at most 64 MiB of objects). When the array is
//     full, the timer is paused and the batch is recycled: freed (malloc,
//     mimalloc), dropped (Boehm, gcheap_gc: made unreachable for the
//     collector), or, for the plain gcheap variants, which run with automatic
//     collection off, the whole gcheap::detail::Heap is destroyed and a fresh
//     one created. Every object of those variants therefore lives in memory
//     fresh from the OS, and its page faults are timed.
//   - "malloc_free" variants free each object right after touching it: the
//     glibc malloc+free cost per object that the target names.
//   - Time is the thread's CPU time (Google Benchmark's default), which
//     includes kernel time such as page faults. Counter `ns_per_obj` is CPU
//     nanoseconds per object per thread (on two threads: each thread's cost
//     while the other allocates too); `faults_per_obj` counts the minor page
//     faults taken inside the timed region (getrusage(RUSAGE_THREAD), read
//     while the timer is paused).
//
// Variants:
//   gcheap/alloc, gcheap/alloc_noscan   Heap::alloc (inline fast path) on a
//       heap shared by all threads of the benchmark, as the default heap is;
//       one ThreadCache per thread; automatic collection off. Objects touched.
//   gcheap_notouch/...                   the same without the touch: the
//       allocator's own work only, no page faults (diagnostic).
//   gcheap_gc/...                        the collector on (GOGC 100, one mark
//       thread, no background sweeper), the batch a root, full batches
//       dropped: allocation plus the marking and sweeping it causes, on
//       memory the heap reuses (compare with boehm/...).
//   gcheap_api/alloc, gcheap_api/alloc_noscan   the public gcheap::alloc()
//       on the process-wide default heap with its default settings (GOGC 100,
//       one mark thread per CPU, background sweeper and scavenger), 16 B and
//       64 B only: what a program using the public API pays. The batch array
//       is a root (gcheap::add_roots) and a full batch is dropped, for the
//       collector to reclaim, so memory is reused as in gcheap_gc. Time is
//       the PROCESS's CPU time (MeasureProcessCPUTime), so that the mark
//       helpers' and the background sweeper's work is charged too.
//   gcheap_api_partition/alloc           gcheap_api/alloc inside a
//       gcheap::PartitionScope (partitions must not slow the fast path).
//   glibc/malloc_free, glibc/malloc_batch
//   mimalloc/malloc_free, mimalloc/malloc_batch   mi_malloc/mi_free (API only;
//       the process malloc stays glibc's, see bench/CMakeLists.txt)
//   boehm/GC_MALLOC, boehm/GC_MALLOC_ATOMIC       batch variants; the batch
//       array is GC-visible (uncollectable), so the batch stays live like the
//       other allocators' batches; one marker thread, so that collection work
//       is done and timed on the allocating thread.
#include <gcheap/gcheap.hpp>

#include "gc/collector.hpp"
#include "runtime/heap.hpp"

#include <benchmark/benchmark.h>

#include <algorithm>
#include <barrier>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <sys/resource.h>

#ifdef GCHEAP_BENCH_HAVE_MIMALLOC
#include <mimalloc.h>
#endif

#ifdef GCHEAP_BENCH_HAVE_BOEHM
#define GC_THREADS
#define GC_NO_THREAD_REDIRECTS  // benchmark threads are registered by hand
#include <gc/gc.h>
#endif

namespace {

constexpr std::size_t kSizes[] = {16, 64, 1024, 40960};
constexpr std::size_t kMaxBatchObjects = std::size_t{64} << 10;
constexpr std::size_t kMaxBatchBytes = std::size_t{64} << 20;

/// Objects per batch: 64 Ki, fewer for big objects (40 KiB -> 1 Ki).
std::size_t batch_objects(std::size_t size) {
    return std::min(kMaxBatchObjects, std::bit_floor(std::max<std::size_t>(1, kMaxBatchBytes / size)));
}

template <bool Touch>
inline void touch(void* p) {
    if constexpr (Touch) *static_cast<volatile unsigned char*>(p) = 1;
}

/// Minor page faults of the calling thread so far.
std::uint64_t thread_minor_faults() {
    rusage usage{};
    getrusage(RUSAGE_THREAD, &usage);
    return static_cast<std::uint64_t>(usage.ru_minflt);
}

/// Counts the calling thread's page faults inside the timed region only.
class FaultMeter {
public:
    void resume() { mark_ = thread_minor_faults(); }  // just before ResumeTiming
    void pause() { timed_ += thread_minor_faults() - mark_; }  // just after PauseTiming
    std::uint64_t timed() const { return timed_; }

private:
    std::uint64_t mark_ = 0;
    std::uint64_t timed_ = 0;
};

// Counters (summed over threads, then divided as their flags say):
//   ns_per_obj      CPU time per object per thread, shown as e.g. "5.4ns"
//                   (seconds per object with an SI prefix);
//   faults_per_obj  minor page faults per object inside the timed region;
//   batch           objects per batch (0: no batch).
void set_counters(benchmark::State& state, std::size_t batch, std::uint64_t timed_faults) {
    using benchmark::Counter;
    const auto objects = static_cast<double>(state.iterations());
    state.SetItemsProcessed(state.iterations());
    state.counters["ns_per_obj"] = Counter(objects, Counter::kIsRate | Counter::kInvert);
    state.counters["faults_per_obj"] = Counter(static_cast<double>(timed_faults), Counter::kAvgIterations);
    state.counters["batch"] = Counter(static_cast<double>(batch), Counter::kAvgThreads);
}

// The batch loop shared by every batch variant. `Policy` per thread:
//   void* alloc(std::size_t)        the timed allocation
//   void recycle(void**, std::size_t) untimed: make room for a new batch
//   void finish(void**, std::size_t)  untimed, after the loop
template <class Policy, bool Touch>
void run_batches(benchmark::State& state, Policy& policy, std::size_t size) {
    const std::size_t cap = batch_objects(size);
    std::vector<void*> storage;
    void** batch = policy.batch_array(cap, storage);
    std::size_t n = cap;  // "full": the first iteration sets the batch up, untimed
    FaultMeter faults;
    faults.resume();
    for (auto _ : state) {
        if (n == cap) [[unlikely]] {
            state.PauseTiming();
            faults.pause();
            policy.recycle(batch, n);
            n = 0;
            faults.resume();
            state.ResumeTiming();
        }
        void* p = policy.alloc(size);
        touch<Touch>(p);
        batch[n++] = p;
    }
    faults.pause();
    benchmark::DoNotOptimize(batch);
    policy.finish(batch, n);
    set_counters(state, cap, faults.timed());
}

// ---------------------------------------------------------------------------
// gcheap
// ---------------------------------------------------------------------------

// Heap modes:
//   kFresh    no collection (gc_percent < 0); the heap is destroyed and a
//             fresh one created between batches, so every object lives in
//             memory fresh from the OS (page faults included, when touched).
//   kCollect  the collector on, with all its work on the allocating threads
//             (one mark thread, no background sweeper: timed, as for Boehm);
//             one heap per run; each thread's batch array is a root, and a
//             full batch is simply dropped, for the collector to reclaim.
enum class HeapMode { kFresh, kCollect };

gcheap::HeapOptions heap_options(HeapMode mode) {
    gcheap::HeapOptions options;
    // kFresh: the batch lives in malloc memory, which the collector does not
    // scan; no cycle may run.
    options.gc_percent = mode == HeapMode::kFresh ? -1 : 100;
    options.mark_threads = 1;
    options.background_sweeper = false;
    return options;
}

// One heap shared by the benchmark's threads, as the default heap is. All
// threads run the same number of iterations, so they fill their batches at
// the same iteration and meet at the barrier; the timers are paused there.
struct SharedHeap {
    std::unique_ptr<gcheap::detail::Heap> heap;
    std::unique_ptr<std::barrier<>> barrier;
};
SharedHeap g_shared;

template <bool Noscan, HeapMode Mode>
struct GcheapPolicy {
    benchmark::State& state;
    gcheap::detail::Heap* heap = nullptr;
    void** roots_begin = nullptr;
    void** roots_end = nullptr;

    void** batch_array(std::size_t cap, std::vector<void*>& storage) {
        storage.assign(cap, nullptr);
        roots_begin = storage.data();
        roots_end = storage.data() + cap;
        return storage.data();
    }
    void* alloc(std::size_t size) { return heap->alloc(size, Noscan); }
    void recycle(void** batch, std::size_t n) {
        if (Mode == HeapMode::kCollect && heap != nullptr) {
            std::fill(batch, batch + n, nullptr);  // the batch dies
            return;
        }
        g_shared.barrier->arrive_and_wait();  // nobody uses the old heap any more
        if (state.thread_index() == 0) {
            g_shared.heap.reset();
            g_shared.heap = std::make_unique<gcheap::detail::Heap>(heap_options(Mode));
        }
        g_shared.barrier->arrive_and_wait();
        heap = g_shared.heap.get();
        if (Mode == HeapMode::kCollect) heap->collector().roots().add(roots_begin, roots_end);
        // Binds this thread's cache to the new heap and registers the thread
        // (Heap::alloc(0) does nothing else), so that the once per thread and
        // heap setup is not counted as allocation cost.
        benchmark::DoNotOptimize(heap->alloc(0, Noscan));
    }
    void finish(void**, std::size_t) {
        if (Mode == HeapMode::kCollect) heap->collector().roots().remove(roots_begin, roots_end);
        // The heap is destroyed by the next run's first recycle(), not here:
        // the other threads of this run are about to exit, and at commit
        // a7192a3 ~Heap() racing a thread's exit corrupts the malloc heap (a
        // second detach_threads() writes through a CacheBinding the exiting
        // thread has just deleted). By the next run, they have been joined.
    }
};

template <bool Noscan, bool Touch, HeapMode Mode = HeapMode::kFresh>
void BM_gcheap(benchmark::State& state, std::size_t size) {
    if (state.thread_index() == 0) {
        // Other threads read g_shared only after the loop's start barrier.
        g_shared.barrier = std::make_unique<std::barrier<>>(state.threads());
    }
    GcheapPolicy<Noscan, Mode> policy{state};
    run_batches<GcheapPolicy<Noscan, Mode>, Touch>(state, policy, size);
}

// The public API on the default heap, which is never reset: the batch array
// is a root of the default heap and full batches are dropped, as in
// HeapMode::kCollect, so the heap reuses its memory instead of growing.
template <bool Noscan>
struct GcheapApiPolicy {
    void** roots_begin = nullptr;
    void** roots_end = nullptr;

    void** batch_array(std::size_t cap, std::vector<void*>& storage) {
        storage.assign(cap, nullptr);
        roots_begin = storage.data();
        roots_end = storage.data() + cap;
        gcheap::add_roots(roots_begin, roots_end);
        return storage.data();
    }
    void* alloc(std::size_t size) { return Noscan ? gcheap::alloc_noscan(size) : gcheap::alloc(size); }
    void recycle(void** batch, std::size_t n) { std::fill(batch, batch + n, nullptr); }
    void finish(void**, std::size_t) { gcheap::remove_roots(roots_begin, roots_end); }
};

template <bool Noscan>
void BM_gcheap_api(benchmark::State& state, std::size_t size) {
    GcheapApiPolicy<Noscan> policy;
    run_batches<GcheapApiPolicy<Noscan>, true>(state, policy, size);
}

// The same inside a PartitionScope: the fast path must cost the same, since
// a scope only points the thread's cache slot at the partition's cache.
template <bool Noscan>
void BM_gcheap_api_partition(benchmark::State& state, std::size_t size) {
    static gcheap::Partition partition("bench");
    gcheap::PartitionScope scope(partition);
    BM_gcheap_api<Noscan>(state, size);
}

// ---------------------------------------------------------------------------
// malloc-style allocators
// ---------------------------------------------------------------------------

struct GlibcApi {
    static void* allocate(std::size_t size) { return std::malloc(size); }
    static void deallocate(void* p) { std::free(p); }
};

#ifdef GCHEAP_BENCH_HAVE_MIMALLOC
struct MimallocApi {
    static void* allocate(std::size_t size) { return mi_malloc(size); }
    static void deallocate(void* p) { mi_free(p); }
};
#endif

template <class Api>
struct MallocBatchPolicy {
    void** batch_array(std::size_t cap, std::vector<void*>& storage) {
        storage.assign(cap, nullptr);
        return storage.data();
    }
    void* alloc(std::size_t size) {
        void* p = Api::allocate(size);
        if (p == nullptr) [[unlikely]] std::abort();
        return p;
    }
    void recycle(void** batch, std::size_t n) {
        for (std::size_t i = 0; i < n; ++i) Api::deallocate(batch[i]);
    }
    void finish(void** batch, std::size_t n) { recycle(batch, n); }
};

template <class Api>
void BM_malloc_batch(benchmark::State& state, std::size_t size) {
    MallocBatchPolicy<Api> policy;
    run_batches<MallocBatchPolicy<Api>, true>(state, policy, size);
}

template <class Api>
void BM_malloc_free(benchmark::State& state, std::size_t size) {
    FaultMeter faults;
    faults.resume();
    for (auto _ : state) {
        void* p = Api::allocate(size);
        if (p == nullptr) [[unlikely]] std::abort();
        touch<true>(p);
        benchmark::DoNotOptimize(p);
        Api::deallocate(p);
    }
    faults.pause();
    set_counters(state, 0, faults.timed());
}

// ---------------------------------------------------------------------------
// Boehm GC
// ---------------------------------------------------------------------------

#ifdef GCHEAP_BENCH_HAVE_BOEHM
void init_boehm() {
    GC_set_markers_count(1);  // collection work runs (and is timed) on the allocating thread
    GC_INIT();
    GC_allow_register_threads();
}

template <bool Atomic>
struct BoehmPolicy {
    bool registered_here = false;
    void** array = nullptr;
    std::size_t cap = 0;

    BoehmPolicy() {
        if (!GC_thread_is_registered()) {
            GC_stack_base base;
            if (GC_get_stack_base(&base) != GC_SUCCESS || GC_register_my_thread(&base) != GC_SUCCESS) std::abort();
            registered_here = true;
        }
    }
    ~BoehmPolicy() {
        if (array != nullptr) GC_FREE(array);
        if (registered_here) GC_unregister_my_thread();
    }
    BoehmPolicy(const BoehmPolicy&) = delete;
    BoehmPolicy& operator=(const BoehmPolicy&) = delete;

    // Scanned and never collected: the batch keeps its objects alive.
    void** batch_array(std::size_t n, std::vector<void*>&) {
        cap = n;
        array = static_cast<void**>(GC_MALLOC_UNCOLLECTABLE(n * sizeof(void*)));
        if (array == nullptr) std::abort();
        return array;
    }
    void* alloc(std::size_t size) {
        void* p = Atomic ? GC_MALLOC_ATOMIC(size) : GC_MALLOC(size);
        if (p == nullptr) [[unlikely]] std::abort();
        return p;
    }
    void recycle(void** batch, std::size_t) { std::memset(static_cast<void*>(batch), 0, cap * sizeof(void*)); }
    void finish(void** batch, std::size_t n) { recycle(batch, n); }
};

template <bool Atomic>
void BM_boehm(benchmark::State& state, std::size_t size) {
    BoehmPolicy<Atomic> policy;
    run_batches<BoehmPolicy<Atomic>, true>(state, policy, size);
}
#endif

// ---------------------------------------------------------------------------
// Registration
// ---------------------------------------------------------------------------

using BenchFn = void (*)(benchmark::State&, std::size_t);

benchmark::internal::Benchmark* add(const std::string& name, BenchFn fn, std::size_t size) {
    auto* b = benchmark::RegisterBenchmark((name + "/" + std::to_string(size)).c_str(),
                                           [fn, size](benchmark::State& state) { fn(state, size); });
    b->Threads(1)->Threads(2);
    return b;
}

void register_all() {
    for (std::size_t size : kSizes) {
        add("gcheap/alloc", BM_gcheap<false, true>, size);
        add("gcheap/alloc_noscan", BM_gcheap<true, true>, size);
    }
    // The public-API variants run for the two sizes where a call's overhead
    // matters, on process CPU time (the collector's threads are charged).
    for (std::size_t size : {std::size_t{16}, std::size_t{64}}) {
        add("gcheap_api/alloc", BM_gcheap_api<false>, size)->MeasureProcessCPUTime();
        add("gcheap_api/alloc_noscan", BM_gcheap_api<true>, size)->MeasureProcessCPUTime();
        add("gcheap_api_partition/alloc", BM_gcheap_api_partition<false>, size)->MeasureProcessCPUTime();
    }
    for (std::size_t size : kSizes) {
        add("gcheap_notouch/alloc", BM_gcheap<false, false>, size);
        add("gcheap_notouch/alloc_noscan", BM_gcheap<true, false>, size);
    }
    for (std::size_t size : kSizes) {
        add("gcheap_gc/alloc", BM_gcheap<false, true, HeapMode::kCollect>, size);
        add("gcheap_gc/alloc_noscan", BM_gcheap<true, true, HeapMode::kCollect>, size);
    }
    for (std::size_t size : kSizes) {
        add("glibc/malloc_free", BM_malloc_free<GlibcApi>, size);
        add("glibc/malloc_batch", BM_malloc_batch<GlibcApi>, size);
    }
#ifdef GCHEAP_BENCH_HAVE_MIMALLOC
    for (std::size_t size : kSizes) {
        add("mimalloc/malloc_free", BM_malloc_free<MimallocApi>, size);
        add("mimalloc/malloc_batch", BM_malloc_batch<MimallocApi>, size);
    }
#endif
#ifdef GCHEAP_BENCH_HAVE_BOEHM
    for (std::size_t size : kSizes) {
        add("boehm/GC_MALLOC", BM_boehm<false>, size);
        add("boehm/GC_MALLOC_ATOMIC", BM_boehm<true>, size);
    }
#endif
}

}  // namespace

int main(int argc, char** argv) {
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
#ifdef GCHEAP_BENCH_HAVE_BOEHM
    init_boehm();
    benchmark::AddCustomContext("boehm", "GC_MALLOC / GC_MALLOC_ATOMIC, 1 marker thread");
#endif
#ifdef GCHEAP_BENCH_HAVE_MIMALLOC
    benchmark::AddCustomContext("mimalloc", std::to_string(mi_version()));
#endif
    benchmark::AddCustomContext("method",
                                "one object per iteration, one byte written to it; batches of up to 64 Ki objects "
                                "(64 MiB) recycled untimed; gcheap: fresh Heap per batch; ns_per_obj = CPU ns per "
                                "object per thread");
    register_all();
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
