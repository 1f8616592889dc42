// gcheap — seeing fragmentation: where HeapInuse − HeapAlloc goes.
//
// fragmentation_report() breaks the heap down by size class: how many spans
// each class holds, how full they are, and how many bytes of their pages no
// live object uses. write_heap_map() draws the same picture page by page as
// an SVG. docs/fragmentation.md explains how to read both.
#pragma once

#include <gcheap/mem_stats.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace gcheap {

/// Spans are counted in six buckets by occupancy, live objects / slots:
/// [0, 1%), [1, 10%), [10, 25%), [25, 50%), [50, 75%) and [75, 100%].
inline constexpr std::size_t kOccupancyBuckets = 6;
/// Lower bound of each bucket, in percent.
inline constexpr std::array<unsigned, kOccupancyBuckets> kOccupancyBucketFloor = {0, 1, 10, 25, 50, 75};
/// "0-1%", "1-10%", ... "75-100%".
const char* occupancy_bucket_label(std::size_t bucket);

/// The in-use spans of one small size class (scan and noscan together).
struct SizeClassFragmentation {
    std::uint32_t size_class = 0;       ///< 1..67, Go's numbering.
    std::uint32_t object_size = 0;      ///< Slot size in bytes.
    std::uint32_t pages_per_span = 0;   ///< 8 KiB pages per span.
    std::uint32_t slots_per_span = 0;   ///< Objects per span.
    std::uint64_t spans = 0;            ///< In-use spans of this class.
    std::uint64_t noscan_spans = 0;     ///< Of which hold pointer-free objects.
    std::uint64_t slots = 0;            ///< spans * slots_per_span.
    std::uint64_t live_objects = 0;     ///< Allocated slots (a tiny block counts as one 16-byte slot).
    std::uint64_t live_bytes = 0;       ///< live_objects * object_size: this class's share of HeapAlloc.
    std::uint64_t inuse_bytes = 0;      ///< spans * pages_per_span * 8192: its share of HeapInuse.
    std::uint64_t free_slot_bytes = 0;  ///< (slots - live_objects) * object_size.
    std::uint64_t tail_bytes = 0;       ///< Bytes after the last slot of each span, which no object can use.
    std::uint64_t wasted_bytes = 0;     ///< inuse_bytes - live_bytes == free_slot_bytes + tail_bytes.
    /// Spans per occupancy bucket (see kOccupancyBucketFloor).
    std::array<std::uint64_t, kOccupancyBuckets> occupancy{};
};

/// Large objects (> 32 KiB): one object per span of whole pages. MemStats
/// counts them at their page-rounded size, as Go does, so their rounding
/// waste is inside HeapAlloc and not part of HeapInuse − HeapAlloc.
struct LargeObjectFragmentation {
    std::uint64_t objects = 0;
    std::uint64_t pages = 0;
    std::uint64_t inuse_bytes = 0;      ///< pages * 8192: their share of both HeapInuse and HeapAlloc.
    std::uint64_t requested_bytes = 0;  ///< Bytes the program asked for.
    std::uint64_t rounding_bytes = 0;   ///< inuse_bytes - requested_bytes.
};

/// The in-use spans of one partition (gcheap/partition.hpp): its share of
/// HeapInuse and HeapAlloc. Summed over FragmentationReport::partitions,
/// inuse_bytes gives stats.HeapInuse and live_bytes stats.HeapAlloc.
struct PartitionFragmentation {
    std::string name;                ///< "default" for the default partition.
    std::uint64_t small_spans = 0;   ///< Spans of small objects.
    std::uint64_t large_objects = 0; ///< Large objects allocated in the partition.
    std::uint64_t live_objects = 0;  ///< Allocated slots, large objects included.
    std::uint64_t inuse_bytes = 0;   ///< Pages of its spans: its share of HeapInuse.
    std::uint64_t live_bytes = 0;    ///< Allocated slots * slot size: its share of HeapAlloc.
    std::uint64_t wasted_bytes = 0;  ///< inuse_bytes - live_bytes.
};

/// Where the bytes of in-use spans go, by size class, at one instant.
///
/// The report and `stats` are read under the same lock, so they agree
/// exactly, even while other threads allocate:
///
///   stats.HeapInuse == small_inuse_bytes + large.inuse_bytes
///   stats.HeapAlloc == small_live_bytes + large.inuse_bytes
///   stats.HeapInuse - stats.HeapAlloc == wasted_bytes == Σ classes[i].wasted_bytes
///
/// Between an automatic collection and the end of its (lazy) sweep, objects
/// found dead still count as live, as in HeapAlloc; after collect() every
/// span has been swept.
struct FragmentationReport {
    MemStats stats;                               ///< Read with the report.
    std::vector<SizeClassFragmentation> classes;  ///< Classes with in-use spans, by class.
    LargeObjectFragmentation large;
    std::uint64_t small_spans = 0;
    std::uint64_t small_inuse_bytes = 0;
    std::uint64_t small_live_bytes = 0;
    std::uint64_t wasted_bytes = 0;  ///< Σ classes[i].wasted_bytes
    /// Spans of every small class per occupancy bucket.
    std::array<std::uint64_t, kOccupancyBuckets> occupancy{};
    /// Every live partition, the default one first (a destroyed partition's
    /// spans count in the default one's).
    std::vector<PartitionFragmentation> partitions;
};

/// Reports the default heap's fragmentation (and its MemStats, read with it).
FragmentationReport fragmentation_report();

/// Order of the class table in to_text().
enum class ReportOrder {
    kWorstFirst,  ///< Most wasted bytes first.
    kByClass,     ///< Size class order.
};

/// A table for people: totals, one line per size class, large objects.
std::string to_text(const FragmentationReport& report, ReportOrder order = ReportOrder::kWorstFirst);

/// The whole report as one JSON object (all figures in bytes or counts);
/// the field names are those of the structs above.
std::string to_json(const FragmentationReport& report);

/// Writes an SVG map of the default heap: every arena's committed pages as
/// cells, 128 to a row, coloured by state — free (resident), released, large
/// object, and for small-object spans by occupancy — with a tooltip (`<title>`)
/// per span giving its size class, object size and live/slots, and a legend.
/// Throws std::system_error (the message names `path`) if the file cannot be
/// written.
void write_heap_map(const char* path);

}  // namespace gcheap
