// Size classes: Go's table, available at compile time.
//
// Owns the mapping from a request size to a size class and the per-class
// geometry (object size, pages per span, objects per span, division magic).
// Every small object (<= 32 KiB) is rounded up to the smallest class that fits
// it; a span of a class is `pages` runtime pages of 8 KiB holding `objects`
// slots of `size` bytes, plus a tail of `span bytes - objects * size` that no
// object uses.
//
// Invariants (checked by tests/runtime/size_classes_test.cpp against Go's
// published table and by static_asserts below):
//   - kClassSize is strictly increasing; kClassSize[kNumSizeClasses-1] == kMaxSmallSize.
//   - size_to_class(n) is the smallest class c with kClassSize[c] >= n.
//   - tail waste of every class is at most 1/8 of its span.
//   - object_index(offset) == offset / size for every offset inside a span.
//
// The table is Go 1.21's runtime/sizeclasses.go (unchanged since ~Go 1.15):
//
//   class  bytes/obj  pages  objects  tail    class  bytes/obj  pages  objects  tail
//       1          8      1     1024     0       35       1408      2       11   896
//       2         16      1      512     0       36       1536      1        5   512
//       3         24      1      341     8       37       1792      2        9   256
//       4         32      1      256     0       38       2048      1        4     0
//       5         48      1      170    32       39       2304      2        7   256
//       6         64      1      128     0       40       2688      1        3   128
//       7         80      1      102    32       41       3072      3        8     0
//       8         96      1       85    32       42       3200      2        5   384
//       9        112      1       73    16       43       3456      3        7   384
//      10        128      1       64     0       44       4096      1        2     0
//      11        144      1       56   128       45       4864      3        5   256
//      12        160      1       51    32       46       5376      2        3   256
//      13        176      1       46    96       47       6144      3        4     0
//      14        192      1       42   128       48       6528      4        5   128
//      15        208      1       39    80       49       6784      5        6   256
//      16        224      1       36   128       50       6912      6        7   768
//      17        240      1       34    32       51       8192      1        1     0
//      18        256      1       32     0       52       9472      7        6   512
//      19        288      1       28   128       53       9728      6        5   512
//      20        320      1       25   192       54      10240      5        4     0
//      21        352      1       23    96       55      10880      4        3   128
//      22        384      1       21   128       56      12288      3        2     0
//      23        416      1       19   288       57      13568      5        3   256
//      24        448      1       18   128       58      14336      7        4     0
//      25        480      1       17    32       59      16384      2        1     0
//      26        512      1       16     0       60      18432      9        4     0
//      27        576      1       14   128       61      19072      7        3   128
//      28        640      1       12   512       62      20480      5        2     0
//      29        704      1       11   448       63      21760      8        3   256
//      30        768      1       10   512       64      24576      3        1     0
//      31        896      1        9   128       65      27264     10        3   128
//      32       1024      1        8     0       66      28672      7        2     0
//      33       1152      1        7   128       67      32768      4        1     0
//      34       1280      1        6   512
//
// Class 0 stands for large objects (> 32 KiB): one object per span, the span
// rounded up to whole pages.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace gcheap::detail {

inline constexpr std::size_t kPageShift = 13;
inline constexpr std::size_t kPageSize = std::size_t{1} << kPageShift;  // 8 KiB runtime page
inline constexpr std::size_t kMaxSmallSize = 32768;
inline constexpr std::size_t kNumSizeClasses = 68;
inline constexpr std::size_t kNumSpanClasses = kNumSizeClasses * 2;  // scan and noscan
inline constexpr std::size_t kTinySize = 16;
inline constexpr std::size_t kTinySizeClass = 2;
inline constexpr std::size_t kMaxObjectsPerSpan = kPageSize / 8;  // class 1: 1024 objects
inline constexpr std::size_t kBySizeClasses = 61;                // MemStats.BySize rows, as in Go

inline constexpr std::array<std::uint32_t, kNumSizeClasses> kClassSize = {
    0,     8,     16,    24,    32,    48,    64,    80,    96,    112,   128,   144,   160,   176,
    192,   208,   224,   240,   256,   288,   320,   352,   384,   416,   448,   480,   512,   576,
    640,   704,   768,   896,   1024,  1152,  1280,  1408,  1536,  1792,  2048,  2304,  2688,  3072,
    3200,  3456,  4096,  4864,  5376,  6144,  6528,  6784,  6912,  8192,  9472,  9728,  10240, 10880,
    12288, 13568, 14336, 16384, 18432, 19072, 20480, 21760, 24576, 27264, 28672, 32768};

inline constexpr std::array<std::uint8_t, kNumSizeClasses> kClassPages = {
    0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 1, 2, 1, 2, 1, 3, 2, 3, 1, 3, 2, 3,
    4, 5, 6, 1, 7, 6, 5, 4, 3, 5, 7, 2, 9, 7, 5, 8, 3, 10, 7, 4};

constexpr std::uint32_t class_objects(std::size_t cls) {
    return cls == 0 ? 1 : static_cast<std::uint32_t>(kClassPages[cls] * kPageSize / kClassSize[cls]);
}

// object_index(offset) = (offset * magic) >> 32 equals offset / size for all
// offsets within a span (Go's divMagic; exact because spans are < 2^32 / size).
constexpr std::uint32_t class_div_magic(std::size_t cls) {
    return cls == 0 ? 0 : static_cast<std::uint32_t>(~std::uint32_t{0} / kClassSize[cls] + 1);
}

namespace size_class_tables {

// Go's two lookup tables: sizes <= 1024 in steps of 8, larger ones in steps of 128.
inline constexpr std::size_t kSmallSizeMax = 1024;
inline constexpr std::size_t kSmallSizeDiv = 8;
inline constexpr std::size_t kLargeSizeDiv = 128;

constexpr std::uint8_t smallest_class_for(std::size_t size) {
    for (std::size_t c = 1; c < kNumSizeClasses; ++c) {
        if (kClassSize[c] >= size) return static_cast<std::uint8_t>(c);
    }
    return 0;
}

constexpr auto make_small_table() {
    std::array<std::uint8_t, kSmallSizeMax / kSmallSizeDiv + 1> t{};
    for (std::size_t i = 0; i < t.size(); ++i) t[i] = smallest_class_for(i * kSmallSizeDiv);
    return t;
}

constexpr auto make_large_table() {
    std::array<std::uint8_t, (kMaxSmallSize - kSmallSizeMax) / kLargeSizeDiv + 1> t{};
    for (std::size_t i = 0; i < t.size(); ++i) t[i] = smallest_class_for(kSmallSizeMax + i * kLargeSizeDiv);
    return t;
}

inline constexpr auto kSmall = make_small_table();
inline constexpr auto kLarge = make_large_table();

}  // namespace size_class_tables

/// Size class for 0 < size <= kMaxSmallSize.
constexpr std::uint8_t size_to_class(std::size_t size) {
    using namespace size_class_tables;
    if (size <= kSmallSizeMax) return kSmall[(size + kSmallSizeDiv - 1) / kSmallSizeDiv];
    return kLarge[(size - kSmallSizeMax + kLargeSizeDiv - 1) / kLargeSizeDiv];
}

/// A span class pairs a size class with its scan/noscan flag, as in Go.
constexpr std::size_t span_class(std::size_t size_class, bool noscan) {
    return size_class << 1 | static_cast<std::size_t>(noscan);
}
constexpr std::size_t span_class_size_class(std::size_t spc) { return spc >> 1; }
constexpr bool span_class_noscan(std::size_t spc) { return (spc & 1) != 0; }

namespace size_class_checks {
constexpr bool table_is_sane() {
    for (std::size_t c = 1; c < kNumSizeClasses; ++c) {
        if (kClassSize[c] <= kClassSize[c - 1]) return false;
        const std::size_t span_bytes = kClassPages[c] * kPageSize;
        const std::size_t tail = span_bytes - class_objects(c) * kClassSize[c];
        if (tail * 8 > span_bytes) return false;
        if (class_objects(c) > kMaxObjectsPerSpan) return false;
    }
    return kClassSize[kNumSizeClasses - 1] == kMaxSmallSize;
}
static_assert(table_is_sane());
static_assert(size_to_class(1) == 1 && size_to_class(8) == 1 && size_to_class(9) == 2);
static_assert(size_to_class(1024) == 32 && size_to_class(1025) == 33 && size_to_class(32768) == 67);
}  // namespace size_class_checks

}  // namespace gcheap::detail
