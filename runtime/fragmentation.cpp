// Fragmentation report: tallies, the consistent snapshot, text and JSON, and
// gctrace=2's line. See fragmentation.hpp for the two views of "live".
#include "runtime/fragmentation.hpp"

#include "gc/collector.hpp"
#include "runtime/heap.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <bit>
#include <iterator>

namespace gcheap {

const char* occupancy_bucket_label(std::size_t bucket) {
    static constexpr const char* kLabels[kOccupancyBuckets] = {"0-1%",   "1-10%",  "10-25%",
                                                               "25-50%", "50-75%", "75-100%"};
    return bucket < kOccupancyBuckets ? kLabels[bucket] : "?";
}

}  // namespace gcheap

namespace gcheap::detail {

std::size_t occupancy_bucket(std::uint64_t live, std::uint64_t slots) {
    std::size_t bucket = 0;
    // live / slots >= floor / 100, in integers.
    while (bucket + 1 < kOccupancyBuckets && live * 100 >= slots * kOccupancyBucketFloor[bucket + 1]) ++bucket;
    return bucket;
}

void FragTally::add_span(const Span& span, std::uint32_t live) {
    if (span.is_large()) {
        ++large_objects;
        large_pages += span.npages;
        large_requested += span.requested_size;
        return;
    }
    ClassTally& c = classes[span.size_class];
    ++c.spans;
    if (span.noscan) ++c.noscan_spans;
    c.live += live;
    ++c.occupancy[occupancy_bucket(live, span.nelems)];
}

void CachedSpanCounts::seal() { std::sort(counts_.begin(), counts_.end()); }

std::uint32_t CachedSpanCounts::live_count(const Span& span) const {
    if (span.home == SpanHome::kThreadCache) {
        const auto it =
            std::lower_bound(counts_.begin(), counts_.end(), std::pair<const Span*, std::uint32_t>{&span, 0});
        if (it != counts_.end() && it->first == &span) return it->second;
    }
    return span.alloc_count.load(std::memory_order_relaxed);
}

void tally_marked_spans_stopped(const ArenaIndex& index, FragTally& out) {
    out = FragTally{};
    index.for_each_span([&](const Span* span) {
        if (span->is_large()) {
            if ((span->mark_bits()[0] & 1) != 0) out.add_span(*span, 1);
            return;
        }
        std::uint32_t marked = 0;
        for (std::uint32_t w = 0; w < (span->nelems + 63) / 64; ++w) {
            marked += static_cast<std::uint32_t>(std::popcount(span->mark_bits()[w]));
        }
        if (marked != 0) out.add_span(*span, marked);  // else sweeping frees it
    });
}

FragmentationReport make_report(const FragTally& tally, const MemStats& stats) {
    FragmentationReport r;
    r.stats = stats;
    for (std::size_t cls = 1; cls < kNumSizeClasses; ++cls) {
        const ClassTally& t = tally.classes[cls];
        if (t.spans == 0) continue;
        SizeClassFragmentation c;
        c.size_class = static_cast<std::uint32_t>(cls);
        c.object_size = kClassSize[cls];
        c.pages_per_span = kClassPages[cls];
        c.slots_per_span = class_objects(cls);
        c.spans = t.spans;
        c.noscan_spans = t.noscan_spans;
        c.slots = t.spans * c.slots_per_span;
        c.live_objects = t.live;
        c.live_bytes = t.live * c.object_size;
        c.inuse_bytes = t.spans * c.pages_per_span * kPageSize;
        c.free_slot_bytes = (c.slots - c.live_objects) * c.object_size;
        c.tail_bytes = t.spans * (c.pages_per_span * kPageSize - std::uint64_t{c.slots_per_span} * c.object_size);
        c.wasted_bytes = c.inuse_bytes - c.live_bytes;
        c.occupancy = t.occupancy;
        r.small_spans += c.spans;
        r.small_inuse_bytes += c.inuse_bytes;
        r.small_live_bytes += c.live_bytes;
        r.wasted_bytes += c.wasted_bytes;
        for (std::size_t b = 0; b < kOccupancyBuckets; ++b) r.occupancy[b] += c.occupancy[b];
        r.classes.push_back(c);
    }
    r.large.objects = tally.large_objects;
    r.large.pages = tally.large_pages;
    r.large.inuse_bytes = tally.large_pages * kPageSize;
    r.large.requested_bytes = tally.large_requested;
    r.large.rounding_bytes = r.large.inuse_bytes - r.large.requested_bytes;
    return r;
}

FragmentationReport Heap::fragmentation_report() {
    MemStats stats;
    FragTally tally;
    CachedSpanCounts cached;
    std::vector<PartitionFragmentation> partitions;
    {
        AllocatorLock lock(*this);
        compute_stats_locked(stats, &cached);
        collector_->fill_mem_stats(stats);
        cached.seal();
        arena_index_.for_each_span([&](const Span* span) { tally.add_span(*span, cached.live_count(*span)); });
        partitions = partition_breakdown_locked(cached);
    }
    FragmentationReport report = make_report(tally, stats);
    report.partitions = std::move(partitions);
    return report;
}

namespace {

constexpr double kMB = 1024.0 * 1024.0;

double percent(std::uint64_t part, std::uint64_t whole) {
    return whole == 0 ? 0.0 : 100.0 * static_cast<double>(part) / static_cast<double>(whole);
}

// Bytes for people: exact below 10 KiB, then KiB, then MiB.
std::string human(std::uint64_t bytes) {
    if (bytes < 10 * 1024) return fmt::format("{} B", bytes);
    if (bytes < 10 * 1024 * 1024) return fmt::format("{:.1f} KiB", static_cast<double>(bytes) / 1024.0);
    return fmt::format("{:.2f} MiB", static_cast<double>(bytes) / kMB);
}

std::vector<const SizeClassFragmentation*> worst_first(const FragmentationReport& r) {
    std::vector<const SizeClassFragmentation*> rows;
    for (const SizeClassFragmentation& c : r.classes) rows.push_back(&c);
    std::stable_sort(rows.begin(), rows.end(),
                     [](const auto* a, const auto* b) { return a->wasted_bytes > b->wasted_bytes; });
    return rows;
}

}  // namespace

std::string fragmentation_trace_line(const FragmentationReport& r) {
    const std::uint64_t inuse = r.small_inuse_bytes + r.large.inuse_bytes;
    const std::uint64_t alloc = r.small_live_bytes + r.large.inuse_bytes;
    std::string line = fmt::format(
        "frag: inuse {:.1f} MB, alloc {:.1f} MB, waste {:.1f} MB ({:.0f}%), worst:", static_cast<double>(inuse) / kMB,
        static_cast<double>(alloc) / kMB, static_cast<double>(r.wasted_bytes) / kMB, percent(r.wasted_bytes, inuse));
    int shown = 0;
    for (const SizeClassFragmentation* c : worst_first(r)) {
        if (shown == 3 || c->wasted_bytes == 0) break;
        const double full = percent(c->live_objects, c->slots);
        line += fmt::format("{} class {} ({} B) {:.1f} MB in {} spans ({:.{}f}% full)", shown == 0 ? "" : ",",
                            c->size_class, c->object_size, static_cast<double>(c->wasted_bytes) / kMB, c->spans, full,
                            full < 10 ? 1 : 0);
        ++shown;
    }
    if (shown == 0) line += " none";
    line +=
        fmt::format("; large {} objects {:.1f} MB\n", r.large.objects, static_cast<double>(r.large.inuse_bytes) / kMB);
    return line;
}

}  // namespace gcheap::detail

namespace gcheap {

std::string to_text(const FragmentationReport& r, ReportOrder order) {
    fmt::memory_buffer out;
    auto it = std::back_inserter(out);
    const MemStats& s = r.stats;
    fmt::format_to(it, "HeapInuse {}, HeapAlloc {}: {} wasted in in-use spans ({:.1f}% of HeapInuse)\n",
                   detail::human(s.HeapInuse), detail::human(s.HeapAlloc), detail::human(r.wasted_bytes),
                   detail::percent(r.wasted_bytes, s.HeapInuse));
    fmt::format_to(it, "small objects: {} spans, {} in use, {} live\n", r.small_spans,
                   detail::human(r.small_inuse_bytes), detail::human(r.small_live_bytes));
    fmt::format_to(it, "spans by occupancy:");
    for (std::size_t b = 0; b < kOccupancyBuckets; ++b) {
        fmt::format_to(it, " {} {}{}", occupancy_bucket_label(b), r.occupancy[b],
                       b + 1 < kOccupancyBuckets ? "," : "\n");
    }
    if (!r.classes.empty()) {
        fmt::format_to(it, "\n{:>5} {:>7} {:>5} {:>7} {:>17} {:>11} {:>11} {:>6} {:>11}  ", "class", "size", "pages",
                       "spans", "live/slots", "live", "wasted", "waste", "of it tail");
        for (std::size_t b = 0; b < kOccupancyBuckets; ++b) fmt::format_to(it, "{:>8}", occupancy_bucket_label(b));
        fmt::format_to(it, "\n");
        std::vector<const SizeClassFragmentation*> rows;
        if (order == ReportOrder::kWorstFirst) {
            rows = detail::worst_first(r);
        } else {
            for (const SizeClassFragmentation& c : r.classes) rows.push_back(&c);
        }
        for (const SizeClassFragmentation* c : rows) {
            fmt::format_to(it, "{:>5} {:>5} B {:>5} {:>7} {:>17} {:>11} {:>11} {:>5.1f}% {:>11}  ", c->size_class,
                           c->object_size, c->pages_per_span, c->spans, fmt::format("{}/{}", c->live_objects, c->slots),
                           detail::human(c->live_bytes), detail::human(c->wasted_bytes),
                           detail::percent(c->wasted_bytes, c->inuse_bytes), detail::human(c->tail_bytes));
            for (std::size_t b = 0; b < kOccupancyBuckets; ++b) fmt::format_to(it, "{:>8}", c->occupancy[b]);
            fmt::format_to(it, "\n");
        }
    }
    fmt::format_to(
        it, "\nlarge objects: {} objects, {} pages ({}); page rounding {} (counted in HeapAlloc, as in Go)\n",
        r.large.objects, r.large.pages, detail::human(r.large.inuse_bytes), detail::human(r.large.rounding_bytes));
    if (r.partitions.size() > 1) {  // only once the program has made partitions
        fmt::format_to(it, "\n{:<24} {:>7} {:>7} {:>11} {:>11} {:>11} {:>6}\n", "partition", "spans", "large",
                       "in use", "live", "wasted", "waste");
        for (const PartitionFragmentation& p : r.partitions) {
            fmt::format_to(it, "{:<24} {:>7} {:>7} {:>11} {:>11} {:>11} {:>5.1f}%\n", p.name, p.small_spans,
                           p.large_objects, detail::human(p.inuse_bytes), detail::human(p.live_bytes),
                           detail::human(p.wasted_bytes), detail::percent(p.wasted_bytes, p.inuse_bytes));
        }
    }
    return fmt::to_string(out);
}

std::string to_json(const FragmentationReport& r) {
    fmt::memory_buffer out;
    auto it = std::back_inserter(out);
    const auto array = [](const std::array<std::uint64_t, kOccupancyBuckets>& a) {
        return fmt::format("[{}]", fmt::join(a, ","));
    };
    const MemStats& s = r.stats;
    fmt::format_to(it,
                   "{{\"heap_inuse\":{},\"heap_alloc\":{},\"heap_idle\":{},\"heap_released\":{},\"heap_objects\":{},",
                   s.HeapInuse, s.HeapAlloc, s.HeapIdle, s.HeapReleased, s.HeapObjects);
    fmt::format_to(
        it, "\"num_gc\":{},\"small_spans\":{},\"small_inuse_bytes\":{},\"small_live_bytes\":{},\"wasted_bytes\":{},",
        s.NumGC, r.small_spans, r.small_inuse_bytes, r.small_live_bytes, r.wasted_bytes);
    fmt::format_to(it, "\"occupancy_buckets\":[");
    for (std::size_t b = 0; b < kOccupancyBuckets; ++b) {
        fmt::format_to(it, "{}\"{}\"", b == 0 ? "" : ",", occupancy_bucket_label(b));
    }
    fmt::format_to(it, "],\"occupancy\":{},\"classes\":[", array(r.occupancy));
    bool first = true;
    for (const SizeClassFragmentation& c : r.classes) {
        fmt::format_to(it,
                       "{}{{\"size_class\":{},\"object_size\":{},\"pages_per_span\":{},\"slots_per_span\":{},"
                       "\"spans\":{},\"noscan_spans\":{},\"slots\":{},\"live_objects\":{},\"live_bytes\":{},"
                       "\"inuse_bytes\":{},\"free_slot_bytes\":{},\"tail_bytes\":{},\"wasted_bytes\":{},"
                       "\"occupancy\":{}}}",
                       first ? "" : ",", c.size_class, c.object_size, c.pages_per_span, c.slots_per_span, c.spans,
                       c.noscan_spans, c.slots, c.live_objects, c.live_bytes, c.inuse_bytes, c.free_slot_bytes,
                       c.tail_bytes, c.wasted_bytes, array(c.occupancy));
        first = false;
    }
    fmt::format_to(it,
                   "],\"large\":{{\"objects\":{},\"pages\":{},\"inuse_bytes\":{},\"requested_bytes\":{},"
                   "\"rounding_bytes\":{}}},\"partitions\":[",
                   r.large.objects, r.large.pages, r.large.inuse_bytes, r.large.requested_bytes,
                   r.large.rounding_bytes);
    first = true;
    for (const PartitionFragmentation& p : r.partitions) {
        std::string name;  // JSON string: escape quotes, backslashes and control characters
        for (const char ch : p.name) {
            if (ch == '"' || ch == '\\') name += '\\';
            if (static_cast<unsigned char>(ch) < 0x20) name += fmt::format("\\u{:04x}", static_cast<unsigned>(ch));
            else name += ch;
        }
        fmt::format_to(it,
                       "{}{{\"name\":\"{}\",\"small_spans\":{},\"large_objects\":{},\"live_objects\":{},"
                       "\"inuse_bytes\":{},\"live_bytes\":{},\"wasted_bytes\":{}}}",
                       first ? "" : ",", name, p.small_spans, p.large_objects, p.live_objects, p.inuse_bytes,
                       p.live_bytes, p.wasted_bytes);
        first = false;
    }
    fmt::format_to(it, "]}}");
    return fmt::to_string(out);
}

}  // namespace gcheap
