// Profiler: the sampling heap profiler of one heap (Go's mprof.go and the
// sampling half of mallocgc).
//
// Owns the profile: buckets keyed by (object size, call stack) with their
// sampled alloc and free counts, and the map from each sampled object that
// is still allocated to its bucket. Threads own their sampling state
// (ThreadCache::sample_left).
//
// Sampling is Go's: a Poisson process over allocated bytes of mean gap
// `rate`, so that an object of s bytes is sampled with probability
// 1 - exp(-s/rate), independently of every other. Go draws one exponential
// byte countdown per thread and checks it on every allocation; here the
// fast path must not pay for that, so each thread keeps one countdown per
// span class, in objects: for objects of one size the gap is geometric,
// ceil(Exp(rate)/s), and the union of the per-class processes is the same
// Poisson process. The slow path, which runs at least once per 64-slot word
// of a span, accounts for the word's free slots in bulk and, when the
// countdown ends inside the word, *plants a sample point*: it takes the free
// slots from the sampled one on out of alloc_cache (span.sample_hold), so
// the fast path hands out the ones before it and then falls into the slow
// path exactly at the sampled object.
//
// A rate change bumps epoch_: each thread redraws a class's countdown at its
// next slow path in that class, where a point planted at the old rate is
// redrawn rather than taken as a sample. The calling thread also holds back
// its cached words (hold_cached_word), so that the change applies from its
// next allocation.
//
// Invariants, under mu_:
//   (P1) live_ holds exactly the sampled objects not yet swept as free;
//        for each bucket, allocs - frees == its entries in live_.
//   (P2) span.profiled == the entries of live_ inside that span (by_span_), so a span
//        with profiled == 0 holds no sampled object and the sweeper skips it
//        without taking mu_ (zero cost when nothing was sampled there).
//   (P3) a span with a sampled object is not freed before the sweeper has
//        reported that object's free (sweep_span runs first), so every
//        entry of live_ lies in an in-use span.
//   (P4) a planted sample point lives only in a span held by a thread cache,
//        within alloc_cache's word, at or after free_index; the cache
//        unplants before the span leaves it (Span's (S3) counts held bits).
//
// Cost: the fast path is the same with the profiler on or off. With rate 0
// the slow path pays one load; with a rate, a few instructions per word, and
// one extra slow-path call per sample, which takes a stack (backtrace) and mu_.
// mu_ is a leaf lock: nothing is called while it is held but the C++ library.
#pragma once

#include "runtime/span.hpp"
#include "runtime/thread_cache.hpp"

#include <gcheap/profiler.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
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
    static constexpr int kMaxStack = 32;  // frames per stack, as Go's memory profile kept

    Profiler(const ArenaIndex& index, int rate);
    Profiler(const Profiler&) = delete;
    Profiler& operator=(const Profiler&) = delete;

    int rate() const { return rate_.load(std::memory_order_relaxed); }
    /// Returns the previous rate; throws std::invalid_argument if negative.
    int set_rate(int rate);

    /// Restores a span's held free bits into its alloc_cache (P4); the slow
    /// path calls it before it looks for a free slot, and a cache before it
    /// lets the span go. Returns the planted slot, or Span::kNoSamplePoint.
    static std::uint32_t unplant(Span& span) {
        const std::uint32_t base = span.sample_base;
        if (base == Span::kNoSamplePoint) return base;
        span.alloc_cache |= span.sample_hold << (base - span.free_index.load(std::memory_order_relaxed));
        span.sample_base = Span::kNoSamplePoint;
        span.sample_hold = 0;
        return base;
    }

    /// Holds back the free slots of the span's cached word as a planted
    /// point does (P4), at the next free slot, so that its owner's next
    /// allocation from it takes the slow path and draws its countdown at the
    /// current rate. The owner thread, in its allocation region.
    static void hold_cached_word(Span& span) {
        unplant(span);
        const std::uint32_t free_index = span.free_index.load(std::memory_order_relaxed);
        if (free_index >= span.nelems) return;
        // alloc_cache may have bits past the span's last slot: the point
        // must be a real slot, inside the cached word (P4).
        const std::uint32_t valid = std::min<std::uint32_t>(64, span.nelems - free_index);
        const std::uint64_t slots = span.alloc_cache & (valid == 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << valid) - 1);
        if (slots == 0) return;
        plant(span, free_index, static_cast<unsigned>(std::countr_zero(slots)));
    }

    /// Holds back the cached word's free slots from `free_index + bit` on
    /// (bit < 64), leaving the fast path those before it (P4).
    static void plant(Span& span, std::uint32_t free_index, unsigned bit) {
        span.sample_base = free_index + bit;
        span.sample_hold = span.alloc_cache >> bit;
        span.alloc_cache &= (std::uint64_t{1} << bit) - 1;
    }

    /// The small-object slow path, in the owner's allocation region, after
    /// it allocated slot `index` of its cached `span` (`planted`: what
    /// unplant() returned before): whether that object is sampled. Plants the
    /// next sample point in what is left of the cached word.
    bool after_slow_alloc(ThreadCache* cache, Span& span, std::size_t spc, std::uint32_t index,
                          std::uint32_t planted) {
        if (rate_.load(std::memory_order_relaxed) == 0) return false;
        return account_slow_alloc(cache, span, spc, index, planted);
    }

    /// A large allocation of `bytes`: whether it is sampled (probability
    /// 1 - exp(-bytes/rate), the chance a sample point falls in it).
    bool sample_large(ThreadCache* cache, std::size_t bytes);

    /// Records a sampled object: its stack from backtrace(), starting at the
    /// frame that returns to `entry` (gcheap's own frames are left out).
    void record(std::uintptr_t object, Span& span, std::size_t bytes, const void* entry);

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

    bool account_slow_alloc(ThreadCache* cache, Span& span, std::size_t spc, std::uint32_t index,
                            std::uint32_t planted);
    /// Redraws the countdown of span class `spc` if the rate changed since it
    /// was drawn; returns whether it did.
    bool refresh(ThreadCache* cache, std::size_t spc);
    static void seed(ThreadCache* cache);
    static double uniform(ThreadCache* cache);
    static std::uint32_t draw(ThreadCache* cache, int rate, std::size_t size);
    int estimate_rate() const;

    const ArenaIndex& index_;
    std::atomic<int> rate_;
    std::atomic<std::uint32_t> epoch_{1};  // bumped by set_rate: threads redraw their countdown
    std::atomic<int> last_rate_;           // the last non-zero rate: what the samples were taken at

    std::mutex mu_;
    std::unordered_map<BucketKey, Bucket*, BucketKeyHash> buckets_;  // keys point into the buckets
    std::vector<std::unique_ptr<Bucket>> bucket_store_;
    std::unordered_map<std::uintptr_t, Bucket*> live_;  // sampled object base -> its bucket
    // The same objects by span, so that sweeping a span with samples costs
    // O(its samples), not O(its slots): (P2) span.profiled == by_span_[span].size().
    std::unordered_map<const Span*, std::vector<std::uintptr_t>> by_span_;
    // Return addresses already classified by is_api_frame(), direct-mapped:
    // the unwinder's lookup costs more than the rest of a sample.
    static constexpr std::size_t kFrameCache = 256;
    std::array<std::atomic<std::uintptr_t>, kFrameCache> api_frames_{};
    std::array<std::atomic<std::uintptr_t>, kFrameCache> other_frames_{};
    bool is_api_frame(void* return_address);
};

}  // namespace gcheap::detail
