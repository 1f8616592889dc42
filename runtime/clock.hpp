// The monotonic clock in nanoseconds, for pacing and pause accounting.
#pragma once

#include <time.h>

#include <cstdint>

namespace gcheap::detail {

inline std::uint64_t monotonic_ns() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

}  // namespace gcheap::detail
