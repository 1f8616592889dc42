// Which sanitizer this translation unit is built with, detected once for g++
// (__SANITIZE_*__) and clang (__has_feature), and the attribute that exempts
// conservative scanning from instrumentation.
#pragma once

#if defined(__SANITIZE_ADDRESS__)
#define GCHEAP_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__)
#define GCHEAP_TSAN 1
#endif
#if defined(__has_feature)
#if __has_feature(address_sanitizer) && !defined(GCHEAP_ASAN)
#define GCHEAP_ASAN 1
#endif
#if __has_feature(thread_sanitizer) && !defined(GCHEAP_TSAN)
#define GCHEAP_TSAN 1
#endif
#endif

#ifdef GCHEAP_ASAN
#include <sanitizer/asan_interface.h>
#endif

// Conservative scans read whole stacks (with ASan redzones) and words that
// other threads wrote while stopped: they opt out of instrumentation.
#if defined(__clang__)
#define GCHEAP_NO_SANITIZE_SCAN __attribute__((no_sanitize("address", "thread", "hwaddress")))
#else
#define GCHEAP_NO_SANITIZE_SCAN __attribute__((no_sanitize_address, no_sanitize_thread))
#endif

// The marker's word scan, inlined into its drain loop in ordinary builds (a
// call per small object is a measurable part of marking). Never under ASan or
// TSan: inlined, the scan would be instrumented as its caller is.
#if defined(GCHEAP_ASAN) || defined(GCHEAP_TSAN)
#define GCHEAP_SCAN_INLINE
#else
#define GCHEAP_SCAN_INLINE [[gnu::always_inline]] inline
#endif

#include <cstdint>

namespace gcheap::detail {

/// Calls f(begin, end) for every AddressSanitizer fake frame that a word of
/// the stack [sp, hi) points into: with detect_stack_use_after_return, locals
/// live there instead of on the real stack (cppgc scans them the same way).
/// Does nothing without ASan or without a fake stack.
template <class F>
GCHEAP_NO_SANITIZE_SCAN void for_each_fake_frame(std::uintptr_t sp, std::uintptr_t hi, void* fake_stack, F&& f) {
#ifdef GCHEAP_ASAN
    if (fake_stack == nullptr) return;
    for (std::uintptr_t p = sp & ~(sizeof(std::uintptr_t) - 1); p + sizeof(std::uintptr_t) <= hi;
         p += sizeof(std::uintptr_t)) {
        void* frame_begin = nullptr;
        void* frame_end = nullptr;
        void* word = *reinterpret_cast<void* const volatile*>(p);
        if (__asan_addr_is_in_fake_stack(fake_stack, word, &frame_begin, &frame_end) != nullptr) {
            f(reinterpret_cast<std::uintptr_t>(frame_begin), reinterpret_cast<std::uintptr_t>(frame_end));
        }
    }
#else
    (void)sp;
    (void)hi;
    (void)fake_stack;
    (void)f;
#endif
}

#if defined(GCHEAP_ASAN) || defined(GCHEAP_TSAN)
inline constexpr bool kSanitizedAddressSpace = true;
#else
inline constexpr bool kSanitizedAddressSpace = false;
#endif
}  // namespace gcheap::detail
