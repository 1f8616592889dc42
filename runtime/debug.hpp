// DebugModes: one heap's GCHEAP_DEBUG switches (options.hpp: checkmark,
// clobberfree, verify, torture=N), and the one way a self-check reports a
// failure.
//
// The switches are atomics so that set_debug_modes() may flip them while other
// threads allocate and collect; each check reads its switch once per use and
// tolerates seeing the change one cycle late. A failed check is fatal: it has
// found a collector bug or heap corruption, and continuing would only spread
// it. debug_fatal() writes with write(2) and never allocates, because the
// world may be stopped with another thread inside malloc.
#pragma once

#include <gcheap/options.hpp>

#include <atomic>
#include <cstdint>

namespace gcheap::detail {

class DebugModes {
public:
    explicit DebugModes(const DebugOptions& options) { set(options); }

    void set(const DebugOptions& options) {
        checkmark_.store(options.checkmark, std::memory_order_relaxed);
        clobberfree_.store(options.clobberfree, std::memory_order_relaxed);
        verify_.store(options.verify, std::memory_order_relaxed);
        torture_.store(options.torture, std::memory_order_relaxed);
    }
    DebugOptions get() const {
        DebugOptions options;
        options.checkmark = checkmark();
        options.clobberfree = clobberfree();
        options.verify = verify();
        options.torture = torture();
        return options;
    }

    bool checkmark() const { return checkmark_.load(std::memory_order_relaxed); }
    bool clobberfree() const { return clobberfree_.load(std::memory_order_relaxed); }
    bool verify() const { return verify_.load(std::memory_order_relaxed); }
    std::uint64_t torture() const { return torture_.load(std::memory_order_relaxed); }

private:
    std::atomic<bool> checkmark_{false};
    std::atomic<bool> clobberfree_{false};
    std::atomic<bool> verify_{false};
    std::atomic<std::uint64_t> torture_{0};
};

/// The pattern clobberfree writes over every freed object, word by word
/// (Go's clobberfree uses 0xdeadbeef too).
inline constexpr std::uint64_t kClobberPattern = 0xdeadbeefdeadbeefULL;

/// Writes `report` (lines prefixed "gcheap: ") to stderr and aborts. Safe with
/// the world stopped: no allocation, no lock.
[[noreturn]] void debug_fatal(const char* report);

}  // namespace gcheap::detail
