// Scavenger: returns free pages to the OS in the background (Go's
// mgcscavenge.go), so that a program whose live heap shrinks sees its
// resident memory shrink too.
//
// Goal. After each collection cycle the collector reports HeapInuse; the
// scavenger then keeps retained memory — HeapSys - HeapReleased, the pages the
// heap keeps resident — at most
//     gc goal    = HeapInuse at the end of the last cycle * 1.10
//                  (Go: lastHeapInUse * heapGoal/lastHeapGoal * (1 + 10%))
//     limit goal = 95% of the memory limit, less the non-heap memory
// whichever is lower. Before the first cycle there is no gc goal, as in Go.
//
// Pacing. The thread releases 64 KiB at a time, highest addresses first
// (PageHeap::release_locked: allocation is carved from low addresses, so the
// two rarely meet), for at most 1 ms of work, then sleeps 99 times as long as
// it worked: about 1% of one CPU, Go's scavengePercent. It waits on a
// condition variable when the goal is met or nothing is left to release — no
// polling — and is woken at the end of each cycle and by set_enabled(true).
// It starts at its first wake-up, so a heap that never collects has none.
//
// A failed madvise is counted by OsMemory and ends the current batch; it is
// never fatal and leaves the counters as they were (the pages stay free and
// resident).
//
// Locking: each release passes the allocator gate shared and takes the page
// heap lock, so stats readers and world stops see the counters whole.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>

namespace gcheap::detail {

class Heap;

class Scavenger {
public:
    Scavenger(Heap& heap, bool background);
    ~Scavenger();
    Scavenger(const Scavenger&) = delete;
    Scavenger& operator=(const Scavenger&) = delete;

    /// End of a collection cycle: sets the goal from HeapInuse and wakes the thread.
    void on_cycle_end(std::uint64_t heap_inuse);
    /// Starts or stops background scavenging; returns the previous setting.
    bool set_enabled(bool enabled);
    bool enabled() const { return enabled_.load(std::memory_order_relaxed); }

    /// The retained-memory goal in bytes (no goal: the maximum value).
    std::uint64_t goal() const;

    /// Bytes released by the background thread since the heap was created.
    std::uint64_t released_bytes() const { return released_.load(std::memory_order_relaxed); }
    /// Whether the background thread has started.
    bool thread_started() const {
        std::lock_guard<std::mutex> lock(mu_);
        return thread_.joinable();
    }
    /// CPU time the background thread has used, in nanoseconds (0 without one).
    std::uint64_t thread_cpu_ns() const;

private:
    void run();
    /// Gives the thread work, starting it if it is not running.
    void wake();
    /// Releases up to `bytes`; returns what was released.
    std::size_t release_some(std::size_t bytes);
    std::uint64_t retained_bytes();

    Heap& heap_;
    std::atomic<bool> enabled_;
    std::atomic<std::uint64_t> gc_goal_;
    std::atomic<std::uint64_t> released_{0};

    mutable std::mutex mu_;
    std::condition_variable cv_;
    bool work_ = false;
    bool stopping_ = false;
    bool start_failure_reported_ = false;
    std::thread thread_;  // started on first wake(), guarded by mu_
};

}  // namespace gcheap::detail
