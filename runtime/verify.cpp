// Heap self-checks: the slow recount (Go's ReadMemStatsSlow), verify()
// (every structure's invariants, by the structures' own verify functions),
// and the whole-heap check of GCHEAP_DEBUG=verify, which adds the MemStats
// identities and compares the counters with the recount.
//
// All of them need a still heap: the allocator gate closed (AllocatorLock),
// so that no slow path runs; the debug check also stops the world, so that
// not even a fast-path allocation moves a counter between two reads.
#include "runtime/heap.hpp"

#include "gc/collector.hpp"

#include <fmt/format.h>

namespace gcheap::detail {

namespace {

// Formats a report into the caller's buffer: fmt::format_to_n allocates
// nothing, and the world is stopped.
template <class... Args>
bool fail(char* report, std::size_t size, fmt::format_string<Args...> format, Args&&... args) {
    auto out = fmt::format_to_n(report, size - 1, format, std::forward<Args>(args)...);
    *out.out = '\0';
    return false;
}

}  // namespace

SlowCounts Heap::count_slow() {
    AllocatorLock lock(*this);
    return count_slow_locked();
}

SlowCounts Heap::count_slow_locked() const {
    SlowCounts counts;
    arena_index_.for_each_span([&](const Span* span) {
        const std::uint32_t live = span->alloc_count.load(std::memory_order_relaxed);
        counts.alloc_bytes += std::uint64_t{live} * span->elem_size;
        counts.objects += live;
        counts.inuse_bytes += span->npages * kPageSize;
        counts.live_by_class[span->size_class] += live;
        ++counts.spans;
    });
    return counts;
}

const char* Heap::verify() {
    AllocatorLock lock(*this);
    return verify_locked();
}

const char* Heap::verify_locked() {
    if (const char* problem = pages_.verify_locked()) return problem;
    const char* central_problem = nullptr;
    for_each_central([&](const Central& central) {
        if (const char* problem = central.verify_locked()) central_problem = problem;
    });
    if (central_problem != nullptr) return central_problem;
    for (std::size_t i = 1; i < partition_slots(); ++i) {
        const PartitionState& p = *partitions_[i];
        if (p.id.load(std::memory_order_relaxed) != kNoPartitionId) continue;
        for (const Central& central : p.centrals) {
            if (!central.partial_locked().empty() || !central.full_locked().empty() ||
                !central.unswept_locked().empty())
                return "spans filed in a free partition slot (P4)";
        }
    }
    for (ThreadCache* c = caches_; c != nullptr; c = c->registry_next) {
        const bool dead = c->partition_id.load(std::memory_order_relaxed) == kNoPartitionId;
        for (std::size_t spc = 0; spc < kNumSpanClasses; ++spc) {
            const Span* span = c->spans[spc];
            if (span == nullptr) return "null span in a thread cache (T1)";
            if (span == &empty_span_) continue;
            if (span->home != SpanHome::kThreadCache || span->span_class != spc) return "misfiled cached span (T2)";
            if (span->partition != c->partition) return "cached span of another partition (T4, P1)";
            if (dead) return "span in the cache of a destroyed partition (P2)";
            if (const char* problem = span->verify()) return problem;
        }
        if (c->tiny_offset > kTinySize) return "tiny offset past its block (T3)";
        if (dead && c->tiny != 0) return "tiny block in the cache of a destroyed partition (P2)";
    }
    const char* problem = nullptr;
    large_spans_.for_each([&](const Span* s) {
        if (s->home != SpanHome::kLarge || !s->is_large() || s->alloc_count.load(std::memory_order_relaxed) != 1)
            problem = "bad large span";
    });
    large_unswept_.for_each([&](const Span* s) {
        if (s->home != SpanHome::kUnswept || !s->is_large()) problem = "bad unswept large span";
    });
    if (problem != nullptr || collector_->sweeper().pending()) return problem;
    // (W2) With sweeping finished, no span carries mark bits into the next cycle.
    arena_index_.for_each_span([&](const Span* span) {
        if (span->home == SpanHome::kUnswept) problem = "unswept span while no sweep is pending (C3)";
        for (std::size_t w = 0; w < kBitmapWords; ++w) {
            if (span->mark_bits()[w] != 0) problem = "mark bits left after sweeping (W2)";
        }
    });
    return problem;
}

const char* mem_stats_violation(const MemStats& s) {
    if (s.HeapSys != s.HeapIdle + s.HeapInuse) return "HeapSys != HeapIdle + HeapInuse";
    if (s.HeapReleased > s.HeapIdle) return "HeapReleased > HeapIdle";
    if (s.HeapAlloc > s.HeapInuse) return "HeapAlloc > HeapInuse";
    if (s.Alloc != s.HeapAlloc) return "Alloc != HeapAlloc";
    if (s.HeapObjects != s.Mallocs - s.Frees) return "HeapObjects != Mallocs - Frees";
    if (s.TotalAlloc < s.HeapAlloc) return "TotalAlloc < HeapAlloc";
    if (s.Sys != s.HeapSys + s.StackSys + s.MSpanSys + s.MCacheSys + s.BuckHashSys + s.GCSys + s.OtherSys)
        return "Sys != sum of *Sys";
    if (s.MSpanInuse > s.MSpanSys) return "MSpanInuse > MSpanSys";
    if (s.MCacheInuse > s.MCacheSys) return "MCacheInuse > MCacheSys";
    if (s.StackInuse > s.StackSys) return "StackInuse > StackSys";
    if (s.HeapSys % kPageSize != 0 || s.HeapInuse % kPageSize != 0) return "heap figures not whole pages";
    std::uint64_t by_size_mallocs = 0;
    std::uint64_t by_size_frees = 0;
    for (std::size_t c = 0; c < kBySizeClasses; ++c) {
        if (s.BySize[c].Size != kClassSize[c]) return "BySize[].Size differs from the size class table";
        if (s.BySize[c].Frees > s.BySize[c].Mallocs) return "BySize[].Frees > BySize[].Mallocs";
        by_size_mallocs += s.BySize[c].Mallocs;
        by_size_frees += s.BySize[c].Frees;
    }
    if (by_size_mallocs > s.Mallocs || by_size_frees > s.Frees) return "BySize sums exceed Mallocs or Frees";
    return nullptr;
}

bool Heap::verify_stopped(char* report, std::size_t size) {
    if (const char* problem = verify_locked()) return fail(report, size, "gcheap: verify: {}\n", problem);
    MemStats s;
    compute_stats_locked(s);
    if (const char* problem = mem_stats_violation(s)) {
        return fail(report, size, "gcheap: verify: MemStats: {}\n", problem);
    }
    const SlowCounts slow = count_slow_locked();
    if (slow.alloc_bytes != s.HeapAlloc || slow.objects != s.HeapObjects || slow.inuse_bytes != s.HeapInuse) {
        return fail(report, size,
            "gcheap: verify: the counters disagree with a walk of every span\n"
            "gcheap:   HeapAlloc {} vs {} walked, HeapObjects {} vs {}, HeapInuse {} vs {}\n",
            s.HeapAlloc, slow.alloc_bytes, s.HeapObjects, slow.objects, s.HeapInuse, slow.inuse_bytes);
    }
    return true;
}

}  // namespace gcheap::detail
