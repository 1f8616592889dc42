// Size classes against Go's published table (go1.21 runtime/sizeclasses.go).
//
// The rows below are Go's figures, copied into the test as data: class,
// bytes/obj, bytes/span, pages, objects, tail waste, max waste %, alignment.
#include "runtime/size_classes.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>

using namespace gcheap::detail;

namespace {

struct GoClass {
    int cls;
    std::uint32_t bytes_per_object;
    std::uint32_t bytes_per_span;
    std::uint32_t pages;
    std::uint32_t objects;
    std::uint32_t tail_waste;
    double max_waste_percent;
    std::uint32_t alignment;
};

constexpr GoClass kGoTable[] = {
    {1, 8, 8192, 1, 1024, 0, 87.50, 8},
    {2, 16, 8192, 1, 512, 0, 43.75, 16},
    {3, 24, 8192, 1, 341, 8, 29.24, 8},
    {4, 32, 8192, 1, 256, 0, 21.88, 32},
    {5, 48, 8192, 1, 170, 32, 31.52, 16},
    {6, 64, 8192, 1, 128, 0, 23.44, 64},
    {7, 80, 8192, 1, 102, 32, 19.07, 16},
    {8, 96, 8192, 1, 85, 32, 15.95, 32},
    {9, 112, 8192, 1, 73, 16, 13.56, 16},
    {10, 128, 8192, 1, 64, 0, 11.72, 128},
    {11, 144, 8192, 1, 56, 128, 11.82, 16},
    {12, 160, 8192, 1, 51, 32, 9.73, 32},
    {13, 176, 8192, 1, 46, 96, 9.59, 16},
    {14, 192, 8192, 1, 42, 128, 9.25, 64},
    {15, 208, 8192, 1, 39, 80, 8.12, 16},
    {16, 224, 8192, 1, 36, 128, 8.15, 32},
    {17, 240, 8192, 1, 34, 32, 6.62, 16},
    {18, 256, 8192, 1, 32, 0, 5.86, 256},
    {19, 288, 8192, 1, 28, 128, 12.16, 32},
    {20, 320, 8192, 1, 25, 192, 11.80, 64},
    {21, 352, 8192, 1, 23, 96, 9.88, 32},
    {22, 384, 8192, 1, 21, 128, 9.51, 128},
    {23, 416, 8192, 1, 19, 288, 10.71, 32},
    {24, 448, 8192, 1, 18, 128, 8.37, 64},
    {25, 480, 8192, 1, 17, 32, 6.82, 32},
    {26, 512, 8192, 1, 16, 0, 6.05, 512},
    {27, 576, 8192, 1, 14, 128, 12.33, 64},
    {28, 640, 8192, 1, 12, 512, 15.48, 128},
    {29, 704, 8192, 1, 11, 448, 13.93, 64},
    {30, 768, 8192, 1, 10, 512, 13.94, 256},
    {31, 896, 8192, 1, 9, 128, 15.52, 128},
    {32, 1024, 8192, 1, 8, 0, 12.40, 1024},
    {33, 1152, 8192, 1, 7, 128, 12.41, 128},
    {34, 1280, 8192, 1, 6, 512, 15.55, 256},
    {35, 1408, 16384, 2, 11, 896, 14.00, 128},
    {36, 1536, 8192, 1, 5, 512, 14.00, 512},
    {37, 1792, 16384, 2, 9, 256, 15.57, 256},
    {38, 2048, 8192, 1, 4, 0, 12.45, 2048},
    {39, 2304, 16384, 2, 7, 256, 12.46, 256},
    {40, 2688, 8192, 1, 3, 128, 15.59, 128},
    {41, 3072, 24576, 3, 8, 0, 12.47, 1024},
    {42, 3200, 16384, 2, 5, 384, 6.22, 128},
    {43, 3456, 24576, 3, 7, 384, 8.83, 128},
    {44, 4096, 8192, 1, 2, 0, 15.60, 4096},
    {45, 4864, 24576, 3, 5, 256, 16.65, 256},
    {46, 5376, 16384, 2, 3, 256, 10.92, 256},
    {47, 6144, 24576, 3, 4, 0, 12.48, 2048},
    {48, 6528, 32768, 4, 5, 128, 6.23, 128},
    {49, 6784, 40960, 5, 6, 256, 4.36, 128},
    {50, 6912, 49152, 6, 7, 768, 3.37, 256},
    {51, 8192, 8192, 1, 1, 0, 15.61, 8192},
    {52, 9472, 57344, 7, 6, 512, 14.28, 256},
    {53, 9728, 49152, 6, 5, 512, 3.64, 512},
    {54, 10240, 40960, 5, 4, 0, 4.99, 2048},
    {55, 10880, 32768, 4, 3, 128, 6.24, 128},
    {56, 12288, 24576, 3, 2, 0, 11.45, 4096},
    {57, 13568, 40960, 5, 3, 256, 9.99, 256},
    {58, 14336, 57344, 7, 4, 0, 5.35, 2048},
    {59, 16384, 16384, 2, 1, 0, 12.49, 8192},
    {60, 18432, 73728, 9, 4, 0, 11.11, 2048},
    {61, 19072, 57344, 7, 3, 128, 3.57, 128},
    {62, 20480, 40960, 5, 2, 0, 6.87, 4096},
    {63, 21760, 65536, 8, 3, 256, 6.25, 256},
    {64, 24576, 24576, 3, 1, 0, 11.45, 8192},
    {65, 27264, 81920, 10, 3, 128, 10.00, 128},
    {66, 28672, 57344, 7, 2, 0, 4.91, 4096},
    {67, 32768, 32768, 4, 1, 0, 12.50, 8192},
};

std::uint32_t largest_power_of_two_dividing(std::uint32_t n) {
    std::uint32_t a = n & (~n + 1);
    return a > 8192 ? 8192 : a;
}

}  // namespace

TEST_CASE("size classes: there are 68 classes, class 0 for large objects", "[size_classes]") {
    STATIC_REQUIRE(kNumSizeClasses == 68);
    STATIC_REQUIRE(kNumSpanClasses == 136);
    STATIC_REQUIRE(kPageSize == 8192);
    STATIC_REQUIRE(kMaxSmallSize == 32768);
    REQUIRE(std::size(kGoTable) == kNumSizeClasses - 1);
    REQUIRE(kClassSize[0] == 0);
}

TEST_CASE("size classes: every class matches Go's table", "[size_classes]") {
    for (const GoClass& go : kGoTable) {
        CAPTURE(go.cls);
        const auto c = static_cast<std::size_t>(go.cls);
        CHECK(kClassSize[c] == go.bytes_per_object);
        CHECK(kClassPages[c] == go.pages);
        CHECK(kClassPages[c] * kPageSize == go.bytes_per_span);
        CHECK(class_objects(c) == go.objects);
        const std::size_t span_bytes = kClassPages[c] * kPageSize;
        const std::size_t tail = span_bytes - class_objects(c) * kClassSize[c];
        CHECK(tail == go.tail_waste);
        // Go's maxwaste: every object one byte larger than the previous class.
        const double waste = double((kClassSize[c] - kClassSize[c - 1] - 1) * class_objects(c) + tail) / double(span_bytes);
        CHECK(std::abs(waste * 100.0 - go.max_waste_percent) < 0.006);
        CHECK(largest_power_of_two_dividing(kClassSize[c]) == go.alignment);
    }
}

TEST_CASE("size classes: waste bounds hold", "[size_classes]") {
    for (std::size_t c = 1; c < kNumSizeClasses; ++c) {
        CAPTURE(c);
        const std::size_t span_bytes = kClassPages[c] * kPageSize;
        const std::size_t tail = span_bytes - class_objects(c) * kClassSize[c];
        CHECK(tail * 8 <= span_bytes);  // mksizeclasses: tail at most 1/8 of the span
        const double waste = double((kClassSize[c] - kClassSize[c - 1] - 1) * class_objects(c) + tail) / double(span_bytes);
        CHECK(waste < 0.875 + 1e-9);  // class 1 is the worst case, 87.5%
        if (c > 2) CHECK(waste < 0.32);  // only the 8- and 16-byte classes waste more
    }
}

TEST_CASE("size classes: size_to_class picks the smallest class that fits", "[size_classes]") {
    std::size_t expected = 1;
    for (std::size_t size = 1; size <= kMaxSmallSize; ++size) {
        while (kClassSize[expected] < size) ++expected;
        if (size_to_class(size) != expected) {
            FAIL("size " << size << " maps to class " << int(size_to_class(size)) << ", expected " << expected);
        }
    }
    SUCCEED();
}

TEST_CASE("size classes: division magic gives exact object indexes", "[size_classes]") {
    for (std::size_t c = 1; c < kNumSizeClasses; ++c) {
        const std::uint64_t magic = class_div_magic(c);
        const std::size_t span_bytes = kClassPages[c] * kPageSize;
        for (std::size_t offset = 0; offset < span_bytes; ++offset) {
            const std::uint64_t index = (offset * magic) >> 32;
            if (index != offset / kClassSize[c]) FAIL("class " << c << " offset " << offset);
        }
    }
    SUCCEED();
}

TEST_CASE("size classes: span classes pair a size class with noscan", "[size_classes]") {
    for (std::size_t c = 0; c < kNumSizeClasses; ++c) {
        for (bool noscan : {false, true}) {
            const std::size_t spc = span_class(c, noscan);
            CHECK(spc < kNumSpanClasses);
            CHECK(span_class_size_class(spc) == c);
            CHECK(span_class_noscan(spc) == noscan);
        }
    }
}
