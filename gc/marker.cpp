// Conservative parallel marking; see marker.hpp.
#include "gc/marker.hpp"

#include "runtime/clock.hpp"
#include "runtime/heap.hpp"
#include "runtime/sanitizers.hpp"

#include <algorithm>
#include <atomic>


namespace gcheap::detail {

namespace {

constexpr std::size_t kScanChunk = 64 * 1024;     // bytes of one large object scanned per work item
constexpr std::size_t kShareThreshold = 64;       // keep at least this many items before sharing
constexpr std::uint64_t kIdleSpinNs = 20000;      // an idle worker polls the pool this long before it sleeps
constexpr std::size_t kPrefetchMaxBytes = 1024;   // larger ranges skip the prefetch queue

bool test_and_set_mark(Span* span, std::uint32_t index, bool exclusive) {
    std::uint64_t& bits = span->mark_bits()[index / 64];
    const std::uint64_t bit = std::uint64_t{1} << (index % 64);
    if (exclusive) {  // one marking thread: no atomic read-modify-write needed
        if ((bits & bit) != 0) return false;
        bits |= bit;
        return true;
    }
    std::atomic_ref<std::uint64_t> word(bits);
    if ((word.load(std::memory_order_relaxed) & bit) != 0) return false;
    return (word.fetch_or(bit, std::memory_order_relaxed) & bit) == 0;
}

}  // namespace

Marker::Marker(Heap& heap, unsigned mark_threads, std::uint64_t parallel_min_bytes)
    : index_(heap.arena_index()),
      os_(heap.os_memory()),
      mark_threads_(std::max(1u, mark_threads)),
      parallel_min_bytes_(parallel_min_bytes) {
    for (unsigned i = 0; i < mark_threads_; ++i) workers_.push_back(std::make_unique<Worker>());
    helpers_.reserve(mark_threads_);  // a started helper always finds its place
}

Marker::~Marker() {
    {
        std::lock_guard<std::mutex> lock(pool_mu_);
        stopping_ = true;
    }
    pool_cv_.notify_all();
    for (std::thread& t : helpers_) t.join();
}

unsigned Marker::ensure_helpers() {
    while (helpers_.size() + 1 < mark_threads_) {
        const auto index = static_cast<unsigned>(helpers_.size() + 1);
        // A helper started after earlier drains must wait for the next
        // round, not take the rounds already run as a signal to work.
        std::uint64_t rounds_run;
        {
            std::lock_guard<std::mutex> lock(pool_mu_);
            rounds_run = round_;
        }
        std::thread helper;
        // Not fatal: mark with fewer helpers, and try again next cycle.
        if (!os_.start_optional_thread(helper, [this, index, rounds_run] { helper_main(index, rounds_run); },
                                       "mark helper",
                                       "marking uses fewer threads", helper_failure_reported_)) {
            break;
        }
        helpers_.push_back(std::move(helper));
    }
    return static_cast<unsigned>(helpers_.size() + 1);
}

void Marker::set_stack_limit_for_testing(std::size_t entries) {
    for (auto& w : workers_) w->stack.set_limit(entries);
    pool_.set_limit(entries);
}

void Marker::begin_cycle(std::uint64_t allocated_bytes) {
    // The last cycle's marked bytes predict this one's work; before any
    // cycle, what has been allocated is the only estimate.
    const std::uint64_t expected = cycles_++ > 0 ? marked_bytes() : allocated_bytes;
    parallel_ = !helpers_.empty() && expected >= parallel_min_bytes_;
    for (auto& w : workers_) {
        w->stack.clear();
        w->marked_bytes = 0;
        w->scanned_bytes = 0;
        w->hint = {};  // last cycle's spans may have been freed since
    }
    pool_.clear();
    pool_items_.store(0, std::memory_order_relaxed);
    exclusive_.store(true, std::memory_order_relaxed);  // (M2)
    overflow_.store(false, std::memory_order_relaxed);
    overflow_rescans_ = 0;
}

std::uint64_t Marker::marked_bytes() const {
    std::uint64_t total = 0;
    for (const auto& w : workers_) total += w->marked_bytes;
    return total;
}

std::size_t Marker::sys_bytes() const {
    std::size_t total = pool_.sys_bytes();
    for (const auto& w : workers_) total += w->stack.sys_bytes();
    return total;
}

std::uint64_t Marker::scanned_bytes() const {
    std::uint64_t total = 0;
    for (const auto& w : workers_) total += w->scanned_bytes;
    return total;
}

inline Span* Marker::span_containing(std::uintptr_t candidate) const {
    Span* span = index_.span_of(candidate);
    return span != nullptr && candidate < span->limit() ? span : nullptr;
}

inline void Marker::grey_candidate(Worker& worker, std::uintptr_t candidate) {
    if (candidate - index_.lowest() >= index_.highest() - index_.lowest()) return;
    if (Span* span = span_containing(candidate)) grey_in_span(worker, span, candidate);
}

// `candidate` lies in [span->base, span->limit()).
inline void Marker::grey_in_span(Worker& worker, Span* span, std::uintptr_t candidate) {
    const std::uint32_t index = span->object_index(candidate);
    if (!span->is_allocated(index)) return;  // a free slot: stale value, ignore
    if (!test_and_set_mark(span, index, exclusive_.load(std::memory_order_relaxed))) return;
    worker.marked_bytes += span->elem_size;
    if (span->noscan) return;
    const std::uintptr_t base = span->object_base(index);
    if (!worker.stack.push({base, base + span->elem_size})) overflow_.store(true, std::memory_order_relaxed);
}

// Reads every word of [begin, end), which may be a thread's stack with
// sanitizer redzones or another thread's data: exempt from instrumentation.
// Most words are not heap pointers (zeros, small integers, addresses outside
// the heap), so the first test is the one that rejects them: one subtraction
// and one comparison against the heap's address range, [lowest, lowest +
// heap_bytes). `hint` is the span of the last heap pointer seen
// (Worker::hint), kept in a register across the ranges of a batch.
GCHEAP_SCAN_INLINE GCHEAP_NO_SANITIZE_SCAN std::uintptr_t Marker::scan_words_hinted(
    Worker& worker, SpanHint& hint, std::uintptr_t lowest, std::uintptr_t heap_bytes, std::uintptr_t begin,
    std::uintptr_t end) {
    begin = (begin + sizeof(std::uintptr_t) - 1) & ~(sizeof(std::uintptr_t) - 1);
    if (end <= begin) return 0;
    const volatile std::uintptr_t* p = reinterpret_cast<const volatile std::uintptr_t*>(begin);
    const volatile std::uintptr_t* const stop = p + (end - begin) / sizeof(std::uintptr_t);
    for (; p != stop; ++p) {
        const std::uintptr_t candidate = *p;
        if (candidate - lowest >= heap_bytes) continue;
        if (candidate - hint.base < hint.bytes) {
            grey_in_span(worker, hint.span, candidate);
            continue;
        }
        Span* span = span_containing(candidate);
        if (span == nullptr) continue;
        hint = {span, span->base, span->limit() - span->base};
        grey_in_span(worker, span, candidate);
    }
    return end - begin;
}

GCHEAP_SCAN_INLINE GCHEAP_NO_SANITIZE_SCAN void Marker::scan_words(Worker& worker, std::uintptr_t begin,
                                                               std::uintptr_t end) {
    SpanHint hint = worker.hint;
    const std::uintptr_t lowest = index_.lowest();
    worker.scanned_bytes += scan_words_hinted(worker, hint, lowest, index_.highest() - lowest, begin, end);
    worker.hint = hint;
}

GCHEAP_SCAN_INLINE GCHEAP_NO_SANITIZE_SCAN void Marker::scan_ranges(Worker& worker, const MarkRange* ranges, std::size_t n) {
    SpanHint hint = worker.hint;
    const std::uintptr_t lowest = index_.lowest();
    const std::uintptr_t heap_bytes = index_.highest() - lowest;
    std::uint64_t scanned = 0;
    for (std::size_t i = 0; i < n; ++i) {
        scanned += scan_words_hinted(worker, hint, lowest, heap_bytes, ranges[i].begin, ranges[i].end);
    }
    worker.scanned_bytes += scanned;
    worker.hint = hint;
}

void Marker::scan_root_range(std::uintptr_t begin, std::uintptr_t end) {
    // Aligned here, so that the chunks a large range is split into are too
    // (scan_words() would skip a word straddling an unaligned chunk boundary).
    begin = (begin + sizeof(std::uintptr_t) - 1) & ~(sizeof(std::uintptr_t) - 1);
    if (begin >= end) return;
    // Queued, not scanned here, so that the parallel drain splits a large
    // range among the workers like a large object (Boehm pushes roots too).
    // The range stays valid: the world is stopped and the roots locked.
    if (!workers_[0]->stack.push({begin, end})) scan_words(*workers_[0], begin, end);
}

void Marker::scan_stack(std::uintptr_t sp, std::uintptr_t hi, void* fake_stack) {
    // Scanned at once: the collecting thread's own frames below `sp` are
    // reused as soon as its caller returns.
    Worker& self = *workers_[0];
    if (sp < hi) scan_words(self, sp, hi);
    for_each_fake_frame(sp, hi, fake_stack, [&](std::uintptr_t lo, std::uintptr_t end) {
        if (lo < end) scan_words(self, lo, end);
    });
}

bool Marker::grey(std::uintptr_t addr) {
    const std::uint64_t before = workers_[0]->marked_bytes;
    grey_candidate(*workers_[0], addr);
    return workers_[0]->marked_bytes != before;
}

void Marker::scan_object_words(std::uintptr_t base) {
    Span* span = index_.span_of(base);
    if (span == nullptr || span->noscan) return;
    const std::uintptr_t object = span->object_base(span->object_index(base));
    // The object itself is not marked, so no overflow rescan would find it: scan it now if it cannot wait.
    if (!workers_[0]->stack.push({object, object + span->elem_size})) {
        scan_words(*workers_[0], object, object + span->elem_size);
    }
}

bool Marker::is_marked(std::uintptr_t addr) const {
    Span* span = index_.span_of(addr);
    if (span == nullptr || addr >= span->limit()) return false;
    const std::uint32_t index = span->object_index(addr);
    return (std::atomic_ref<std::uint64_t>(span->mark_bits()[index / 64]).load(std::memory_order_relaxed) >>
            (index % 64)) & 1;
}

void Marker::share(Worker& worker) {
    MarkRange* batch = worker.transfer;
    const std::size_t n = worker.stack.take_bottom(batch, std::min(kTransferBatch, worker.stack.size() / 2));
    std::size_t unqueued = 0;  // items neither stack could take, moved to the front of `batch`
    {
        std::lock_guard<std::mutex> lock(pool_mu_);
        exclusive_.store(false, std::memory_order_relaxed);  // before anyone can take the batch
        wake_helpers_locked();
        for (std::size_t i = 0; i < n; ++i) {
            // An item may be a root range, which no rescan would find: it is
            // never dropped, only kept or scanned here.
            if (!pool_.push(batch[i]) && !worker.stack.push(batch[i])) batch[unqueued++] = batch[i];
        }
        pool_items_.store(pool_.size(), std::memory_order_relaxed);
    }
    pool_cv_.notify_all();
    for (std::size_t i = 0; i < unqueued; ++i) scan_words(worker, batch[i].begin, batch[i].end);
}

// Scans what the worker's stack holds until it is empty, a batch at a time:
// up to kPrefetchBatch popped objects have their first line prefetched, then
// are scanned together, so that their cache misses overlap instead of
// following one another (on a tree, the objects just greyed are the next to
// scan, and not in cache yet). A list has one object on the stack at a time:
// its batches hold one. A range too large to prefetch ends a batch; the
// hardware prefetcher streams it.
void Marker::drain_own_stack(Worker& worker) {
    MarkRange* batch = worker.batch;
    for (;;) {
        MarkRange range;
        if (!worker.stack.pop(range)) return;
        if (range.end - range.begin <= kPrefetchMaxBytes && worker.stack.empty()) {
            // Alone (a list's next node), it is needed at once: nothing to
            // overlap its fetch with, and nothing to share.
            scan_words(worker, range.begin, range.end);
            continue;
        }
        std::size_t n = 0;
        for (;;) {
            if (range.end - range.begin > kPrefetchMaxBytes) {
                // Split so that others can help; if the rest cannot be
                // pushed, it is scanned here and now instead.
                if (range.end - range.begin > kScanChunk &&
                    worker.stack.push({range.begin + kScanChunk, range.end})) {
                    range.end = range.begin + kScanChunk;
                }
                batch[n++] = range;
                break;  // the rest of a split range is on top of the stack again
            }
            __builtin_prefetch(reinterpret_cast<const void*>(range.begin));
            batch[n++] = range;
            if (n == kPrefetchBatch || !worker.stack.pop(range)) break;
        }
        scan_ranges(worker, batch, n);
        // Share only while someone waits (or the helpers still sleep) and
        // the last shared batch has been taken: one batch per idle worker,
        // not one per object scanned while it wakes up.
        if (sharing_.load(std::memory_order_relaxed) && worker.stack.size() > kShareThreshold &&
            pool_items_.load(std::memory_order_relaxed) == 0 &&
            (waiting_.load(std::memory_order_relaxed) > 0 || !helpers_awake_.load(std::memory_order_relaxed))) {
            share(worker);
        }
    }
}

void Marker::work(Worker& worker) {
    for (;;) {
        drain_own_stack(worker);
        std::unique_lock<std::mutex> lock(pool_mu_);
        for (;;) {
            if (!pool_.empty()) {
                MarkRange item;
                bool scan_item = false;
                for (std::size_t i = 0; i < kTransferBatch && pool_.pop(item); ++i) {
                    if (!worker.stack.push(item)) {
                        // Our stack is full: leave the rest (the pool has room
                        // for what it just gave), or scan the item ourselves
                        // if we could take none, so that marking progresses.
                        if (i == 0) scan_item = true;
                        else pool_.push(item);
                        break;
                    }
                }
                pool_items_.store(pool_.size(), std::memory_order_relaxed);
                if (scan_item) {
                    lock.unlock();
                    scan_words(worker, item.begin, item.end);
                }
                break;
            }
            if (done_) return;
            if (++idle_ == active_) {
                done_ = true;
                done_flag_.store(true, std::memory_order_relaxed);
                lock.unlock();
                pool_cv_.notify_all();
                return;
            }
            waiting_.fetch_add(1, std::memory_order_relaxed);
            // Spin briefly first: work usually arrives within microseconds,
            // and a futex sleep and wake-up costs tens of them.
            lock.unlock();
            const std::uint64_t spin_until = monotonic_ns() + kIdleSpinNs;
            for (unsigned i = 1; pool_items_.load(std::memory_order_relaxed) == 0 &&
                                 !done_flag_.load(std::memory_order_relaxed);
                 ++i) {
                cpu_relax();
                if (i % 64 == 0 && monotonic_ns() >= spin_until) break;  // PAUSE costs 10-150 cycles
            }
            lock.lock();
            pool_cv_.wait(lock, [&] { return done_ || !pool_.empty(); });
            waiting_.fetch_sub(1, std::memory_order_relaxed);
            if (done_) return;
            --idle_;
        }
    }
}

void Marker::helper_main(unsigned index, std::uint64_t seen_round) {
    Worker& worker = *workers_[index];
    for (;;) {
        {
            std::unique_lock<std::mutex> lock(pool_mu_);
            pool_cv_.wait(lock, [&] { return stopping_ || round_ != seen_round; });
            if (stopping_) return;
            seen_round = round_;
            ++helper_runs_;
        }
        work(worker);
        {
            std::lock_guard<std::mutex> lock(pool_mu_);
            ++finished_;
        }
        pool_cv_.notify_all();
    }
}

void Marker::drain_parallel() {
    Worker& self = *workers_[0];
    const auto helpers = static_cast<unsigned>(helpers_.size());
    if (helpers == 0 || !parallel_) {
        active_ = 1;
        work(self);
        return;
    }
    {
        std::lock_guard<std::mutex> lock(pool_mu_);
        // Seed the pool with the oldest half of what was greyed so far, so
        // that helpers start at once while this thread keeps the rest: moving
        // everything would make both sides come back to the lock for it.
        MarkRange* batch = self.transfer;
        // A few items are no surplus: leave them to share(), which wakes
        // the helpers only if the work grows.
        const std::size_t seed = self.stack.size() > kShareThreshold ? self.stack.size() / 2 : 0;
        if (seed > 0) exclusive_.store(false, std::memory_order_relaxed);
        for (std::size_t left = seed; left > 0;) {
            const std::size_t n = self.stack.take_bottom(batch, std::min(left, kTransferBatch));
            for (std::size_t i = 0; i < n; ++i) {
                // Back where it came from, which take_bottom() just made room in.
                if (!pool_.push(batch[i])) self.stack.push(batch[i]);
            }
            left -= n;
        }
        active_ = 1;
        idle_ = 0;
        finished_ = 0;
        done_ = false;
        done_flag_.store(false, std::memory_order_relaxed);
        pool_items_.store(pool_.size(), std::memory_order_relaxed);
        sharing_.store(true, std::memory_order_relaxed);
        if (seed > 0) wake_helpers_locked();
    }
    pool_cv_.notify_all();
    work(self);
    // Helpers still touch the pool and mark bits until they leave work(): wait for them.
    std::unique_lock<std::mutex> lock(pool_mu_);
    pool_cv_.wait(lock, [&] { return finished_ == (helpers_awake_.load(std::memory_order_relaxed) ? helpers : 0); });
    sharing_.store(false, std::memory_order_relaxed);
    helpers_awake_.store(false, std::memory_order_relaxed);
    exclusive_.store(true, std::memory_order_relaxed);
}

// Helpers are woken when work first enters the pool, not when the drain
// starts: a drain that never has surplus (a list) leaves them asleep.
// Called with pool_mu_ held; only the collecting thread, busy, finds them
// asleep (a helper sharing means they are awake).
void Marker::wake_helpers_locked() {
    if (helpers_awake_.load(std::memory_order_relaxed)) return;
    helpers_awake_.store(true, std::memory_order_relaxed);
    ++helper_wakes_;
    active_ += static_cast<unsigned>(helpers_.size());
    ++round_;
}

void Marker::drain_alone(Worker& worker) {
    {
        std::lock_guard<std::mutex> lock(pool_mu_);
        active_ = 1;
        idle_ = 0;
        done_ = false;
        done_flag_.store(false, std::memory_order_relaxed);
    }
    work(worker);
}

void Marker::rescan_marked_objects(Worker& worker) {
    // Single-threaded, draining in place whenever the stack fills, so that
    // only newly marked objects can overflow again: each round marks more,
    // hence the rounds end.
    ++overflow_rescans_;
    index_.for_each_span([&](Span* span) {
        if (span->noscan) return;
        for (std::uint32_t i = 0; i < span->nelems; ++i) {
            if (((span->mark_bits()[i / 64] >> (i % 64)) & 1) == 0) continue;
            const std::uintptr_t base = span->object_base(i);
            while (!worker.stack.push({base, base + span->elem_size})) {
                if (worker.stack.empty()) {  // cannot hold even one item: scan it directly
                    scan_words(worker, base, base + span->elem_size);
                    break;
                }
                drain_alone(worker);
            }
        }
    });
    drain_alone(worker);
}

void Marker::drain() {
    drain_parallel();
    // Boehm's overflow-and-rescan: marked objects whose words were never
    // queued are found again by walking the heap, until a round overflows no more.
    while (overflow_.exchange(false, std::memory_order_relaxed)) rescan_marked_objects(*workers_[0]);
}

}  // namespace gcheap::detail
