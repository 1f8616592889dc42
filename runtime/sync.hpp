// Locks that a mutator may wait on while a collection is stopping the world.
//
// A world stop (gc/threads.hpp) interrupts every registered thread with a
// signal, including threads blocked waiting for a lock: the kernel runs the
// handler in the middle of the wait. ThreadSanitizer breaks this: it defers
// asynchronous signals until the thread's next intercepted call returns, and
// a thread blocked in pthread_mutex_lock stays inside that call until it gets
// the lock — which the collector may hold until the world has stopped. Under
// ThreadSanitizer, therefore, these waits poll with try_lock, each try being
// an intercepted call at which pending signals run, and a safepoint at which a
// thread the collector waits for parks itself. Other builds block as usual.
//
// SpinningMutex guards short sections that allocating threads and the
// background sweeper take at the same moment (a class's unswept spans, the
// page heap).
#pragma once

#include <sched.h>

#include <mutex>

#include "runtime/sanitizers.hpp"

namespace gcheap::detail {

#ifdef GCHEAP_TSAN
inline constexpr bool kPollingLocks = true;
#else
inline constexpr bool kPollingLocks = false;
#endif

void suspend_pending_thread();  // gc/threads.cpp

/// Set for a thread that is exiting: glibc may no longer deliver signals to
/// it (pthread_kill skips an exiting thread), so its waits poll and it parks
/// for a world stop cooperatively, as under ThreadSanitizer.
inline thread_local bool tls_thread_exiting = false;

inline bool polling_locks() { return kPollingLocks || tls_thread_exiting; }

/// Tells the CPU that this thread is spinning (PAUSE on x86).
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
}

/// A mutex whose waiter spins briefly before it sleeps. The sections it
/// guards take a few hundred nanoseconds, while a futex sleep and the wake-up
/// it forces on the unlocking thread cost microseconds each: with a plain
/// mutex, every collision between an allocating thread and the background
/// sweeper cost both of them a system call. A waiter that gets the lock while
/// spinning never sleeps, so the unlock makes no system call either. (Go's
/// runtime locks spin before they sleep for the same reason.) Lockable, for
/// std::lock_guard and MutatorLock.
class SpinningMutex {
public:
    void lock() {
        for (int i = 0; i < kSpins; ++i) {
            if (mu_.try_lock()) return;
            cpu_relax();
        }
        mu_.lock();
    }
    bool try_lock() { return mu_.try_lock(); }
    void unlock() { mu_.unlock(); }

private:
    static constexpr int kSpins = 64;  // at most a few microseconds of PAUSE
    std::mutex mu_;
};

/// Under ThreadSanitizer, a polling wait is also a safepoint: a thread that a
/// world stop is waiting for parks here, since TSan may hold back its signal.
inline void poll_world_stop() {
    if (polling_locks()) suspend_pending_thread();
}

template <class Lockable>
void lock_for_mutator(Lockable& lockable) {
    if (polling_locks()) {
        while (!lockable.try_lock()) {
            poll_world_stop();
            sched_yield();
        }
    } else {
        lockable.lock();
    }
}

/// lock_guard that waits with lock_for_mutator().
template <class Lockable = std::mutex>
class MutatorLock {
public:
    explicit MutatorLock(Lockable& lockable) : lockable_(lockable) { lock_for_mutator(lockable_); }
    ~MutatorLock() { lockable_.unlock(); }
    MutatorLock(const MutatorLock&) = delete;
    MutatorLock& operator=(const MutatorLock&) = delete;

private:
    Lockable& lockable_;
};

}  // namespace gcheap::detail
