// PartitionState: one partition of a heap — its own central list per span
// class — and the heap's table of partitions (gcheap::Partition is the
// public handle, include/gcheap/partition.hpp).
//
// A partition separates the spans of objects of different lifetimes inside
// one heap: a thread allocating inside a PartitionScope uses a ThreadCache of
// its own for that partition (so its own spans and tiny block), and refills
// it from the partition's centrals. The page heap is shared: a span that
// becomes entirely free returns its pages to it, and any partition may take
// them next. Marking, sweeping and MemStats stay global.
//
// Each thread has one cache per (heap, partition) it has used, chained from
// its default-partition cache (ThreadCache::thread_next). A PartitionScope
// points the thread's TLS slot at the partition's cache, so the fast path is
// unchanged; the slow path reaches the partition through ThreadCache::centrals.
//
// Invariants (Heap::verify_locked checks P1-P3):
//   (P1) every span filed in partition k's centrals, or cached by a cache
//        with partition == k, has span.partition == k;
//   (P2) a cache whose partition is gone (partition_id == kNoPartitionId)
//        holds no span and no tiny block;
//   (P3) slot 0 is the default partition, which is never destroyed;
//   (P4) slots [0, partition_slots) are allocated and never freed before the
//        heap; a free slot has id == kNoPartitionId and empty centrals.
// Destroying a partition (Heap::destroy_partition) flushes its caches, gives
// every span it still has — with the live objects in them — to the default
// partition, and frees its slot for reuse; it must not be in use by an
// active PartitionScope (that is fatal). Ids are never reused, so a thread's
// stale cache can never match a later partition in the same slot.
// Locking: create and reuse of caches pass the gate shared and hold
// caches_mu_; destroy closes the gate, then takes caches_mu_ (lock order:
// gate -> caches_mu_ -> Central::mutex -> PageHeap::mutex).
#pragma once

#include "runtime/central.hpp"
#include "runtime/size_classes.hpp"

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

namespace gcheap::detail {

/// At most this many partitions live at once in a heap, the default one
/// included; Span::partition holds the slot index.
inline constexpr std::size_t kMaxPartitions = 64;
/// ThreadCache::partition_id of a cache whose partition was destroyed, and
/// PartitionState::id of a free slot.
inline constexpr std::uint64_t kNoPartitionId = 0;
/// The default partition's id (slot 0).
inline constexpr std::uint64_t kDefaultPartitionId = 1;

struct PartitionState {
    explicit PartitionState(std::uint8_t slot) : index(slot) {
        for (std::size_t spc = 0; spc < kNumSpanClasses; ++spc) centrals[spc].init(spc, slot);
    }
    PartitionState(const PartitionState&) = delete;
    PartitionState& operator=(const PartitionState&) = delete;

    std::array<Central, kNumSpanClasses> centrals;
    const std::uint8_t index;
    // Unique in the heap, never reused; kNoPartitionId while the slot is free.
    // Written under caches_mu_ with the gate passed or closed; atomic because
    // a thread entering a scope compares it with its caches' ids unlocked.
    std::atomic<std::uint64_t> id{kNoPartitionId};
    std::string name;  // guarded like id; read by whole-heap readers (gate closed)
    // Scopes using the partition right now, on any thread: destroying a
    // partition in use is fatal rather than a use after free.
    std::atomic<std::uint32_t> active_scopes{0};
};

}  // namespace gcheap::detail
