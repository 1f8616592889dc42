// Profiler: the sampling heap profiler of one heap (Go's mprof.go and the
// sampling half of mallocgc).
//
// Owns the profile: buckets keyed by (object size, call stack) with their
// sampled alloc and free counts, and the map from each sampled object that
// is still allocated to its bucket. Threads own their sampling state
// (ThreadCache::next_sample, a countdown in bytes drawn from an exponential
// distribution of mean `rate`, as Go's nextSample).
//
// Invariants, under mu_:
//   (P1) live_ holds exactly the sampled objects not yet swept as free;
//        for each bucket, allocs - frees == its entries in live_.
//   (P2) span.profiled == the entries of live_ inside that span, so a span
//        with profiled == 0 holds no sampled object and the sweeper skips it
//        without taking mu_ (zero cost when nothing was sampled there).
//   (P3) a span with a sampled object is not freed before the sweeper has
//        reported that object's free (sweep_span runs first), so every
//        entry of live_ lies in an in-use span.
//
// Cost: with rate 0 the heap's fast path is untouched (Heap::update_fast_id);
// with a rate, each allocation takes the out-of-line entry and subtracts its
// size from the countdown; only a sample takes a stack (backtrace) and mu_.
// mu_ is a leaf lock: nothing is called while it is held but the C++ library.
#pragma once

#include "runtime/span.hpp"
#include "runtime/thread_cache.hpp"

#include <gcheap/profiler.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace gcheap::detail {

class ArenaIndex;

/// gcheap::scale_heap_sample: sampled / (1 - exp(-size/rate)); unscaled for rate <= 1.
double scale_sample(double sampled, std::size_t size, int rate);

class Profiler {
public:
    static constexpr int kMaxStack = 64;

    Profiler(const ArenaIndex& index, int rate);
    Profiler(const Profiler&) = delete;
    Profiler& operator=(const Profiler&) = delete;

    int rate() const { return rate_.load(std::memory_order_relaxed); }
    /// Returns the previous rate; throws std::invalid_argument if negative.
    int set_rate(int rate);

    /// Counts an allocation of `bytes` (its slot size) at `object` against
    /// the calling thread's countdown and samples it when the countdown runs
    /// out. `caller` is the return address of the heap's entry point: the
    /// recorded stack starts there, so gcheap's own frames are left out.
    void note_allocation(ThreadCache* cache, std::uintptr_t object, std::size_t bytes, const void* caller) {
        const int r = rate_.load(std::memory_order_relaxed);
        if (r == 0) return;
        if (cache->sample_epoch != epoch_.load(std::memory_order_relaxed)) reset_countdown(cache, r);
        if (r != 1 && static_cast<std::int64_t>(bytes) < cache->next_sample) {
            cache->next_sample -= static_cast<std::int64_t>(bytes);
            return;
        }
        sample(cache, object, bytes, caller, r);
    }

    /// The sweeper, before `span` is swept: forgets the sampled objects
    /// among its unmarked allocated slots. Only called when span.profiled != 0.
    void sweep_span(Span& span);

    std::vector<MemProfileRecord> records();
    /// Sampled objects not yet swept as free (P1), for tests.
    std::size_t live_samples();
    SparseSiteReport sparse_sites(double threshold);
    /// Go's legacy text format; false (errno set) if writing fails.
    bool write_legacy(std::FILE* out);

private:
    struct Bucket {
        std::size_t size = 0;
        std::vector<std::uintptr_t> stack;
        std::uint64_t allocs = 0;
        std::uint64_t frees = 0;
    };
    struct BucketKey {
        std::size_t size;
        const std::vector<std::uintptr_t>* stack;
        bool operator==(const BucketKey& o) const { return size == o.size && *stack == *o.stack; }
    };
    struct BucketKeyHash {
        std::size_t operator()(const BucketKey& k) const;
    };

    void reset_countdown(ThreadCache* cache, int rate);
    static std::int64_t next_sample(ThreadCache* cache, int rate);
    void sample(ThreadCache* cache, std::uintptr_t object, std::size_t bytes, const void* caller, int rate);
    int estimate_rate() const;

    const ArenaIndex& index_;
    std::atomic<int> rate_;
    std::atomic<std::uint32_t> epoch_{1};  // bumped by set_rate: threads redraw their countdown
    std::atomic<int> last_rate_;           // the last non-zero rate: what the samples were taken at

    std::mutex mu_;
    std::unordered_map<BucketKey, Bucket*, BucketKeyHash> buckets_;  // keys point into the buckets
    std::vector<std::unique_ptr<Bucket>> bucket_store_;
    std::unordered_map<std::uintptr_t, Bucket*> live_;  // sampled object base -> its bucket
};

}  // namespace gcheap::detail
