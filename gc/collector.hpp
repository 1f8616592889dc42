// Collector: one heap's garbage collection cycle and its statistics (Go's
// mgc.go: gcStart, gcMarkDone, gcMarkTermination, gcSweep).
//
// A cycle, in phases:
//   kSweepTermination  finish sweeping the previous cycle (world running);
//                      start mark helpers
//   kStop              close the allocator gate (no slow path in flight), take
//                      the roots and finalizer locks, stop every registered
//                      thread (threads.hpp)
//   kMark              flush every thread cache; grey the roots: registered
//                      ranges, every thread's stack and registers (and ASan
//                      fake stacks), queued finalizer objects, the referents
//                      of finalizable objects; drain (marker.hpp); resurrect
//                      unreachable finalizable objects and drain again
//   kMarkTermination   every span becomes unswept; heap_live := marked bytes;
//                      the pacer sets the next goal; with gctrace=2, tally
//                      the marked objects per span (fragmentation.hpp);
//                      record the pause; restart
//   kSweep             queue finalizers; collect() sweeps everything before
//                      returning, automatic cycles leave it to allocation and
//                      the background sweeper
// Nothing between kStop and the restart calls malloc or takes a lock a
// stopped thread could hold: stopped threads may be anywhere, including in
// malloc.
//
// Locking: cycle_mu_ serialises cycles. Lock order for a cycle:
//   cycle_mu_ -> gate (exclusive) -> roots -> finalizers -> thread registry -> world stop
#pragma once

#include "gc/data_segments.hpp"
#include "gc/finalizers.hpp"
#include "gc/marker.hpp"
#include "gc/pacer.hpp"
#include "gc/roots.hpp"
#include "gc/sweeper.hpp"
#include "gc/threads.hpp"
#include "runtime/fragmentation.hpp"

#include <gcheap/mem_stats.hpp>
#include <gcheap/options.hpp>

#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>

namespace gcheap::detail {

class CheckMarker;
class Heap;

enum class GcPhase : std::uint8_t { kIdle, kSweepTermination, kStop, kMark, kMarkTermination, kSweep };

class Collector {
public:
    Collector(Heap& heap, const HeapOptions& options);
    ~Collector();
    Collector(const Collector&) = delete;
    Collector& operator=(const Collector&) = delete;

    /// runtime.GC(): a full cycle, started after the call, swept completely on return.
    void collect();
    /// A cycle because heap_live reached the goal; skipped if another thread
    /// has just run one.
    void collect_triggered();
    /// The OS refused memory: collect and sweep so that the retry can reuse pages.
    void collect_for_memory();

    bool should_trigger(std::uint64_t heap_live) const { return pacer_.should_trigger(heap_live); }
    /// False with GOGC off and no memory limit: then nothing collects but collect().
    bool collects_automatically() const {
        return pacer_.gc_percent() >= 0 || pacer_.memory_limit() != Pacer::kNoLimit;
    }

    ThreadRegistry& threads() { return threads_; }
    RootSet& roots() { return roots_; }
    Finalizers& finalizers() { return finalizers_; }
    Sweeper& sweeper() { return sweeper_; }
    Pacer& pacer() { return pacer_; }
    Marker& marker() { return marker_; }
    GcPhase phase() const { return phase_.load(std::memory_order_relaxed); }
    std::uint32_t num_gc() const { return num_gc_.load(std::memory_order_acquire); }

    /// Fills NextGC, LastGC, PauseTotalNs, PauseNs, PauseEnd, NumGC,
    /// NumForcedGC and GCCPUFraction, and adds the collector's metadata to GCSys.
    void fill_mem_stats(MemStats& stats);

    /// Test hook: called with the world stopped after marking, before
    /// sweeping is set up (e.g. to clear a mark bit and plant a bug).
    void set_after_mark_hook_for_testing(void (*hook)(Heap&, void*), void* arg) {
        after_mark_hook_ = hook;
        after_mark_arg_ = arg;
    }

private:
    struct CycleTimes {
        std::uint64_t start_ns, stopped_ns, marked_ns, end_ns;
        std::uint64_t live_before, marked, goal, stacks, globals;
    };
    // The bodies of collect(), collect_triggered() and collect_for_memory(),
    // run as collection entries (threads.hpp).
    void collect_entered();
    void collect_triggered_entered();
    void collect_for_memory_entered();
    void run_cycle(bool forced);
    /// Greys every root into `marker`: the Marker, or the CheckMarker.
    template <class M>
    void mark_roots_stopped(M& marker, CycleTimes* times);
    /// GCHEAP_DEBUG=verify: checks the whole heap with the world stopped
    /// after a sweep has finished; aborts with a report on a violation.
    void verify_after_sweep();
    std::size_t begin_sweep_stopped();
    void record_cycle(const CycleTimes& t, bool forced);
    void print_gctrace(const CycleTimes& t, bool forced);

    Heap& heap_;
    const int gctrace_;
    const std::uint64_t started_ns_;  // CLOCK_MONOTONIC
    // Online CPUs when the heap was made (Go's ncpu, read once at start-up):
    // asking per cycle cost a sysfs read each time.
    const unsigned ncpu_;
    ThreadRegistry threads_;
    RootSet roots_;
    // HeapOptions::scan_globals: the program's writable data segments, read
    // before each stop; guarded by cycle_mu_.
    const bool scan_globals_;
    DataSegments data_segments_;
    Pacer pacer_;
    Marker marker_;
    Sweeper sweeper_;
    Finalizers finalizers_;

    std::mutex cycle_mu_;
    std::uint64_t verified_sweeps_ = 0;  // guarded by cycle_mu_
    std::atomic<GcPhase> phase_{GcPhase::kIdle};
    std::atomic<std::uint32_t> num_gc_{0};
    std::atomic<std::uint64_t> last_heap_inuse_{0};  // at the last mark termination

    // Statistics, guarded by stats_mu_.
    std::mutex stats_mu_;
    std::uint32_t num_forced_gc_ = 0;
    std::uint64_t last_gc_unix_ns_ = 0;
    std::uint64_t pause_total_ns_ = 0;
    std::array<std::uint64_t, 256> pause_ns_{};
    std::array<std::uint64_t, 256> pause_end_{};
    std::uint64_t gc_cpu_ns_ = 0;

    FragTally frag_tally_;  // gctrace=2: what this cycle's sweep will leave; guarded by cycle_mu_

    void (*after_mark_hook_)(Heap&, void*) = nullptr;
    void* after_mark_arg_ = nullptr;
};

}  // namespace gcheap::detail
