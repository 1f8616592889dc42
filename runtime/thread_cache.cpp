// Thread exit handling for thread caches.
//
// A pthread key destructor, rather than a C++ thread_local destructor, returns
// a thread's caches: glibc runs key destructors after thread_local
// destructors and runs them again if a destructor allocated anew, so objects
// allocated by other thread_local destructors are still returned.
#include "runtime/thread_cache.hpp"

#include "gc/threads.hpp"
#include "runtime/heap.hpp"
#include "runtime/sync.hpp"

#include <pthread.h>

#include <cstdlib>
#include <new>

namespace gcheap::detail {

namespace {

void on_thread_exit(void* head) {
    // Cancelled threads get here with every signal blocked, and glibc sends
    // no signal to an exiting thread: the locks below, which a world stop
    // may hold, are waited for by polling, parking cooperatively.
    tls_thread_exiting = true;
    StopSignalsAllowed stoppable;
    MutatorLock<> lock(lifecycle_mutex());
    for (auto* binding = static_cast<CacheBinding*>(head); binding != nullptr;) {
        CacheBinding* next = binding->next;
        if (binding->heap != nullptr) binding->heap->release_thread_locked(binding);
        delete binding;
        binding = next;
    }
    tls_cache_slot.heap_id = 0;
    tls_cache_slot.cache = nullptr;
}

pthread_key_t thread_exit_key() {
    static const pthread_key_t key = [] {
        pthread_key_t k;
        if (pthread_key_create(&k, on_thread_exit) != 0) std::abort();  // only at first use, out of keys
        return k;
    }();
    return key;
}

}  // namespace

std::mutex& lifecycle_mutex() {
    static std::mutex* const mu = new std::mutex;  // never destroyed: threads may exit during static destruction
    return *mu;
}

CacheBinding* bind_current_thread_locked(Heap& heap) {
    const pthread_key_t key = thread_exit_key();
    auto* head = static_cast<CacheBinding*>(pthread_getspecific(key));
    auto* binding = new CacheBinding{&heap, nullptr, nullptr, head};
    if (pthread_setspecific(key, binding) != 0) {
        delete binding;
        throw std::bad_alloc();
    }
    return binding;
}

void unbind_current_thread_locked(CacheBinding* binding) {
    const pthread_key_t key = thread_exit_key();
    auto* head = static_cast<CacheBinding*>(pthread_getspecific(key));
    if (head == binding) {
        pthread_setspecific(key, binding->next);
    } else {
        CacheBinding* b = head;
        while (b != nullptr && b->next != binding) b = b->next;
        if (b != nullptr) b->next = binding->next;
    }
    delete binding;
}

CacheBinding* find_current_thread_binding_locked(const Heap& heap) {
    auto* binding = static_cast<CacheBinding*>(pthread_getspecific(thread_exit_key()));
    while (binding != nullptr && binding->heap != &heap) binding = binding->next;
    return binding;
}

}  // namespace gcheap::detail
