// Lazy sweeping; see sweeper.hpp.
#include "gc/sweeper.hpp"

#include "runtime/heap.hpp"
#include "runtime/sync.hpp"

#include <pthread.h>
#include <sched.h>

#include <bit>
#include <cstring>

namespace gcheap::detail {

namespace {

// GCHEAP_DEBUG=clobberfree: a freed object reads as kClobberPattern until it
// is allocated again (allocation zeroes it: freed slots set needzero, freed
// pages are dirty), so a use after free shows up at once.
void clobber(std::uintptr_t base, std::size_t bytes) {
    auto* words = reinterpret_cast<std::uint64_t*>(base);
    for (std::size_t i = 0; i < bytes / sizeof(std::uint64_t); ++i) words[i] = kClobberPattern;
}

void clobber_unmarked(const Span& span) {
    for (std::uint32_t i = 0; i < span.nelems; ++i) {
        const bool marked = (span.mark_bits()[i / 64] >> (i % 64)) & 1;
        if (span.is_allocated(i) && !marked) clobber(span.object_base(i), span.elem_size);
    }
}

}  // namespace

Sweeper::Sweeper(Heap& heap, bool background) : heap_(heap), background_enabled_(background) {}

Sweeper::~Sweeper() {
    if (background_.joinable()) {
        {
            std::lock_guard<std::mutex> lock(bg_mu_);
            bg_stop_ = true;
        }
        bg_cv_.notify_all();
        background_.join();
    }
}

Sweeper::Result Sweeper::sweep_span(Span* span) {
    Result result;
    spans_swept_.fetch_add(1, std::memory_order_relaxed);
    if (unswept_.fetch_sub(1, std::memory_order_acq_rel) == 1) sweeps_completed_.fetch_add(1, std::memory_order_relaxed);
    if (span->is_large()) {
        if ((span->mark_bits()[0] & 1) != 0) {
            std::atomic_ref<std::uint64_t>(span->mark_bits()[0]).store(0, std::memory_order_relaxed);  // see below
            return result;
        }
        result.freed_objects = 1;
        result.released_pages = span->npages;
        if (span->profiled.load(std::memory_order_relaxed) != 0) heap_.profiler_.sweep_span(*span);
        if (heap_.debug().clobberfree()) clobber(span->base, span->elem_size);
        std::lock_guard<SpinningMutex> lock(heap_.pages_.mutex());
        heap_.large_free_bytes_ += span->elem_size;
        ++heap_.large_free_count_;
        heap_.pages_.free_span_locked(span);
        return result;
    }
    const std::uint32_t words = (span->nelems + 63) / 64;
    std::uint32_t marked = 0;
    for (std::uint32_t w = 0; w < words; ++w) marked += static_cast<std::uint32_t>(std::popcount(span->mark_bits()[w]));
    result.freed_objects = span->alloc_count.load(std::memory_order_relaxed) - marked;
    if (result.freed_objects != 0 && heap_.debug().clobberfree()) clobber_unmarked(*span);
    // Sampled objects among the freed ones leave the heap profile (the
    // check costs one load per span; nothing when no sample lives here).
    if (result.freed_objects != 0 && span->profiled.load(std::memory_order_relaxed) != 0) {
        heap_.profiler_.sweep_span(*span);
    }
    // The mark bits become the alloc bits; the old alloc bits, cleared, the next mark bits.
    span->alloc_bits_index ^= 1;
    // Relaxed atomic stores: find_object() may read these words meanwhile.
    for (std::uint32_t w = 0; w < words; ++w) {
        std::atomic_ref<std::uint64_t>(span->mark_bits()[w]).store(0, std::memory_order_relaxed);
    }
    span->free_index.store(0, std::memory_order_relaxed);
    span->refill_alloc_cache(0);
    span->alloc_count.store(marked, std::memory_order_relaxed);
    if (result.freed_objects != 0) span->needzero = true;
    result.empty = marked == 0;
    return result;
}

Span* Sweeper::sweep_for_allocation(Central& central) {
    if (!pending()) return nullptr;
    if (central.unswept_hint() == 0) return nullptr;
    for (int tries = 0; tries < 100; ++tries) {
        Span* span = central.pop_unswept();
        if (span == nullptr) return nullptr;
        // An empty span is kept too (Go's preserve): see sweeper.hpp.
        const Result r = sweep_span(span);
        if (span->free_slots() > 0) {
            central.add_frees(r.freed_objects);
            return span;
        }
        central.push_swept(span, r.freed_objects);
    }
    return nullptr;
}

bool Sweeper::sweep_some(std::size_t max_spans, std::size_t& released_pages) {
    // Every partition's classes in turn, staying on one list until it is
    // empty (as Go's sweepone does), so that sweeping N spans of one class
    // probes the other lists once, not N times. The cursor is written only
    // when it moves.
    const std::size_t lists = heap_.partition_slots() * kNumSpanClasses;
    const std::size_t start = next_class_.load(std::memory_order_relaxed);
    Span* spans[kMaxBatch];
    max_spans = std::min(max_spans, kMaxBatch);
    for (std::size_t k = 0; k < lists; ++k) {
        const std::size_t list = (start + k) % lists;
        Central& central = heap_.partition_at(list / kNumSpanClasses).centrals[list % kNumSpanClasses];
        if (central.unswept_hint() == 0) continue;  // skip empty classes without their lock
        // One span per lock hold: an allocating thread sweeping this class
        // must not wait behind a whole batch of list unlinks.
        std::size_t n = 0;
        while (n < max_spans && (spans[n] = central.pop_unswept()) != nullptr) ++n;
        if (n == 0) continue;
        if (list != start) next_class_.store(list, std::memory_order_relaxed);
        // One lock of each kind per batch: the empty spans go back to the
        // page heap together, the others to their central list together.
        std::uint64_t freed = 0;
        std::size_t kept = 0;
        Span* empty[kMaxBatch];
        std::size_t empties = 0;
        for (std::size_t i = 0; i < n; ++i) {
            const Result r = sweep_span(spans[i]);
            freed += r.freed_objects;
            if (r.empty) empty[empties++] = spans[i];
            else spans[kept++] = spans[i];
        }
        if (empties != 0) {
            std::lock_guard<SpinningMutex> lock(heap_.pages_.mutex());
            for (std::size_t i = 0; i < empties; ++i) {
                released_pages += empty[i]->npages;
                heap_.pages_.free_span_locked(empty[i]);
            }
        }
        central.push_swept(spans, kept, freed);
        return true;
    }
    Span* large = nullptr;
    {
        std::lock_guard<SpinningMutex> lock(heap_.pages_.mutex());
        large = heap_.large_unswept_.pop_front();
    }
    if (large == nullptr) return false;
    const Result r = sweep_span(large);
    released_pages += r.released_pages;
    if (r.released_pages == 0) {
        std::lock_guard<SpinningMutex> lock(heap_.pages_.mutex());
        large->home = SpanHome::kLarge;
        heap_.large_spans_.push_front(large);
    }
    return true;
}

void Sweeper::reclaim(std::size_t npages) {
    std::size_t released = 0;
    while (pending() && released < npages && sweep_some(1, released)) {
    }
}

void Sweeper::sweep_all() {
    constexpr std::size_t kBatchesPerGatePass = 4;  // let a world stop in between
    bool more = true;
    while (more && pending()) {
        SharedGate gate(heap_.gate_);
        std::size_t released = 0;
        for (std::size_t i = 0; i < kBatchesPerGatePass && (more = sweep_some(kMaxBatch, released)); ++i) {
        }
    }
    // Spans popped by other threads may still be in flight; they hold the
    // gate shared while they sweep, so closing it once waits for them.
    heap_.gate_.lock();
    heap_.gate_.unlock();
}

void Sweeper::wake_background() {
    if (!background_enabled_) return;
    {
        std::lock_guard<std::mutex> lock(bg_mu_);
        // Started on first need, not with the heap; a failed start is retried
        // at the next wake-up and reported once. Sweeping goes on without it.
        if (!background_.joinable()) {
            if (!heap_.os_memory().start_optional_thread(background_, [this] { background_main(); },
                                                         "background sweeper",
                                                         "spans are swept on allocation and by collect() instead",
                                                         start_failure_reported_)) {
                return;
            }
            lower_background_priority();
        }
        bg_work_ = true;
    }
    bg_cv_.notify_one();
}

void Sweeper::lower_background_priority() {
    // Under ThreadSanitizer the allocator's locks poll with sched_yield()
    // (sync.hpp) instead of sleeping, so a waiter would never free the core
    // an idle-priority sweeper holding the lock needs.
    if constexpr (kPollingLocks) return;
    sched_param param{};  // priority 0, the only one SCHED_IDLE takes
    // Not fatal: the sweeper then competes for cores like any thread.
    (void)pthread_setschedparam(background_.native_handle(), SCHED_IDLE, &param);
}

int Sweeper::background_policy() {
    std::lock_guard<std::mutex> lock(bg_mu_);
    if (!background_.joinable()) return -1;
    int policy = -1;
    sched_param param{};
    return pthread_getschedparam(background_.native_handle(), &policy, &param) == 0 ? policy : -1;
}

void Sweeper::background_main() {
    for (;;) {
        {
            std::unique_lock<std::mutex> lock(bg_mu_);
            bg_cv_.wait(lock, [&] { return bg_stop_ || bg_work_; });
            if (bg_stop_) return;
            bg_work_ = false;
        }
        while (pending()) {
            {
                std::lock_guard<std::mutex> lock(bg_mu_);
                if (bg_stop_) return;
            }
            SharedGate gate(heap_.gate_);
            std::size_t released = 0;
            if (!sweep_some(kMaxBatch, released)) break;
        }
    }
}

}  // namespace gcheap::detail
