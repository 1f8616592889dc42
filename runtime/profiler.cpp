// The sampling heap profiler; see profiler.hpp.
#include "runtime/profiler.hpp"

#include "runtime/arena.hpp"
#include "runtime/sync.hpp"

#include <execinfo.h>

#include <algorithm>
#include <cmath>
#include <new>
#include <stdexcept>
#include <unordered_set>

namespace gcheap::detail {

namespace {

// glibc's backtrace() loads libgcc_s, which calls malloc, on its first call:
// make that call when profiling is turned on, not in the middle of an allocation.
void warm_up_backtrace() {
    void* frames[2];
    (void)backtrace(frames, 2);
}

std::uint64_t xorshift(std::uint64_t& state) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
}

}  // namespace

double scale_sample(double sampled, std::size_t size, int rate) {
    if (rate <= 1 || size == 0) return sampled;
    return sampled / -std::expm1(-static_cast<double>(size) / rate);
}

std::size_t Profiler::BucketKeyHash::operator()(const BucketKey& k) const {
    std::uint64_t h = 0x9e3779b97f4a7c15ull ^ k.size;
    for (std::uintptr_t pc : *k.stack) h = (h ^ pc) * 0x100000001b3ull;
    return static_cast<std::size_t>(h ^ (h >> 29));
}

Profiler::Profiler(const ArenaIndex& index, int rate) : index_(index), rate_(0), last_rate_(0) { set_rate(rate); }

int Profiler::set_rate(int rate) {
    if (rate < 0) throw std::invalid_argument("gcheap: the memory profile rate must not be negative");
    if (rate != 0) {
        warm_up_backtrace();
        last_rate_.store(rate, std::memory_order_relaxed);
    }
    const int previous = rate_.exchange(rate, std::memory_order_relaxed);
    epoch_.fetch_add(1, std::memory_order_relaxed);
    return previous;
}

int Profiler::estimate_rate() const {
    const int r = last_rate_.load(std::memory_order_relaxed);
    return r == 0 ? 1 : r;
}

std::int64_t Profiler::next_sample(ThreadCache* cache, int rate) {
    if (rate == 1) return 0;
    // An exponential distance of mean `rate` makes sampling a Poisson
    // process over allocated bytes: an object of s bytes is sampled with
    // probability 1 - exp(-s/rate) whatever came before it (Go's nextSample).
    const double u = static_cast<double>(xorshift(cache->sample_rng) >> 11) * 0x1p-53;  // [0, 1)
    return static_cast<std::int64_t>(-std::log1p(-u) * rate) + 1;
}

void Profiler::reset_countdown(ThreadCache* cache, int rate) {
    if (cache->sample_rng == 0) {
        // Caches live at distinct addresses; mix in the epoch so that a rate
        // change does not replay the same distances.
        cache->sample_rng = (reinterpret_cast<std::uintptr_t>(cache) * 0x9e3779b97f4a7c15ull) | 1;
    }
    cache->sample_epoch = epoch_.load(std::memory_order_relaxed);
    cache->sample_rng ^= std::uint64_t{cache->sample_epoch} << 32;
    if (cache->sample_rng == 0) cache->sample_rng = 1;
    cache->next_sample = next_sample(cache, rate);
}

void Profiler::sample(ThreadCache* cache, std::uintptr_t object, std::size_t bytes, const void* caller, int rate) {
    cache->next_sample = next_sample(cache, rate);
    void* frames[kMaxStack];
    const int n = backtrace(frames, kMaxStack);
    // Start the stack at the heap entry's caller: the frames above it are
    // gcheap's own (their number depends on inlining and tail calls).
    int start = 0;
    for (int i = 0; i < n; ++i) {
        if (frames[i] == caller) {
            start = i;
            break;
        }
    }
    try {
        std::vector<std::uintptr_t> stack;
        stack.reserve(static_cast<std::size_t>(n - start));
        for (int i = start; i < n; ++i) stack.push_back(reinterpret_cast<std::uintptr_t>(frames[i]));
        Span* span = index_.span_of(object);
        MutatorLock<> lock(mu_);
        const BucketKey key{bytes, &stack};
        auto it = buckets_.find(key);
        Bucket* bucket;
        if (it == buckets_.end()) {
            auto owned = std::make_unique<Bucket>();
            owned->size = bytes;
            owned->stack = std::move(stack);
            bucket = owned.get();
            bucket_store_.push_back(std::move(owned));
            buckets_.emplace(BucketKey{bytes, &bucket->stack}, bucket);
        } else {
            bucket = it->second;
        }
        if (live_.emplace(object, bucket).second) {
            ++bucket->allocs;
            span->profiled.fetch_add(1, std::memory_order_relaxed);
        }
    } catch (const std::bad_alloc&) {
        // Out of C heap: lose this sample rather than fail the allocation.
    }
}

void Profiler::sweep_span(Span& span) {
    MutatorLock<> lock(mu_);
    for (std::uint32_t i = 0; i < span.nelems && span.profiled.load(std::memory_order_relaxed) != 0; ++i) {
        const bool marked = (span.mark_bits()[i / 64] >> (i % 64)) & 1;
        if (marked || !span.is_allocated(i)) continue;
        auto it = live_.find(span.object_base(i));
        if (it == live_.end()) continue;
        ++it->second->frees;
        live_.erase(it);
        span.profiled.fetch_sub(1, std::memory_order_relaxed);
    }
}

std::vector<MemProfileRecord> Profiler::records() {
    std::vector<MemProfileRecord> out;
    {
        MutatorLock<> lock(mu_);
        out.reserve(bucket_store_.size());
        for (const auto& b : bucket_store_) {
            MemProfileRecord r;
            r.alloc_objects = b->allocs;
            r.alloc_bytes = b->allocs * b->size;
            r.free_objects = b->frees;
            r.free_bytes = b->frees * b->size;
            r.object_size = b->size;
            r.stack = b->stack;
            out.push_back(std::move(r));
        }
    }
    std::stable_sort(out.begin(), out.end(), [](const MemProfileRecord& a, const MemProfileRecord& b) {
        return a.inuse_bytes() > b.inuse_bytes();
    });
    return out;
}

std::size_t Profiler::live_samples() {
    MutatorLock<> lock(mu_);
    return live_.size();
}

SparseSiteReport Profiler::sparse_sites(double threshold) {
    if (!(threshold >= 0 && threshold <= 1)) {
        throw std::invalid_argument("gcheap::sparse_span_sites: threshold must be between 0 and 1");
    }
    SparseSiteReport report;
    report.threshold = threshold;
    report.rate = estimate_rate();
    struct Acc {
        SparseSite site;
        std::unordered_set<const Span*> spans;
    };
    std::unordered_map<const std::vector<std::uintptr_t>*, std::size_t> by_stack;
    std::vector<Acc> acc;
    {
        MutatorLock<> lock(mu_);
        // Buckets of one stack but different sizes are one site: index stacks by value.
        std::unordered_map<BucketKey, const std::vector<std::uintptr_t>*, BucketKeyHash> canonical;
        for (const auto& [base, bucket] : live_) {
            const Span* span = index_.span_of(base);
            if (span == nullptr || span->is_large()) continue;
            const double occupancy =
                static_cast<double>(span->alloc_count.load(std::memory_order_relaxed)) / span->nelems;
            if (occupancy >= threshold) continue;
            const auto* stack = canonical.emplace(BucketKey{0, &bucket->stack}, &bucket->stack).first->second;
            auto [it, inserted] = by_stack.emplace(stack, acc.size());
            if (inserted) {
                acc.emplace_back();
                acc.back().site.stack = *stack;
            }
            Acc& a = acc[it->second];
            ++a.site.sampled_objects;
            a.site.sampled_bytes += bucket->size;
            const double objects = scale_sample(1, bucket->size, report.rate);
            a.site.estimated_objects += objects;
            a.site.estimated_bytes += objects * static_cast<double>(bucket->size);
            a.spans.insert(span);
        }
    }
    for (Acc& a : acc) {
        a.site.spans = a.spans.size();
        report.estimated_bytes += static_cast<std::uint64_t>(a.site.estimated_bytes);
        report.sites.push_back(std::move(a.site));
    }
    std::sort(report.sites.begin(), report.sites.end(),
              [](const SparseSite& a, const SparseSite& b) { return a.estimated_bytes > b.estimated_bytes; });
    return report;
}

bool Profiler::write_legacy(std::FILE* out) {
    const std::vector<MemProfileRecord> recs = records();
    MemProfileRecord total;
    for (const MemProfileRecord& r : recs) {
        total.alloc_objects += r.alloc_objects;
        total.alloc_bytes += r.alloc_bytes;
        total.free_objects += r.free_objects;
        total.free_bytes += r.free_bytes;
    }
    // Go writes heap/<2 × MemProfileRate>; pprof halves it back and scales
    // every line by 1 / (1 − exp(−size/rate)) ("heap" means sampling v2).
    const long long period = 2LL * estimate_rate();
    if (std::fprintf(out, "heap profile: %llu: %llu [%llu: %llu] @ heap/%lld\n",
                     static_cast<unsigned long long>(total.inuse_objects()),
                     static_cast<unsigned long long>(total.inuse_bytes()),
                     static_cast<unsigned long long>(total.alloc_objects),
                     static_cast<unsigned long long>(total.alloc_bytes), period) < 0) {
        return false;
    }
    for (const MemProfileRecord& r : recs) {
        std::fprintf(out, "%llu: %llu [%llu: %llu] @", static_cast<unsigned long long>(r.inuse_objects()),
                     static_cast<unsigned long long>(r.inuse_bytes()),
                     static_cast<unsigned long long>(r.alloc_objects),
                     static_cast<unsigned long long>(r.alloc_bytes));
        for (std::uintptr_t pc : r.stack) std::fprintf(out, " %#llx", static_cast<unsigned long long>(pc));
        std::fputc('\n', out);
    }
    // The mappings let pprof find the binary and libraries that the
    // addresses belong to. "--- Memory map: ---" is the section marker its
    // legacy parser recognises (profile/legacy_profile.go, memoryMapTriggers).
    std::fputs("\n--- Memory map: ---\n", out);
    if (std::FILE* maps = std::fopen("/proc/self/maps", "r")) {
        char buffer[4096];
        std::size_t n;
        while ((n = std::fread(buffer, 1, sizeof buffer, maps)) > 0) std::fwrite(buffer, 1, n, out);
        std::fclose(maps);
    }
    return std::ferror(out) == 0;
}

}  // namespace gcheap::detail
