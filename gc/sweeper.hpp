// Sweeper: turns mark bits into allocation state, lazily (Go's mgcsweep.go).
//
// At the end of a mark phase every span becomes unswept (Central's unswept
// lists, and the heap's large_unswept list). Sweeping one span:
//   - a small span's mark bits become its alloc bits, the old alloc bits are
//     cleared to serve as the next mark bits, free_index returns to 0 and
//     alloc_count to the number of marked objects; freed slots get needzero;
//     a span with no marked object returns to the page heap, the others to
//     their central's partial or full list; but a span swept on allocation
//     for its own class is kept by the allocating thread even when empty
//     (Go's preserve): freeing it and taking a fresh run from the page heap
//     would cost two trips through the page heap's lock for the same pages;
//   - a large span is kept if marked, else freed to the page heap.
// Spans are swept (1) on allocation, when a class has no partial span
// (sweep_for_allocation); (2) before the page heap grows (reclaim); (3) by a
// background thread after automatic collections (started at the first); (4) completely by
// collect() before it returns, and before the next cycle's world stop.
// The background thread runs at SCHED_IDLE: like Go's bgsweep, which yields
// whenever another goroutine could run, it uses only CPU time nobody else
// wants. When every core is busy, allocation sweeps for itself and keeps the
// empty spans it finds (see above), where a background sweeper competing
// for a core would free them to the page heap for the allocating threads to
// take back. Its locks are held for a span or a batch, never across a wait,
// so a waiter that blocks frees the core the sweeper needs to finish.
// (3) and (4) take spans of one class kMaxBatch at a time, and free the empty
// ones and file the others under one lock each per batch: a background
// sweeper that took the page heap's lock once per span contended with the
// allocating threads for it.
//
// Invariants: (W1) a span is swept exactly once per cycle, by whoever popped
// it from an unswept list; (W2) when pending() is false, every span's mark
// bits are clear (the marker relies on this).
// Locking: sweeping holds the allocator gate shared (callers on the slow path
// already do; sweep_all() takes it itself), never with the world stopped:
// freeing pages may call malloc, which a stopped thread could hold.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <thread>

namespace gcheap::detail {

class Central;
class Heap;
struct Span;

class Sweeper {
public:
    Sweeper(Heap& heap, bool background);
    ~Sweeper();
    Sweeper(const Sweeper&) = delete;
    Sweeper& operator=(const Sweeper&) = delete;

    /// The collector has just made `spans` spans unswept (world stopped).
    void begin_cycle(std::size_t spans) {
        unswept_.store(spans, std::memory_order_release);
        if (spans == 0) sweeps_completed_.fetch_add(1, std::memory_order_relaxed);
    }
    /// Cycles whose every span has been swept (GCHEAP_DEBUG=verify checks each once).
    std::uint64_t sweeps_completed() const { return sweeps_completed_.load(std::memory_order_relaxed); }
    bool pending() const { return unswept_.load(std::memory_order_acquire) != 0; }

    /// Gate held: sweeps unswept spans of `central` (one partition's class)
    /// until one has a free slot (at most 100, as Go's cacheSpan), returned
    /// unfiled; else nullptr.
    struct Span* sweep_for_allocation(Central& central);
    /// Gate held: sweeps spans until `npages` pages have returned to the page
    /// heap or nothing is left to sweep.
    void reclaim(std::size_t npages);
    /// Gate not held: sweeps everything left; on return no sweep is in flight.
    void sweep_all();
    /// Wakes the background sweeper (after an automatic collection).
    void wake_background();

    /// Whether the background thread has started.
    bool thread_started() const {
        std::lock_guard<std::mutex> lock(bg_mu_);
        return background_.joinable();
    }
    /// The background thread's scheduling policy (SCHED_IDLE where it could
    /// be set), or -1 before it has started.
    int background_policy();
    std::uint64_t spans_swept() const { return spans_swept_.load(std::memory_order_relaxed); }

private:
    struct Result {
        std::uint32_t freed_objects = 0;
        std::size_t released_pages = 0;  // non-zero: the span went back to the page heap
        bool empty = false;               // a small span with no object left
    };
    /// Sweeps a span. A large span that died is freed to the page heap
    /// (released_pages != 0); a small span is left to the caller to file or
    /// free (`empty`: no object survived).
    Result sweep_span(Span* span);
    /// Spans popped and swept together by sweep_some().
    static constexpr std::size_t kMaxBatch = 16;
    /// Sweeps up to `max_spans` unswept spans of one class (of any
    /// partition), or one large span, and files or frees them; false if
    /// nothing is left to sweep.
    bool sweep_some(std::size_t max_spans, std::size_t& released_pages);
    void background_main();
    /// bg_mu_ held, thread just started: SCHED_IDLE for the background thread.
    void lower_background_priority();

    Heap& heap_;
    std::atomic<std::size_t> unswept_{0};
    std::atomic<std::size_t> next_class_{0};
    std::atomic<std::uint64_t> spans_swept_{0};
    std::atomic<std::uint64_t> sweeps_completed_{0};

    const bool background_enabled_;
    mutable std::mutex bg_mu_;
    std::condition_variable bg_cv_;
    bool bg_work_ = false;
    bool bg_stop_ = false;
    bool start_failure_reported_ = false;
    std::thread background_;  // started on first wake_background(), guarded by bg_mu_
};

}  // namespace gcheap::detail
