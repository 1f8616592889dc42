// Background scavenging; see scavenger.hpp.
#include "runtime/scavenger.hpp"

#include "gc/collector.hpp"
#include "runtime/clock.hpp"
#include "runtime/heap.hpp"

#include <pthread.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <limits>

namespace gcheap::detail {

namespace {

constexpr std::size_t kChunkBytes = 64 * 1024;           // Go's scavenge quantum
constexpr std::uint64_t kMaxWorkNs = 1000000;            // work for at most 1 ms per batch
constexpr std::uint64_t kSleepPerWork = 99;              // 1% of one CPU
constexpr std::uint64_t kNoGoal = std::numeric_limits<std::uint64_t>::max();

}  // namespace

Scavenger::Scavenger(Heap& heap, bool background) : heap_(heap), enabled_(background), gc_goal_(kNoGoal) {}

void Scavenger::wake() {
    {
        std::lock_guard<std::mutex> lock(mu_);
        work_ = true;
        // Started on first need, not with the heap; a failed start is retried
        // at the next wake-up and reported once.
        if (!thread_.joinable() && enabled_.load(std::memory_order_relaxed)) {
            heap_.os_memory().start_optional_thread(thread_, [this] { run(); }, "scavenger",
                                                    "free pages return to the OS only through free_os_memory() "
                                                    "and the memory limit until it starts",
                                                    start_failure_reported_);
        }
    }
    cv_.notify_all();
}

Scavenger::~Scavenger() {
    {
        std::lock_guard<std::mutex> lock(mu_);
        stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
}

void Scavenger::on_cycle_end(std::uint64_t heap_inuse) {
    gc_goal_.store(heap_inuse + heap_inuse / 10, std::memory_order_relaxed);
    wake();
}

bool Scavenger::set_enabled(bool enabled) {
    const bool previous = enabled_.exchange(enabled, std::memory_order_relaxed);
    if (enabled) wake();
    return previous;
}

std::uint64_t Scavenger::goal() const {
    std::uint64_t goal = gc_goal_.load(std::memory_order_relaxed);
    const std::int64_t limit = heap_.collector().pacer().memory_limit();
    if (limit != Pacer::kNoLimit) {
        const auto limit_goal = static_cast<std::uint64_t>(limit) / 100 * 95;
        const std::uint64_t non_heap = heap_.non_heap_sys_bytes();
        goal = std::min(goal, limit_goal > non_heap ? limit_goal - non_heap : 0);
    }
    return goal;
}

std::uint64_t Scavenger::thread_cpu_ns() const {
    clockid_t clock;
    std::lock_guard<std::mutex> lock(mu_);
    if (!thread_.joinable()) return 0;
    if (pthread_getcpuclockid(const_cast<std::thread&>(thread_).native_handle(), &clock) != 0) return 0;
    timespec ts;
    if (clock_gettime(clock, &ts) != 0) return 0;
    return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

std::uint64_t Scavenger::retained_bytes() {
    SharedGate gate(heap_.gate_);
    std::lock_guard<SpinningMutex> lock(heap_.pages_.mutex());
    return heap_.pages_.heap_inuse_locked() + heap_.pages_.heap_free_locked();
}

std::size_t Scavenger::release_some(std::size_t bytes) {
    SharedGate gate(heap_.gate_);
    std::lock_guard<SpinningMutex> lock(heap_.pages_.mutex());
    return heap_.pages_.release_locked(bytes);
}

void Scavenger::run() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
        cv_.wait(lock, [&] { return stopping_ || (work_ && enabled_.load(std::memory_order_relaxed)); });
        if (stopping_) return;
        work_ = false;
        lock.unlock();
        for (;;) {
            const std::uint64_t goal = this->goal();
            const std::uint64_t retained = retained_bytes();
            if (goal == kNoGoal || retained <= goal + kPageSize) break;
            const std::uint64_t start = monotonic_ns();
            std::uint64_t excess = retained - goal;
            std::size_t released = 0;
            do {
                const std::size_t got = release_some(std::min<std::uint64_t>(kChunkBytes, excess));
                if (got == 0) break;  // nothing resident is free, or madvise failed
                released += got;
                excess -= std::min<std::uint64_t>(got, excess);
            } while (excess > 0 && monotonic_ns() - start < kMaxWorkNs);
            released_.fetch_add(released, std::memory_order_relaxed);
            if (released == 0) break;
            const std::uint64_t worked = std::max<std::uint64_t>(monotonic_ns() - start, 1000);
            std::unique_lock<std::mutex> sleep_lock(mu_);
            if (cv_.wait_for(sleep_lock, std::chrono::nanoseconds(worked * kSleepPerWork),
                             [&] { return stopping_ || !enabled_.load(std::memory_order_relaxed); })) {
                break;
            }
        }
        lock.lock();
    }
}

}  // namespace gcheap::detail
