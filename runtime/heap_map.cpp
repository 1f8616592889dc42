// Heap maps: the snapshot (with the allocator gate closed) and its SVG; see
// heap_map.hpp for the runs, their invariants and the drawing's format.
#include "runtime/heap_map.hpp"

#include "gc/collector.hpp"
#include "runtime/fragmentation.hpp"
#include "runtime/heap.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <iterator>
#include <map>
#include <string>
#include <system_error>

namespace gcheap::detail {

HeapMapSnapshot Heap::heap_map_snapshot() {
    HeapMapSnapshot snap;
    CachedSpanCounts cached;
    AllocatorLock lock(*this);
    compute_stats_locked(snap.stats, &cached);
    collector_->fill_mem_stats(snap.stats);
    cached.seal();
    arena_index_.for_each_arena([&](const ArenaMeta& meta) { snap.arenas.push_back(meta.base); });
    arena_index_.for_each_span([&](const Span* span) {
        MapRun run;
        run.base = span->base;
        run.npages = span->npages;
        run.kind = span->is_large() ? MapRun::Kind::kLarge : MapRun::Kind::kSmall;
        run.size_class = span->size_class;
        run.noscan = span->noscan;
        run.live = cached.live_count(*span);
        run.slots = span->nelems;
        run.requested = span->requested_size;
        snap.runs.push_back(run);
    });
    // Free runs, split where pages change between resident and released.
    pages_.for_each_free_run_locked([&](std::uintptr_t base, std::size_t npages) {
        const std::uintptr_t end = base + npages * kPageSize;
        for (std::uintptr_t addr = base; addr < end;) {
            const auto released = [&](std::uintptr_t a) {
                return arena_index_.arena_of(a)->is_released(ArenaMeta::page_of(a));
            };
            const bool state = released(addr);
            std::uintptr_t stop = addr + kPageSize;
            while (stop < end && released(stop) == state) stop += kPageSize;
            MapRun run;
            run.base = addr;
            run.npages = (stop - addr) / kPageSize;
            run.kind = state ? MapRun::Kind::kReleased : MapRun::Kind::kFree;
            snap.runs.push_back(run);
            addr = stop;
        }
    });
    std::sort(snap.runs.begin(), snap.runs.end(), [](const MapRun& a, const MapRun& b) { return a.base < b.base; });
    return snap;
}

namespace {

constexpr std::size_t kMargin = 10;
constexpr std::size_t kLine = 16;  // text line height
constexpr std::size_t kRowWidth = kMapColumns * kMapCell;

const char* css_class(const MapRun& run) {
    static constexpr const char* kOccupancy[kOccupancyBuckets] = {"o0", "o1", "o2", "o3", "o4", "o5"};
    switch (run.kind) {
        case MapRun::Kind::kFree: return "f";
        case MapRun::Kind::kReleased: return "r";
        case MapRun::Kind::kLarge: return "l";
        case MapRun::Kind::kSmall: break;
    }
    return kOccupancy[occupancy_bucket(run.live, run.slots)];
}

std::string title(const MapRun& run) {
    const char* pages = run.npages == 1 ? "page" : "pages";
    switch (run.kind) {
        case MapRun::Kind::kFree: return fmt::format("free (resident): {} {}", run.npages, pages);
        case MapRun::Kind::kReleased: return fmt::format("released: {} {}", run.npages, pages);
        case MapRun::Kind::kLarge:
            return fmt::format("large object{}: {} B in {} {}", run.noscan ? " (noscan)" : "", run.requested,
                               run.npages, pages);
        case MapRun::Kind::kSmall: break;
    }
    return fmt::format("class {} ({} B{}): {}/{} live, {} {}", run.size_class, kClassSize[run.size_class],
                       run.noscan ? ", noscan" : "", run.live, run.slots, run.npages, pages);
}

double mib(std::uint64_t bytes) { return static_cast<double>(bytes) / (1024.0 * 1024.0); }

}  // namespace

std::string render_heap_map_svg(const HeapMapSnapshot& snap) {
    // Each arena is drawn up to its last committed page.
    std::map<std::uintptr_t, std::size_t> arena_pages;  // arena base -> pages drawn
    for (const MapRun& run : snap.runs) {
        const std::uintptr_t last = run.base + run.npages * kPageSize - 1;
        for (std::uintptr_t arena = run.base & ~(kArenaSize - 1); arena <= last; arena += kArenaSize) {
            const std::size_t end_page = std::min<std::uintptr_t>(last + 1 - arena, kArenaSize) / kPageSize;
            std::size_t& pages = arena_pages[arena];
            pages = std::max(pages, end_page);
        }
    }
    const std::size_t header = kMargin + 3 * kLine;  // title, figures, legend
    std::map<std::uintptr_t, std::size_t> arena_y;   // arena base -> y of its first row
    std::size_t y = header;
    for (const auto& [arena, pages] : arena_pages) {
        y += kLine;  // the arena's caption
        arena_y[arena] = y;
        y += (pages + kMapColumns - 1) / kMapColumns * kMapCell + kLine / 2;
    }
    const std::size_t width = 2 * kMargin + kRowWidth;
    const std::size_t height = y + kMargin;

    fmt::memory_buffer out;
    auto it = std::back_inserter(out);
    fmt::format_to(it,
                   "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" "
                   "font-family=\"sans-serif\" font-size=\"11\">\n",
                   width, height);
    fmt::format_to(it,
                   "<style>rect{{stroke:#fff;stroke-width:0.5}} .f{{fill:#bdbdbd}} .r{{fill:#e8eef5}} "
                   ".l{{fill:#4f6fb3}} .o0{{fill:#d73027}} .o1{{fill:#f46d43}} .o2{{fill:#fdae61}} "
                   ".o3{{fill:#fee08b}} .o4{{fill:#a6d96a}} .o5{{fill:#1a9850}}</style>\n");
    fmt::format_to(it, "<rect x=\"0\" y=\"0\" width=\"{}\" height=\"{}\" fill=\"#fff\" stroke=\"none\"/>\n", width,
                   height);
    const MemStats& s = snap.stats;
    fmt::format_to(it,
                   "<text x=\"{}\" y=\"{}\" font-weight=\"bold\">gcheap heap map: {} arena(s), 1 cell = 8 KiB page, {} "
                   "per row</text>\n",
                   kMargin, kMargin + kLine - 4, arena_pages.size(), kMapColumns);
    fmt::format_to(
        it,
        "<text x=\"{}\" y=\"{}\">HeapInuse {:.2f} MiB, HeapAlloc {:.2f} MiB, HeapInuse - HeapAlloc {:.2f} MiB; "
        "HeapIdle {:.2f} MiB, of it released {:.2f} MiB</text>\n",
        kMargin, kMargin + 2 * kLine - 4, mib(s.HeapInuse), mib(s.HeapAlloc), mib(s.HeapInuse - s.HeapAlloc),
        mib(s.HeapIdle), mib(s.HeapReleased));
    // Legend: swatches carry a second class ("key") so that they never count as pages.
    struct Key {
        const char* css;
        const char* label;
    };
    static constexpr Key kKeys[] = {{"f", "free"},    {"r", "released"}, {"l", "large"},
                                    {"o0", "0-1%"},   {"o1", "1-10%"},   {"o2", "10-25%"},
                                    {"o3", "25-50%"}, {"o4", "50-75%"},  {"o5", "75-100% full"}};
    std::size_t x = kMargin;
    const std::size_t legend_y = kMargin + 2 * kLine + 2;
    for (const Key& key : kKeys) {
        fmt::format_to(it, "<rect class=\"{} key\" x=\"{}\" y=\"{}\" width=\"10\" height=\"10\"/>", key.css, x,
                       legend_y);
        fmt::format_to(it, "<text x=\"{}\" y=\"{}\">{}</text>\n", x + 13, legend_y + 9, key.label);
        x += 20 + 7 * std::char_traits<char>::length(key.label);
    }
    for (const auto& [arena, pages] : arena_pages) {
        fmt::format_to(it, "<text x=\"{}\" y=\"{}\">arena {:#x}: {} pages drawn</text>\n", kMargin, arena_y[arena] - 4,
                       arena, pages);
    }
    // Runs: one rect per row touched, split at arena boundaries too.
    for (const MapRun& run : snap.runs) {
        const char* css = css_class(run);
        fmt::memory_buffer rects;
        auto r = std::back_inserter(rects);
        int segments = 0;
        std::uintptr_t addr = run.base;
        const std::uintptr_t end = run.base + run.npages * kPageSize;
        while (addr < end) {
            const std::uintptr_t arena = addr & ~(kArenaSize - 1);
            const std::size_t page = (addr - arena) / kPageSize;
            const std::size_t column = page % kMapColumns;
            const std::size_t n = std::min<std::size_t>(kMapColumns - column, (end - addr) / kPageSize);
            fmt::format_to(r, "<rect class=\"{}\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"", css,
                           kMargin + column * kMapCell, arena_y[arena] + page / kMapColumns * kMapCell, n * kMapCell,
                           kMapCell);
            ++segments;
            addr += n * kPageSize;
            if (addr < end) fmt::format_to(r, "/>");
        }
        if (segments == 1) {
            fmt::format_to(it, "{}><title>{}</title></rect>\n", fmt::to_string(rects), title(run));
        } else {
            fmt::format_to(it, "<g><title>{}</title>{}/></g>\n", title(run), fmt::to_string(rects));
        }
    }
    fmt::format_to(it, "</svg>\n");
    return fmt::to_string(out);
}

void write_heap_map(Heap& heap, const char* path) {
    const std::string svg = render_heap_map_svg(heap.heap_map_snapshot());
    const auto fail = [&](int error) {
        throw std::system_error(error, std::generic_category(),
                                fmt::format("gcheap::write_heap_map: cannot write {}", path));
    };
    std::FILE* file = std::fopen(path, "w");
    if (file == nullptr) fail(errno);
    const bool written = std::fwrite(svg.data(), 1, svg.size(), file) == svg.size();
    const int write_error = errno;
    if (std::fclose(file) != 0) fail(errno);
    if (!written) fail(write_error);
}

}  // namespace gcheap::detail
