// Marker: conservative, parallel marking with the world stopped (Go's
// mgcmark.go: markroot, greyobject, scanobject, gcDrain; Boehm's mark.c).
//
// Every word in a root range or in a scanned object is a candidate pointer.
// A candidate greys an object iff it points into an in-use span of this heap,
// below the span's limit (not into its tail), at an allocated slot; interior
// pointers count. Greying sets the object's mark bit (an atomic fetch-or, so
// that two workers never both push it) and, unless the span is noscan, pushes
// the object's words onto the worker's MarkStack. Large objects are scanned
// in 64 KiB chunks so that work spreads across workers and no single item is
// unbounded.
//
// Parallelism: the collecting thread and up to N-1 helper threads drain
// their own stacks; a worker with surplus work while others wait moves the
// oldest part of it (the largest pending subgraphs) to a shared pool, one
// batch at a time, and an idle worker takes from the pool, spinning briefly
// before it sleeps. Marking
// ends when every worker is idle and the pool is empty. With one mark thread
// the collecting thread marks alone (the debugging mode).
//
// Legal call order, once per cycle, world stopped:
//   ensure_helpers() (before the stop: creating threads may allocate)
//   begin_cycle() -> { scan_root_range() | grey() | scan_object_words() }* -> drain()
//   -> { grey() -> drain() }* -> marked_bytes()
// Invariant (M1): after drain(), every object reachable from the roots
// given is marked (overflowed objects included: drain() rescans for them).
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
    Marker(Heap& heap, unsigned mark_threads);
    ~Marker();
    Marker(const Marker&) = delete;
    Marker& operator=(const Marker&) = delete;

    /// Starts the helper threads if they are not running yet. Call before
    /// stopping the world. Returns the number of threads that will mark.
    unsigned ensure_helpers();

    void begin_cycle();
    /// Conservatively scans [begin, end) (a root range) on the calling thread.
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
    /// Bytes mapped for mark stacks (MemStats.GCSys). No cycle may be running.
    std::size_t sys_bytes() const;

    /// Caps every mark stack at `entries` (0: no cap), to exercise overflow.
    void set_stack_limit_for_testing(std::size_t entries);

private:
    struct Worker {
        MarkStack stack;
        std::uint64_t marked_bytes = 0;
        std::uint64_t scanned_bytes = 0;
    };

    void grey_candidate(Worker& worker, std::uintptr_t candidate);
    void scan_words(Worker& worker, std::uintptr_t begin, std::uintptr_t end);
    void work(Worker& worker);
    void share(Worker& worker);
    void drain_parallel();
    void drain_alone(Worker& worker);
    void rescan_marked_objects(Worker& worker);
    void helper_main(unsigned index);

    const ArenaIndex& index_;
    OsMemory& os_;
    const unsigned mark_threads_;
    bool helper_failure_reported_ = false;
    std::vector<std::unique_ptr<Worker>> workers_;  // [0] is the collecting thread's
    std::atomic<bool> overflow_{false};
    bool exclusive_ = false;  // this cycle marks on the collecting thread alone
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
    // Copies of pool_.size() and done_ for the lock-free checks of busy and
    // spinning workers. Both are hints: a stale value costs one extra share
    // or a few more spins, and every decision is re-checked under pool_mu_.
    std::atomic<std::size_t> pool_items_{0};
    std::atomic<bool> done_flag_{false};
    std::vector<std::thread> helpers_;
};

}  // namespace gcheap::detail
