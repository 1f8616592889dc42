// Heap maps: every committed page of a heap, by state, drawn as an SVG.
//
// A snapshot lists the heap's committed memory as runs of pages, in address
// order: one run per in-use span (small or large) and one per maximal stretch
// of free pages that are all resident or all released. It is taken with the
// allocator gate closed and the page heap locked (Heap::AllocatorLock), with
// the MemStats read under the same lock, so that
//   (H1) Σ pages of small and large runs * kPageSize == stats.HeapInuse
//   (H2) Σ pages of free runs * kPageSize == stats.HeapIdle - stats.HeapReleased
//   (H3) Σ pages of released runs * kPageSize == stats.HeapReleased
//   (H4) runs are disjoint and sorted by address.
// Rendering and writing happen after the lock is dropped.
//
// The SVG draws each arena's pages as 6-pixel cells, 128 to a row, up to its
// last committed page; a run is one <rect> per row it touches, with class
//   f  free (resident)      r  released      l  large object
//   o0 .. o5                small-object span, by occupancy bucket
// and a <title> per run (size class, object size, live/slots). Uncommitted
// pages are left blank. tests/runtime/heap_map_test.cpp parses exactly this.
#pragma once

#include <gcheap/mem_stats.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace gcheap::detail {

class Heap;

inline constexpr std::size_t kMapColumns = 128;  // pages per row
inline constexpr std::size_t kMapCell = 6;       // pixels per page

struct MapRun {
    enum class Kind : std::uint8_t { kSmall, kLarge, kFree, kReleased };
    std::uintptr_t base = 0;
    std::size_t npages = 0;
    Kind kind = Kind::kFree;
    std::uint8_t size_class = 0;  // spans only
    bool noscan = false;          // spans only
    std::uint32_t live = 0;       // small spans: allocated slots
    std::uint32_t slots = 0;      // small spans
    std::size_t requested = 0;    // large objects: bytes asked for
};

struct HeapMapSnapshot {
    MemStats stats;                      // read under the same lock as the runs
    std::vector<std::uintptr_t> arenas;  // base of every arena, in address order
    std::vector<MapRun> runs;            // (H4)
};

/// The SVG text for a snapshot (see the format above).
std::string render_heap_map_svg(const HeapMapSnapshot& snapshot);

/// Snapshot, render, write `path`; throws std::system_error naming `path`.
void write_heap_map(Heap& heap, const char* path);

}  // namespace gcheap::detail
