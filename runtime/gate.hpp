// AllocatorGate: the reader-writer lock that separates the allocation slow
// paths from whole-heap readers.
//
// Every slow path (span refill, large allocation, cache creation, thread exit)
// passes the gate shared; read_mem_stats(), count_slow() and verify() close
// it exclusively. While it is closed, the only heap activity left is fast-path
// allocation on spans already held by thread caches, which changes nothing
// but those spans' free slots and counters. This gives readers an exact,
// consistent snapshot without taking each of the ~140 allocator locks in turn
// (which ThreadSanitizer, among others, cannot track) and without stopping
// the world.
//
// Writers are preferred, so that a reader is not starved by a stream of
// refills. Consequently a thread must never pass the gate shared twice:
// slow paths that call each other take it only in the innermost one.
#pragma once

#include "runtime/sync.hpp"

#include <pthread.h>

#include <cstdlib>

namespace gcheap::detail {

class AllocatorGate {
public:
    AllocatorGate() {
        pthread_rwlockattr_t attr;
        pthread_rwlockattr_init(&attr);
        pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
        if (pthread_rwlock_init(&lock_, &attr) != 0) std::abort();
        pthread_rwlockattr_destroy(&attr);
    }
    ~AllocatorGate() { pthread_rwlock_destroy(&lock_); }
    AllocatorGate(const AllocatorGate&) = delete;
    AllocatorGate& operator=(const AllocatorGate&) = delete;

    void lock_shared() {
        if (polling_locks()) {
            while (pthread_rwlock_tryrdlock(&lock_) != 0) {  // see sync.hpp
                poll_world_stop();
                sched_yield();
            }
        } else {
            pthread_rwlock_rdlock(&lock_);
        }
    }
    void unlock_shared() { pthread_rwlock_unlock(&lock_); }
    void lock() {
        if (polling_locks()) {
            while (pthread_rwlock_trywrlock(&lock_) != 0) {
                poll_world_stop();
                sched_yield();
            }
        } else {
            pthread_rwlock_wrlock(&lock_);
        }
    }
    void unlock() { pthread_rwlock_unlock(&lock_); }

private:
    pthread_rwlock_t lock_;
};

}  // namespace gcheap::detail
