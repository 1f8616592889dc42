// gcheap — partitions: separate spans for objects of different lifetimes.
//
// Inside one heap, objects of one size class share spans, whoever allocates
// them: a long-lived object allocated in the middle of a request's garbage
// pins that garbage's page after the request ends (docs/fragmentation.md,
// scenarios 3 and 7). A Partition gives a group of allocations spans of
// their own:
//
//     gcheap::Partition task("long-running-task");   // once, long-lived
//     ...
//     {
//         gcheap::PartitionScope scope(task);        // this thread, this block
//         keep(gcheap::make<Entry>(...));            // from task's spans only
//     }                                              // back to the previous partition
//
// What a partition changes: only which spans (and which tiny block) the
// calling thread's allocations come from. What it does not: collection is
// global (objects in any partition may point to objects in any other and keep
// them alive), the page heap is shared (a span that becomes entirely free
// returns its pages, which any partition may take next), and MemStats covers
// the whole heap; fragmentation_report().partitions and partition_stats()
// break HeapInuse and HeapAlloc down by partition.
//
// Cost: allocation inside a scope costs exactly what it costs outside (each
// thread has one cache per partition it has used; a scope swaps which one the
// thread uses). Entering a scope takes no lock while the thread already has a
// cache for the partition (a walk of its few caches and one atomic
// increment); the first scope of a thread on a partition creates one (about
// 1 KiB). What a partition does cost is partly filled
// spans: each partition has its own partly filled span per size class and
// thread, so many small partitions waste more than they save.
//
// Threads: a Partition may be used from any number of threads at once, each
// with its own PartitionScope. A scope belongs to the thread that made it.
#pragma once

#include <gcheap/fragmentation.hpp>

#include <string>
#include <string_view>

namespace gcheap {

namespace detail {
class Heap;
struct PartitionState;
struct ThreadCache;
}  // namespace detail

/// A partition of the default heap (at most 63 live at once, besides the
/// default partition). Neither copyable nor movable: scopes refer to it.
///
/// Destroying a partition is safe while its objects are alive: its spans,
/// with their objects, are given to the default partition, and the objects
/// stay valid until the collector finds them unreachable. Destroying it while
/// a PartitionScope on it is active, on any thread, is a fatal error.
class Partition {
public:
    /// Throws std::length_error when 63 partitions are live, std::bad_alloc.
    explicit Partition(std::string_view name);
    /// A partition of `heap` rather than of the default heap (tests).
    Partition(detail::Heap& heap, std::string_view name);
    ~Partition();
    Partition(const Partition&) = delete;
    Partition& operator=(const Partition&) = delete;

    const std::string& name() const { return name_; }

private:
    friend class PartitionScope;
    friend PartitionFragmentation partition_stats(const Partition& partition);

    detail::Heap* heap_;
    detail::PartitionState* state_;
    std::string name_;
};

/// While it lives, the calling thread's small-object allocations come from
/// `partition`'s spans and tiny block (large objects count in its
/// breakdown). Scopes nest; each restores the partition in use before it.
/// Must be destroyed on the thread that made it, in reverse order of
/// creation (as a local variable is). unregister_current_thread() inside a
/// scope throws std::logic_error.
class PartitionScope {
public:
    explicit PartitionScope(Partition& partition);
    ~PartitionScope();
    PartitionScope(const PartitionScope&) = delete;
    PartitionScope& operator=(const PartitionScope&) = delete;

private:
    Partition& partition_;
    detail::ThreadCache* previous_;
};

/// `partition`'s spans and its shares of HeapInuse and HeapAlloc, now (one
/// entry of fragmentation_report().partitions; as costly as the report).
PartitionFragmentation partition_stats(const Partition& partition);

}  // namespace gcheap
