// Marker: conservative, parallel marking with the world stopped (Go's
// mgcmark.go: markroot, greyobject, scanobject, gcDrain; Boehm's mark.c).
//
// Every word in a root range or in a scanned object is a candidate pointer.
// A candidate greys an object iff it points into an in-use span of this heap,
// below the span's limit (not into its tail), at an allocated slot; interior
// pointers count. Greying sets the object's mark bit (an atomic fetch-or
// while other workers may mark, so that two never both push it; a plain store
// otherwise, see (M2)) and, unless the span is noscan, pushes the object's
// words onto the worker's MarkStack. Popped objects are prefetched a few
// objects ahead of their scan, to overlap cache misses. Large objects are scanned
// in 64 KiB chunks so that work spreads across workers and no single item is
// unbounded.
//
// Parallelism: in a cycle that follows one which marked at least
// parallel_mark_min_bytes, helpers are woken when work first enters the pool
// (a drain without surplus, such as a list, never wakes them); then the
// collecting thread and up to N-1 helper threads drain
// their own stacks; a worker with surplus work while others wait moves the
// oldest part of it (the largest pending subgraphs) to a shared pool, one
// batch at a time, and an idle worker takes from the pool, spinning briefly
// before it sleeps. Marking
// ends when every worker is idle and the pool is empty. With one mark thread
// the collecting thread marks alone (the debugging mode).
//
// Legal call order, once per cycle, world stopped:
//   ensure_helpers() (before the stop: creating threads may allocate)
//   begin_cycle(allocated) -> { scan_root_range() | grey() | scan_object_words() }* -> drain()
//   -> { grey() -> drain() }* -> marked_bytes()
// Invariant (M1): after drain(), every object reachable from the roots
// given is marked (overflowed objects included: drain() rescans for them).
// (M2), the rule for plain mark-bit stores, is at exclusive_ below.
#pragma once

#include "gc/mark_queue.hpp"

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace gcheap::detail {

class ArenaIndex;
class OsMemory;
class Heap;
struct Span;

class Marker {
public:
    /// Helpers mark only in cycles after one that marked at least
    /// `parallel_min_bytes` (HeapOptions::parallel_mark_min_bytes).
    Marker(Heap& heap, unsigned mark_threads, std::uint64_t parallel_min_bytes = 0);
    ~Marker();
    Marker(const Marker&) = delete;
    Marker& operator=(const Marker&) = delete;

    /// Starts the helper threads if they are not running yet. Call before
    /// stopping the world. Returns the number of threads that will mark.
    unsigned ensure_helpers();

    /// Starts a cycle; `allocated_bytes` (the heap's allocated bytes) sizes
    /// the first cycle's work, which has no previous cycle to go by.
    void begin_cycle(std::uint64_t allocated_bytes);
    /// Conservatively scans [begin, end) (a registered root range), which
    /// must stay unchanged until drain() returns: it is queued as work for
    /// every mark worker.
    void scan_root_range(std::uintptr_t begin, std::uintptr_t end);
    /// Scans a stopped thread's stack [sp, hi); with AddressSanitizer, also the
    /// fake frames its words point into (cppgc's approach to detect_stack_use_after_return).
    void scan_stack(std::uintptr_t sp, std::uintptr_t hi, void* fake_stack);
    /// Greys the object containing `addr`, if any; true if it was newly marked.
    bool grey(std::uintptr_t addr);
    /// Queues the words of the object at `base` for scanning without marking
    /// the object itself (finalizable objects: their referents stay alive).
    void scan_object_words(std::uintptr_t base);
    /// Marks everything reachable from what has been greyed.
    void drain();

    /// Whether the object containing `addr` is marked.
    bool is_marked(std::uintptr_t addr) const;

    std::uint64_t marked_bytes() const;
    std::uint64_t scanned_bytes() const;
    std::uint64_t overflow_rescans() const { return overflow_rescans_; }
    unsigned mark_threads() const { return mark_threads_; }
    /// Whether the current (or last) cycle's drains use the helper threads.
    bool parallel_cycle() const { return parallel_; }
    /// How many drains have woken the helpers so far (they sleep through a
    /// drain that never shares work).
    std::uint64_t helper_wakes() const { return helper_wakes_; }
    /// How many times a helper has entered a round of marking, in all.
    std::uint64_t helper_runs() {
        std::lock_guard<std::mutex> lock(pool_mu_);
        return helper_runs_;
    }
    /// Bytes mapped for mark stacks (MemStats.GCSys). No cycle may be running.
    std::size_t sys_bytes() const;

    /// Caps every mark stack at `entries` (0: no cap), to exercise overflow.
    void set_stack_limit_for_testing(std::size_t entries);

private:
    static constexpr std::size_t kPrefetchBatch = 8;  // popped objects fetched together, then scanned
    static constexpr std::size_t kTransferBatch = 256;  // items moved to or from the pool at once

    // A span whose objects the last candidate pointed into: pointers found
    // together mostly point into one span (a table of objects allocated in a
    // row, a list's or a tree's nodes), and a hit skips the three dependent
    // loads of span_of(). Valid for one mark phase: no span changes while the
    // world is stopped.
    struct SpanHint {
        Span* span = nullptr;
        std::uintptr_t base = 0;
        std::uintptr_t bytes = 0;  // candidate - base < bytes: inside span's objects
    };

    // The arrays are here, not on the C stack: the collecting thread's stack
    // is a root in later cycles, and stale copies of ranges would pin objects.
    // Cache-line aligned: each worker writes its own on every object.
    struct alignas(64) Worker {
        SpanHint hint;
        MarkStack stack;
        MarkRange batch[kPrefetchBatch];     // drain_own_stack()'s objects being fetched
        MarkRange transfer[kTransferBatch];  // share() and the pool's seeding
        std::uint64_t marked_bytes = 0;
        std::uint64_t scanned_bytes = 0;
    };

    /// The span whose objects [base, limit) hold `candidate`, or nullptr.
    /// Any address may be asked; callers filter with the heap's address
    /// range first, which rejects most words for the price of a comparison.
    Span* span_containing(std::uintptr_t candidate) const;
    void grey_candidate(Worker& worker, std::uintptr_t candidate);
    void grey_in_span(Worker& worker, Span* span, std::uintptr_t candidate);
    void scan_words(Worker& worker, std::uintptr_t begin, std::uintptr_t end);
    std::uintptr_t scan_words_hinted(Worker& worker, SpanHint& hint, std::uintptr_t lowest, std::uintptr_t heap_bytes,
                                     std::uintptr_t begin, std::uintptr_t end);
    void scan_ranges(Worker& worker, const MarkRange* ranges, std::size_t n);
    void drain_own_stack(Worker& worker);
    void work(Worker& worker);
    void share(Worker& worker);
    void drain_parallel();
    void wake_helpers_locked();
    void drain_alone(Worker& worker);
    void rescan_marked_objects(Worker& worker);
    /// A helper's loop: one work() per round after `seen_round`.
    void helper_main(unsigned index, std::uint64_t seen_round);

    const ArenaIndex& index_;
    OsMemory& os_;
    const unsigned mark_threads_;
    const std::uint64_t parallel_min_bytes_;
    bool parallel_ = false;  // this cycle's drains use the helpers
    std::uint64_t cycles_ = 0;
    bool helper_failure_reported_ = false;
    std::vector<std::unique_ptr<Worker>> workers_;  // [0] is the collecting thread's
    std::atomic<bool> overflow_{false};
    // (M2) True while only the collecting thread can touch a mark bit, so
    // that marking needs no atomic read-modify-write: during root scanning
    // and overflow rescans, and in a parallel drain until work first enters
    // the pool (a list never gets there). It turns false under pool_mu_
    // before the pool receives anything, so a helper that takes work sees it.
    std::atomic<bool> exclusive_{true};
    std::uint64_t overflow_rescans_ = 0;

    // Shared pool and termination detection, guarded by pool_mu_.
    std::mutex pool_mu_;
    std::condition_variable pool_cv_;
    MarkStack pool_;
    unsigned active_ = 0;
    unsigned idle_ = 0;
    unsigned finished_ = 0;
    bool done_ = false;
    std::uint64_t round_ = 0;  // bumped to start helpers on a drain
    bool stopping_ = false;
    std::atomic<unsigned> waiting_{0};  // idle workers hoping for shared work
    // A parallel drain is running: workers with surplus may share it.
    std::atomic<bool> sharing_{false};
    // This drain's helpers have been woken (by the first work put in the
    // pool); written under pool_mu_ by the collecting thread.
    std::atomic<bool> helpers_awake_{false};
    std::uint64_t helper_wakes_ = 0;  // guarded by pool_mu_
    std::uint64_t helper_runs_ = 0;   // guarded by pool_mu_
    // Copies of pool_.size() and done_ for the lock-free checks of busy and
    // spinning workers. Both are hints: a stale value costs one extra share
    // or a few more spins, and every decision is re-checked under pool_mu_.
    std::atomic<std::size_t> pool_items_{0};
    std::atomic<bool> done_flag_{false};
    std::vector<std::thread> helpers_;
};

}  // namespace gcheap::detail
