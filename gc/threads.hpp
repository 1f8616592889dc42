// Thread registry and stop-the-world by signals (Boehm GC's pthread_stop_world,
// Go's stopTheWorld in spirit).
//
// Every thread whose stack may hold pointers into a heap is registered with
// that heap's ThreadRegistry: automatically on its first allocation, or
// explicitly (gcheap::ThreadScope, register_current_thread()). To stop the
// world, the collector sends each other registered thread the suspend signal.
// The handler runs on that thread wherever it is — computing, blocked in a
// system call, waiting for a lock — records its stack pointer (the signal
// frame below it holds every register, callee-saved ones included), posts an
// acknowledgement and waits in sigsuspend() until the collector bumps the
// resume epoch and sends the resume signal. Nothing a thread does can delay a
// collection beyond the delivery of one signal, with one exception below.
//
// Allocation regions: a thread interrupted inside the lock-free allocation
// fast path could be half way through updating its cached span, which the
// collector is about to flush. The fast path therefore marks itself with
// ThreadCacheSlot::in_alloc_region (a TLS store, no atomic); the handler, seeing
// it, only sets suspend_pending and returns, and the fast path suspends the
// thread itself on the way out (a few instructions later). Go achieves the
// same by disabling preemption in mallocgc.
//
// Invariants:
//   (R1) while the world is stopped, every registered thread other than the
//        collector is parked in suspend_current_thread(), outside any
//        allocation region and outside every allocator lock (the collector
//        closed the allocator gate before stopping the world);
//   (R2) a ThreadRecord is in the registry from registration until
//        unregistration or thread exit, never while its thread is gone.
// Locking: mu_ guards the registry; the collector holds it from before the
// stop until after the restart, so registration waits for a cycle to end.
//
// Under ThreadSanitizer, signals are delivered at the target's next
// intercepted call; a thread spinning without any library call then delays
// the stop until it makes one (a documented limitation of TSan builds only).
#pragma once

#include <pthread.h>
#include <semaphore.h>
#include <signal.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>

namespace gcheap::detail {

/// Per-thread suspension state written by the suspended thread itself.
struct ThreadStopState {
    std::uintptr_t stop_sp;  // stack pointer when parked (covers the saved registers)
    void* fake_stack;        // AddressSanitizer's fake stack, when there is one
    // Stops are numbered. The collector sets `requested` before it signals the
    // thread; the thread parks once per number, so a signal that arrives late
    // (or a cooperative check that beat it) never parks it twice.
    std::atomic<std::uint64_t> requested;
    std::uint64_t parked;
};

struct ThreadRecord {
    pthread_t thread{};
    ThreadStopState* stop_state = nullptr;  // the thread's thread_local state
    std::uintptr_t stack_lo = 0;  // lowest address of the stack mapping
    std::uintptr_t stack_hi = 0;  // one past the highest (stacks grow down)
    bool explicit_registration = false;
    ThreadRecord* next = nullptr;
    ThreadRecord* prev = nullptr;
};

class ThreadRegistry {
public:
    ThreadRegistry();
    ~ThreadRegistry();
    ThreadRegistry(const ThreadRegistry&) = delete;
    ThreadRegistry& operator=(const ThreadRegistry&) = delete;

    /// Registers the calling thread; returns its record (never null; throws
    /// std::bad_alloc or std::system_error).
    ThreadRecord* add_current_thread(bool explicit_registration);
    /// Removes a record of the calling thread (or of a thread that is exiting).
    void remove(ThreadRecord* record);

    /// Stops every registered thread but the caller. Returns with mu_ held.
    void stop_the_world();
    /// Restarts the threads stopped by stop_the_world() and releases mu_.
    void start_the_world();

    /// While the world is stopped: visit each registered thread's record
    /// (the caller's included; its stop_state is not filled in).
    template <class F>
    void for_each_locked(F&& f) const {
        for (const ThreadRecord* r = head_; r != nullptr; r = r->next) f(*r);
    }
    std::size_t count_locked() const { return count_; }
    std::mutex& mutex() { return mu_; }

    /// The record of the calling thread in this registry, or nullptr.
    ThreadRecord* find_current_locked() const;

private:
    std::mutex mu_;
    ThreadRecord* head_ = nullptr;
    std::size_t count_ = 0;
};

/// Called by the allocation fast path when a suspend request arrived inside
/// an allocation region, and by polling lock waits (runtime/sync.hpp): parks
/// the thread if a world stop has asked it to and it has not parked for it yet.
void suspend_pending_thread();

/// Spills callee-saved registers to the stack and calls f(sp) with the
/// current stack pointer, so that scanning [sp, stack_hi) sees them.
void with_registers_on_stack(void (*f)(std::uintptr_t sp, void* arg), void* arg);

/// AddressSanitizer's fake stack of the calling thread (nullptr without one).
void* current_fake_stack();

/// Stack bounds of the calling thread.
void current_stack_bounds(std::uintptr_t& lo, std::uintptr_t& hi);

}  // namespace gcheap::detail
