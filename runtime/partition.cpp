// Partitions: creating and destroying them, entering and leaving scopes, the
// per-partition breakdown, and the public gcheap::Partition API. See
// partition.hpp for the invariants and include/gcheap/partition.hpp for the
// contract users see.
#include "runtime/partition.hpp"

#include "runtime/fragmentation.hpp"
#include "runtime/heap.hpp"

#include <gcheap/partition.hpp>

#include <stdexcept>

namespace gcheap::detail {

PartitionState* Heap::create_partition(std::string_view name) {
    std::string owned(name);
    SharedGate gate(gate_);
    std::lock_guard<std::mutex> lock(caches_mu_);
    const std::size_t slots = partition_slots();
    std::size_t slot = 1;
    while (slot < slots && partitions_[slot]->id.load(std::memory_order_relaxed) != kNoPartitionId) ++slot;
    if (slot == kMaxPartitions) {
        throw std::length_error("gcheap::Partition: too many partitions (at most 63 besides the default one)");
    }
    if (slot == slots) {
        // A new slot: filled before partition_slots_ publishes it (P4).
        partitions_[slot] = std::make_unique<PartitionState>(static_cast<std::uint8_t>(slot));
    }
    PartitionState& p = *partitions_[slot];
    p.name = std::move(owned);
    p.id.store(next_partition_id_++, std::memory_order_relaxed);
    if (slot == slots) partition_slots_.store(slots + 1, std::memory_order_release);
    return &p;
}

void Heap::destroy_partition(PartitionState* partition) {
    if (partition->active_scopes.load(std::memory_order_acquire) != 0) {
        debug_fatal("gcheap: a Partition was destroyed while a PartitionScope on it was active\n");
    }
    const std::uint64_t id = partition->id.load(std::memory_order_relaxed);
    PartitionState& fallback = *partitions_[0];
    // Closed, the gate keeps every slow path, sweep and collection out; no
    // fast path uses the partition's caches, since no scope is active.
    gate_.lock();
    {
        std::lock_guard<std::mutex> lock(caches_mu_);
        for (ThreadCache* c = caches_; c != nullptr; c = c->registry_next) {
            if (c->partition_id.load(std::memory_order_relaxed) != id) continue;
            flush_cache_locked(c);  // its spans go to the partition's centrals, moved below
            c->partition_id.store(kNoPartitionId, std::memory_order_relaxed);  // (P2): owner may reuse it
        }
        for (std::size_t spc = 0; spc < kNumSpanClasses; ++spc) {
            fallback.centrals[spc].adopt_locked(partition->centrals[spc]);
        }
        partition->id.store(kNoPartitionId, std::memory_order_relaxed);
        partition->name.clear();
    }
    {
        std::lock_guard<SpinningMutex> lock(pages_.mutex());
        const auto adopt = [&](Span* s) {
            if (s->partition == partition->index) s->partition = 0;
        };
        large_spans_.for_each(adopt);
        large_unswept_.for_each(adopt);
    }
    gate_.unlock();
}

ThreadCache* Heap::partition_cache_slow(CacheBinding* binding, PartitionState& partition) {
    SharedGate gate(gate_);
    std::lock_guard<std::mutex> lock(caches_mu_);
    const std::uint64_t id = partition.id.load(std::memory_order_relaxed);
    // A cache left by a destroyed partition is empty (P2): reuse it.
    ThreadCache* cache = binding->cache;
    while (cache != nullptr && cache->partition_id.load(std::memory_order_relaxed) != kNoPartitionId) {
        cache = cache->thread_next;
    }
    if (cache == nullptr) {
        cache = cache_pool_.create(&empty_span_);
        if (cache == nullptr) throw std::bad_alloc();
        cache->binding = binding;
        cache->registry_next = caches_;
        if (caches_ != nullptr) caches_->registry_prev = cache;
        caches_ = cache;
        cache->thread_next = binding->cache->thread_next;
        binding->cache->thread_next = cache;
    }
    cache->centrals = partition.centrals.data();
    cache->partition = partition.index;
    cache->partition_id.store(id, std::memory_order_relaxed);
    return cache;
}

ThreadCache* Heap::enter_partition(PartitionState& partition) {
    ThreadCache* previous = tls_cache_slot.heap_id == id_ ? tls_cache_slot.cache : cache_for_current_thread();
    CacheBinding* binding = previous->binding;
    const std::uint64_t id = partition.id.load(std::memory_order_relaxed);
    ThreadCache* target = binding->cache;
    while (target != nullptr && target->partition_id.load(std::memory_order_relaxed) != id) {
        target = target->thread_next;
    }
    if (target == nullptr) target = partition_cache_slow(binding, partition);
    partition.active_scopes.fetch_add(1, std::memory_order_relaxed);
    binding->current = target;
    tls_cache_slot.heap_id = id_;
    tls_cache_slot.cache = target;
    return previous;
}

void Heap::leave_partition(PartitionState& partition, ThreadCache* previous) {
    previous->binding->current = previous;
    tls_cache_slot.heap_id = id_;
    tls_cache_slot.cache = previous;
    // Release: what the scope allocated happens-before a destroy that sees the count drop.
    partition.active_scopes.fetch_sub(1, std::memory_order_release);
}

std::vector<PartitionFragmentation> Heap::partition_breakdown_locked(const CachedSpanCounts& cached,
                                                                     std::vector<std::uint8_t>* slots) {
    std::array<PartitionFragmentation, kMaxPartitions> by_slot{};
    arena_index_.for_each_span([&](const Span* span) {
        PartitionFragmentation& p = by_slot[span->partition];
        const std::uint64_t live = cached.live_count(*span);
        if (span->is_large()) ++p.large_objects;
        else ++p.small_spans;
        p.live_objects += live;
        p.inuse_bytes += span->npages * kPageSize;
        p.live_bytes += live * span->elem_size;
    });
    std::vector<PartitionFragmentation> out;
    for (std::size_t i = 0; i < partition_slots(); ++i) {
        const PartitionState& state = *partitions_[i];
        if (state.id.load(std::memory_order_relaxed) == kNoPartitionId) continue;
        PartitionFragmentation p = by_slot[i];
        p.name = state.name;
        p.wasted_bytes = p.inuse_bytes - p.live_bytes;
        out.push_back(std::move(p));
        if (slots != nullptr) slots->push_back(static_cast<std::uint8_t>(i));
    }
    return out;
}

PartitionFragmentation Heap::partition_stats(const PartitionState& partition) {
    MemStats stats;
    CachedSpanCounts cached;
    std::vector<std::uint8_t> slots;
    std::vector<PartitionFragmentation> all;
    {
        AllocatorLock lock(*this);
        compute_stats_locked(stats, &cached);
        cached.seal();
        all = partition_breakdown_locked(cached, &slots);
    }
    for (std::size_t i = 0; i < all.size(); ++i) {
        if (slots[i] == partition.index) return all[i];
    }
    return {};
}

}  // namespace gcheap::detail

namespace gcheap {

Partition::Partition(std::string_view name) : Partition(detail::default_heap(), name) {}

Partition::Partition(detail::Heap& heap, std::string_view name)
    : heap_(&heap), state_(heap.create_partition(name)), name_(name) {}

Partition::~Partition() { heap_->destroy_partition(state_); }

PartitionScope::PartitionScope(Partition& partition)
    : partition_(partition), previous_(partition.heap_->enter_partition(*partition.state_)) {}

PartitionScope::~PartitionScope() { partition_.heap_->leave_partition(*partition_.state_, previous_); }

PartitionFragmentation partition_stats(const Partition& partition) {
    return partition.heap_->partition_stats(*partition.state_);
}

}  // namespace gcheap
