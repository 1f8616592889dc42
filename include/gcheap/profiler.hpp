// gcheap — the sampling heap profiler (Go's runtime.MemProfileRate,
// runtime.MemProfile and pprof.WriteHeapProfile). docs/fragmentation.md
// explains how to enable it, write a profile and read it with pprof.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace gcheap {

/// Go's runtime.MemProfileRate: on average one allocation per `bytes`
/// allocated bytes is sampled with its call stack; 1 samples every
/// allocation, 0 turns sampling off (the default; GCHEAP_MEMPROFILERATE sets
/// it at start-up). Returns the previous rate. Samples already taken stay,
/// and their frees are still tracked. The new rate applies to the calling
/// thread's next allocation; other threads take it within at most 64 more
/// objects of each size class (docs/fragmentation.md). Throws
/// std::invalid_argument if negative.
int set_mem_profile_rate(int bytes);

/// One allocation site of the profile (Go's runtime.MemProfileRecord): the
/// sampled, unscaled counts of one call stack and object size.
struct MemProfileRecord {
    std::uint64_t alloc_objects = 0;
    std::uint64_t alloc_bytes = 0;
    std::uint64_t free_objects = 0;
    std::uint64_t free_bytes = 0;
    std::size_t object_size = 0;       // the size-class (or page-rounded) size, as Go records it
    std::vector<std::uintptr_t> stack;  // return addresses, innermost (the caller of gcheap) first

    std::uint64_t inuse_objects() const { return alloc_objects - free_objects; }
    std::uint64_t inuse_bytes() const { return alloc_bytes - free_bytes; }
};

/// Every record of the default heap's profile, most in-use bytes first.
/// Frees count from the sweep that frees the object (call collect() first
/// for figures about survivors only).
std::vector<MemProfileRecord> mem_profile();

/// The estimated number of objects `sampled` sampled objects of `size` bytes
/// stand for at `rate`: sampled / (1 − exp(−size/rate)), pprof's scaling.
double scale_heap_sample(double sampled, std::size_t size, int rate);

/// Writes the profile in Go's legacy text heap profile format (what
/// pprof.Lookup("heap").WriteTo(w, 1) writes, without symbols), followed by
/// the process's memory map, so that `go tool pprof BINARY PATH` (or
/// `pprof`) can read and symbolize it. Throws std::system_error naming the
/// path on failure.
void write_heap_profile(const char* path);

/// Sampled live objects of one allocation site that sit on sparse spans.
struct SparseSite {
    std::vector<std::uintptr_t> stack;  // as in MemProfileRecord
    std::uint64_t sampled_objects = 0;  // sampled live objects of the site on sparse spans
    std::uint64_t sampled_bytes = 0;
    double estimated_objects = 0;       // scaled as pprof scales: what they stand for
    double estimated_bytes = 0;
    std::uint64_t spans = 0;            // distinct sparse spans those samples sit on
};

/// Which allocation sites hold objects on spans whose occupancy (allocated
/// slots / slots, as of the last sweep) is below `threshold` (0 … 1): the
/// sites that pin the pages of a fragmented heap. Large objects never count.
struct SparseSiteReport {
    double threshold = 0;
    int rate = 0;                       // the profile rate the estimates use
    std::vector<SparseSite> sites;      // most estimated bytes first
    std::uint64_t estimated_bytes = 0;  // over all sites
};

/// The report for the default heap; call collect() first so that dead
/// objects are swept. Throws std::invalid_argument unless 0 <= threshold <= 1.
SparseSiteReport sparse_span_sites(double threshold);

/// A table for people: one block per site, its figures, then its stack with
/// symbol names where the dynamic symbol table has them.
std::string to_text(const SparseSiteReport& report);

}  // namespace gcheap
