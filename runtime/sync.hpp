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

/// Under ThreadSanitizer, a polling wait is also a safepoint: a thread that a
/// world stop is waiting for parks here, since TSan may hold back its signal.
inline void poll_world_stop() {
    if constexpr (kPollingLocks) suspend_pending_thread();
}

template <class Lockable>
void lock_for_mutator(Lockable& lockable) {
    if constexpr (kPollingLocks) {
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
