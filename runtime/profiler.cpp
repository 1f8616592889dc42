// The sampling heap profiler; see profiler.hpp.
#include "runtime/profiler.hpp"

#include "runtime/arena.hpp"
#include "runtime/sync.hpp"

#include <execinfo.h>
#include <unwind.h>

#include <gcheap/gcheap.hpp>

#include <algorithm>
#include <bit>
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

// The public functions whose frames a stack should not start with.
bool Profiler::is_api_frame(void* return_address) {
    const auto ra = reinterpret_cast<std::uintptr_t>(return_address);
    const std::size_t slot = (ra ^ (ra >> 12)) % kFrameCache;
    if (api_frames_[slot].load(std::memory_order_relaxed) == ra) return true;
    if (other_frames_[slot].load(std::memory_order_relaxed) == ra) return false;
    void* fn = _Unwind_FindEnclosingFunction(static_cast<char*>(return_address) - 1);
    const bool api = fn != nullptr && (fn == reinterpret_cast<void*>(&gcheap::alloc) ||
                                       fn == reinterpret_cast<void*>(&gcheap::alloc_noscan) ||
                                       fn == reinterpret_cast<void*>(&gcheap::alloc_aligned));
    (api ? api_frames_ : other_frames_)[slot].store(ra, std::memory_order_relaxed);
    return api;
}

void Profiler::seed(ThreadCache* cache) {
    if (cache->sample_rng == 0) cache->sample_rng = (reinterpret_cast<std::uintptr_t>(cache) * 0x9e3779b97f4a7c15ull) | 1;
}

bool Profiler::refresh(ThreadCache* cache, std::size_t spc) {
    seed(cache);
    const std::uint32_t epoch = epoch_.load(std::memory_order_relaxed);
    if (cache->sample_epoch[spc] == epoch) return false;
    // A new rate: the class's countdown is drawn afresh, and a point planted
    // in it at the old rate no longer means a sample (the gap is memoryless,
    // so redrawing there is as good as keeping it). Per class, because each
    // class's planted point is reached at its own time.
    cache->sample_left[spc] = 0;
    cache->sample_epoch[spc] = epoch;
    return true;
}

double Profiler::uniform(ThreadCache* cache) {
    return static_cast<double>((xorshift(cache->sample_rng) >> 11) + 1) * 0x1p-53;  // (0, 1]
}

std::uint32_t Profiler::draw(ThreadCache* cache, int rate, std::size_t size) {
    if (rate == 1) return 1;
    // The number of objects up to the one a sample point falls in:
    // ceil(gap / size), gap exponential of mean `rate` (Go's nextSample).
    const double objects = std::ceil(-std::log(uniform(cache)) * rate / static_cast<double>(size));
    if (objects < 1) return 1;
    if (objects >= 4e9) return 4000000000u;
    return static_cast<std::uint32_t>(objects);
}

bool Profiler::account_slow_alloc(ThreadCache* cache, Span& span, std::size_t spc, std::uint32_t index,
                                  std::uint32_t planted) {
    const int rate = rate_.load(std::memory_order_relaxed);
    const bool new_rate = refresh(cache, spc);
    std::uint32_t& left = cache->sample_left[spc];
    bool sampled;
    if (planted != Span::kNoSamplePoint && index == planted && !new_rate) {
        sampled = true;  // the fast path stopped right before it
        left = 0;
    } else {
        if (left == 0) left = draw(cache, rate, span.elem_size);
        sampled = --left == 0;
    }
    if (left == 0) left = draw(cache, rate, span.elem_size);
    // The slots the fast path can hand out from the cached word: free,
    // below nelems, and not the word's last slot unless it is the span's
    // (the fast path leaves that one to the slow path, which counts it).
    const std::uint32_t free_index = span.free_index.load(std::memory_order_relaxed);
    if (free_index >= span.nelems) return sampled;
    const std::uint32_t valid = std::min<std::uint32_t>(64, span.nelems - free_index);
    std::uint64_t eligible = span.alloc_cache & (valid == 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << valid) - 1);
    const std::uint32_t last = 63 - free_index % 64;  // the word's last slot, relative to free_index
    if (free_index + last != span.nelems - 1) eligible &= ~(std::uint64_t{1} << last);
    const auto visible = static_cast<std::uint32_t>(std::popcount(eligible));
    if (left > visible) {
        left -= visible;  // all of them go before the next sample
        return sampled;
    }
    // Plant: keep the left - 1 free slots before the sampled one.
    for (std::uint32_t i = 1; i < left; ++i) eligible &= eligible - 1;
    plant(span, free_index, static_cast<unsigned>(std::countr_zero(eligible)));  // eligible != 0: in the word
    left = 0;
    return sampled;
}

bool Profiler::sample_large(ThreadCache* cache, std::size_t bytes) {
    const int rate = rate_.load(std::memory_order_relaxed);
    if (rate == 0 || cache == nullptr) return false;
    if (rate == 1) return true;
    seed(cache);
    return uniform(cache) <= -std::expm1(-static_cast<double>(bytes) / rate);
}

void Profiler::record(std::uintptr_t object, Span& span, std::size_t bytes, const void* entry) {
    void* frames[kMaxStack];
    const int n = backtrace(frames, kMaxStack);
    // Start the stack at the frame that returns to `entry`, past gcheap's
    // own frames (their number depends on inlining and tail calls); then
    // past the public entry points, unless they were tail calls.
    int start = 0;
    for (int i = 0; i < n; ++i) {
        if (frames[i] == entry) {
            start = i;
            break;
        }
    }
    while (start + 1 < n && is_api_frame(frames[start])) ++start;
    try {
        std::vector<std::uintptr_t> stack;
        stack.reserve(static_cast<std::size_t>(n - start));
        for (int i = start; i < n; ++i) stack.push_back(reinterpret_cast<std::uintptr_t>(frames[i]));
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
            by_span_[&span].push_back(object);
            span.profiled.fetch_add(1, std::memory_order_relaxed);
        }
    } catch (const std::bad_alloc&) {
        // Out of C heap: lose this sample rather than fail the allocation.
    }
}

void Profiler::sweep_span(Span& span) {
    MutatorLock<> lock(mu_);
    auto found = by_span_.find(&span);
    if (found == by_span_.end()) return;
    std::vector<std::uintptr_t>& objects = found->second;
    for (std::size_t i = 0; i < objects.size();) {
        const std::uint32_t index = span.object_index(objects[i]);
        if ((span.mark_bits()[index / 64] >> (index % 64)) & 1) {
            ++i;  // survives this cycle
            continue;
        }
        auto it = live_.find(objects[i]);
        ++it->second->frees;
        live_.erase(it);
        objects[i] = objects.back();
        objects.pop_back();
        span.profiled.fetch_sub(1, std::memory_order_relaxed);
    }
    if (objects.empty()) by_span_.erase(found);
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
