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

namespace gcheap::detail {
#if defined(GCHEAP_ASAN) || defined(GCHEAP_TSAN)
inline constexpr bool kSanitizedAddressSpace = true;
#else
inline constexpr bool kSanitizedAddressSpace = false;
#endif
}  // namespace gcheap::detail
