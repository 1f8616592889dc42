// One collection cycle; see collector.hpp for the phases and their rules.
#include "gc/collector.hpp"

#include "gc/checkmark.hpp"
#include "runtime/debug.hpp"

#include "runtime/clock.hpp"
#include "runtime/heap.hpp"
#include "runtime/scavenger.hpp"

#include <fmt/format.h>

#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

namespace gcheap::detail {

namespace {

std::uint64_t unix_ns() {
    timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

unsigned online_cpus() {
    const long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? static_cast<unsigned>(n) : 1u;
}

unsigned mark_threads_for(const HeapOptions& options, unsigned ncpu) {
    return options.mark_threads != 0 ? options.mark_threads : ncpu;
}

// Go's fmtNSAsMS: whole milliseconds from 10 ms up, else two significant
// digits with at most three decimals.
std::string ns_as_ms(std::uint64_t ns) {
    if (ns >= 10000000) return fmt::format("{}", ns / 1000000);
    std::uint64_t x = ns / 1000;
    if (x == 0) return "0";
    int decimals = 3;
    while (x >= 100) {
        x /= 10;
        --decimals;
    }
    std::string digits = fmt::format("{}", x);
    while (static_cast<int>(digits.size()) <= decimals) digits.insert(digits.begin(), '0');
    if (decimals == 0) return digits;
    digits.insert(digits.end() - decimals, '.');
    return digits;
}

// Stack ranges reach the marker (or the checkmark pass) through the thread
// registry's visitor.
template <class M>
void scan_stack_range(void* marker, std::uintptr_t lo, std::uintptr_t hi, void* fake_stack) {
    static_cast<M*>(marker)->scan_stack(lo, hi, fake_stack);
}

// A root range that is no longer wholly mapped: a registered range the
// program unmapped without remove_roots(), or a data segment of a library
// unloaded since the snapshot. Its mapped pages are scanned (the rest can
// hold no pointer any more); the first registered one is reported.
// Probing costs one system call per range.
template <class M>
void scan_mapped_pages(M& marker, std::uintptr_t begin, std::uintptr_t end, bool registered) {
    if (is_mapped(begin, end)) {
        marker.scan_root_range(begin, end);
        return;
    }
    static std::atomic<bool> warned{false};
    if (registered && !warned.exchange(true, std::memory_order_relaxed)) {
        char text[256];
        std::snprintf(text, sizeof text,
                      "gcheap: the root range [%#lx, %#lx) is no longer mapped; only its mapped pages are scanned "
                      "(call gcheap::remove_roots before unmapping a registered range)\n",
                      static_cast<unsigned long>(begin), static_cast<unsigned long>(end));
        [[maybe_unused]] const auto n = ::write(STDERR_FILENO, text, std::strlen(text));
    }
    const std::uintptr_t page = OsMemory::os_page_size();
    for (std::uintptr_t p = begin; p < end;) {
        const std::uintptr_t next = std::min(end, (p & ~(page - 1)) + page);
        if (is_mapped(p, next)) marker.scan_root_range(p, next);
        p = next;
    }
}

// What a collection may leave on the stack below its entry: the collector's
// frames (tens of KiB with the marker's) and nothing the program needs.
constexpr std::size_t kCollectorStackBytes = 64 * 1024;

}  // namespace

Collector::Collector(Heap& heap, const HeapOptions& options)
    : heap_(heap),
      gctrace_(options.gctrace),
      started_ns_(monotonic_ns()),
      ncpu_(online_cpus()),
      threads_(options.scan_globals),
      scan_globals_(options.scan_globals),
      pacer_(options),
      marker_(heap, mark_threads_for(options, ncpu_), options.parallel_mark_min_bytes),
      sweeper_(heap, options.background_sweeper),
      finalizers_(heap) {}

Collector::~Collector() = default;

// The public entries run their cycle inside run_as_collection_entry() (so
// that this thread's stack is scanned from here up, threads.hpp), then
// clear the stack the collector used.
void Collector::collect() {
    run_as_collection_entry([](void* self) { static_cast<Collector*>(self)->collect_entered(); }, this);
    clear_stack_below(kCollectorStackBytes);
}

void Collector::collect_triggered() {
    run_as_collection_entry([](void* self) { static_cast<Collector*>(self)->collect_triggered_entered(); }, this);
    clear_stack_below(kCollectorStackBytes);
}

void Collector::collect_for_memory() {
    run_as_collection_entry([](void* self) { static_cast<Collector*>(self)->collect_for_memory_entered(); }, this);
    clear_stack_below(kCollectorStackBytes);
}

void Collector::collect_entered() {
    MutatorLock<> lock(cycle_mu_);
    run_cycle(true);
    phase_.store(GcPhase::kSweep, std::memory_order_relaxed);
    sweeper_.sweep_all();
    verify_after_sweep();
    phase_.store(GcPhase::kIdle, std::memory_order_relaxed);
    heap_.scavenger().on_cycle_end(heap_.read_mem_stats().HeapInuse);
}

void Collector::collect_triggered_entered() {
    const std::uint32_t seen = num_gc();
    MutatorLock<> lock(cycle_mu_);
    if (num_gc() != seen) return;  // another thread collected while we waited
    if (!should_trigger(heap_.heap_live_.load(std::memory_order_relaxed))) return;
    run_cycle(false);
    phase_.store(GcPhase::kIdle, std::memory_order_relaxed);
    sweeper_.wake_background();
    heap_.scavenger().on_cycle_end(last_heap_inuse_.load(std::memory_order_relaxed));
}

void Collector::collect_for_memory_entered() {
    MutatorLock<> lock(cycle_mu_);
    run_cycle(false);
    sweeper_.sweep_all();
    verify_after_sweep();
    phase_.store(GcPhase::kIdle, std::memory_order_relaxed);
}

void Collector::run_cycle(bool forced) {
    CycleTimes t{};
    t.start_ns = monotonic_ns();
    phase_.store(GcPhase::kSweepTermination, std::memory_order_relaxed);
    sweeper_.sweep_all();  // W2: every mark bit is clear from here on
    verify_after_sweep();
    marker_.ensure_helpers();
    current_thread_stack();  // may allocate; must precede the stop
    if (scan_globals_) {
        try {
            data_segments_.refresh();  // takes the loader's lock: never with the world stopped
        } catch (const std::bad_alloc&) {
            // The previous snapshot stays; the next cycle rebuilds it.
        }
    }

    phase_.store(GcPhase::kStop, std::memory_order_relaxed);
    t.start_ns = monotonic_ns();
    heap_.gate_.lock();
    std::unique_lock<std::mutex> roots_lock(roots_.mutex(), std::defer_lock);
    std::unique_lock<std::mutex> finalizers_lock(finalizers_.mutex(), std::defer_lock);
    lock_for_mutator(roots_lock);
    lock_for_mutator(finalizers_lock);
    threads_.stop_the_world();
    t.stopped_ns = monotonic_ns();

    phase_.store(GcPhase::kMark, std::memory_order_relaxed);
    heap_.flush_all_caches_stopped();
    t.live_before = heap_.heap_live_.load(std::memory_order_relaxed);
    marker_.begin_cycle(t.live_before);
    CheckMarker check(heap_, marker_);
    const bool checking = heap_.debug().checkmark() && check.begin();
    mark_roots_stopped(marker_, &t);
    marker_.drain();
    if (finalizers_.resurrect_unreachable_locked(marker_) != 0) marker_.drain();
    if (after_mark_hook_ != nullptr) after_mark_hook_(heap_, after_mark_arg_);
    if (checking) {
        mark_roots_stopped(check, nullptr);
        check.finish();
    }
    t.marked = marker_.marked_bytes();
    t.marked_ns = monotonic_ns();

    phase_.store(GcPhase::kMarkTermination, std::memory_order_relaxed);
    sweeper_.begin_cycle(begin_sweep_stopped());
    if (gctrace_ >= 2) tally_marked_spans_stopped(heap_.arena_index(), frag_tally_);
    heap_.heap_live_.store(t.marked, std::memory_order_relaxed);
    {
        MemStats now;
        heap_.compute_stats_locked(now);
        pacer_.commit(t.marked, now.Sys - now.HeapReleased, now.HeapIdle - now.HeapReleased, now.HeapAlloc);
        last_heap_inuse_.store(now.HeapInuse, std::memory_order_relaxed);
    }
    t.goal = pacer_.goal();
    t.end_ns = monotonic_ns();
    record_cycle(t, forced);
    threads_.start_the_world();
    finalizers_lock.unlock();
    roots_lock.unlock();
    heap_.gate_.unlock();
    phase_.store(GcPhase::kSweep, std::memory_order_relaxed);
    finalizers_.run_staged();
    if (gctrace_ > 0) print_gctrace(t, forced);
}

template <class M>
void Collector::mark_roots_stopped(M& marker, CycleTimes* t) {
    roots_.for_each_locked([&](std::uintptr_t begin, std::uintptr_t end) { scan_mapped_pages(marker, begin, end, true); });
    if (scan_globals_) {
        data_segments_.for_each(
            [&](std::uintptr_t begin, std::uintptr_t end) { scan_mapped_pages(marker, begin, end, false); });
    }
    roots_.for_each_object_locked([&](std::uintptr_t base) { marker.grey(base); });
    const std::uint64_t stacks =
        threads_.scan_stacks_locked(collection_entry_sp(), scan_stack_range<M>, &marker);
    finalizers_.mark_roots_locked(marker);
    if (t != nullptr) {
        t->globals = roots_.bytes_locked() + (scan_globals_ ? data_segments_.bytes() : 0);
        t->stacks = stacks;
    }
}

void Collector::verify_after_sweep() {
    // Once per completed sweep: collect() and the next cycle's start both
    // call this, and the second must not stop the world again for nothing.
    const std::uint64_t sweeps = sweeper_.sweeps_completed();
    if (!heap_.debug().verify() || sweeps == verified_sweeps_) return;
    verified_sweeps_ = sweeps;
    char report[1024];
    bool ok = false;
    {
        Heap::AllocatorLock lock(heap_);
        threads_.stop_the_world();
        ok = heap_.verify_stopped(report, sizeof report);
        threads_.start_the_world();
    }
    if (!ok) debug_fatal(report);
}

std::size_t Collector::begin_sweep_stopped() {
    std::size_t spans = 0;
    heap_.for_each_central([&](Central& central) {
        central.begin_sweep_locked();
        spans += central.unswept_locked().size();
    });
    while (Span* span = heap_.large_spans_.pop_front()) {
        span->home = SpanHome::kUnswept;
        heap_.large_unswept_.push_front(span);
        ++spans;
    }
    return spans;
}

void Collector::record_cycle(const CycleTimes& t, bool forced) {
    const std::uint64_t pause = t.end_ns - t.start_ns;
    std::lock_guard<std::mutex> lock(stats_mu_);
    const std::uint32_t n = num_gc_.load(std::memory_order_relaxed);
    const std::uint64_t end = unix_ns();
    pause_ns_[n % 256] = pause;
    pause_end_[n % 256] = end;
    pause_total_ns_ += pause;
    last_gc_unix_ns_ = end;
    gc_cpu_ns_ += pause * ncpu_;  // the world is stopped on every CPU, as Go counts it
    if (forced) ++num_forced_gc_;
    num_gc_.store(n + 1, std::memory_order_release);
}

void Collector::fill_mem_stats(MemStats& s) {
    MutatorLock<> lock(stats_mu_);
    s.NextGC = pacer_.goal() == Pacer::kNoGoal ? 0 : pacer_.goal();
    s.LastGC = last_gc_unix_ns_;
    s.PauseTotalNs = pause_total_ns_;
    for (std::size_t i = 0; i < 256; ++i) {
        s.PauseNs[i] = pause_ns_[i];
        s.PauseEnd[i] = pause_end_[i];
    }
    s.NumGC = num_gc_.load(std::memory_order_relaxed);
    s.NumForcedGC = num_forced_gc_;
    const auto wall = static_cast<double>(monotonic_ns() - started_ns_);
    s.GCCPUFraction = wall > 0 ? static_cast<double>(gc_cpu_ns_) / (wall * ncpu_) : 0.0;
}

void Collector::print_gctrace(const CycleTimes& t, bool forced) {
    const unsigned procs = ncpu_;
    const auto since_start = static_cast<double>(monotonic_ns() - started_ns_);
    double fraction = 0;
    {
        std::lock_guard<std::mutex> lock(stats_mu_);
        fraction = since_start > 0 ? static_cast<double>(gc_cpu_ns_) / (since_start * procs) : 0.0;
    }
    const std::uint64_t stop = t.stopped_ns - t.start_ns;
    const std::uint64_t mark = t.marked_ns - t.stopped_ns;
    const std::uint64_t term = t.end_ns - t.marked_ns;
    const std::string line = fmt::format(
        "gc {} @{:.3f}s {}%: {}+{}+{} ms clock, {}+{}/{}/{}+{} ms cpu, {}->{}->{} MB, {} MB goal, {} MB stacks, "
        "{} MB globals, {} P{}\n",
        num_gc(), static_cast<double>(t.start_ns - started_ns_) / 1e9,
        static_cast<int>(fraction * 100), ns_as_ms(stop), ns_as_ms(mark), ns_as_ms(term), ns_as_ms(stop * procs),
        ns_as_ms(0), ns_as_ms(mark * marker_.mark_threads()), ns_as_ms(0), ns_as_ms(term * procs), t.live_before >> 20,
        t.live_before >> 20, t.marked >> 20, t.goal == Pacer::kNoGoal ? 0 : t.goal >> 20, t.stacks >> 20,
        t.globals >> 20, procs, forced ? " (forced)" : "");
    std::fputs(line.c_str(), stderr);
    if (gctrace_ >= 2) std::fputs(fragmentation_trace_line(make_report(frag_tally_, MemStats{})).c_str(), stderr);
}

}  // namespace gcheap::detail
