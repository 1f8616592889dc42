// DataSegments and current_thread_tls_ranges (gc/data_segments.hpp): every
// kind of writable static storage of the program — namespace-scope globals in
// .data and .bss, class statics, function-local statics, a dlopen'd object's
// globals, thread_locals — lies inside an enumerated range; read-only data
// (.rodata, RELRO) and unloaded objects do not.
#include "gc/data_segments.hpp"

#include <catch2/catch.hpp>

#include <dlfcn.h>
#include <link.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

using gcheap::detail::AddressRange;
using gcheap::detail::DataSegments;
using gcheap::detail::current_thread_tls_ranges;

// External linkage, and written by the tests: the compiler can neither drop
// them nor promote a never-written one to read-only data.
void* g_data_global = reinterpret_cast<void*>(std::uintptr_t{0x5eed});  // .data
void* g_bss_global;                                                    // .bss
struct ClassWithStatic {
    static void* slot;
};
void* ClassWithStatic::slot;
extern const long g_rodata_global[4];
const long g_rodata_global[4] = {1, 2, 3, 4};  // .rodata
extern int* const g_relro_global;
int* const g_relro_global = reinterpret_cast<int*>(&g_bss_global);  // .data.rel.ro when the binary is a PIE, else .rodata
thread_local void* t_bss_slot;                                       // .tbss
thread_local void* t_data_slot = reinterpret_cast<void*>(std::uintptr_t{0x5eed});  // .tdata

namespace {

[[gnu::noinline]] void* opaque(void* p) {
    asm volatile("" : "+r"(p));
    return p;
}

// Dynamically initialised: it lives in .bss, with a guard variable.
void** function_local_static() {
    static void* slot = opaque(&g_bss_global);
    return &slot;
}

std::uintptr_t address(const void* p) { return reinterpret_cast<std::uintptr_t>(p); }

std::vector<AddressRange> ranges_of(const DataSegments& segments) {
    std::vector<AddressRange> ranges;
    segments.for_each([&](std::uintptr_t begin, std::uintptr_t end) { ranges.push_back({begin, end}); });
    return ranges;
}

// Whether the whole word at p lies inside one range.
bool covers(const std::vector<AddressRange>& ranges, const void* p) {
    for (const AddressRange& r : ranges) {
        if (address(p) >= r.begin && address(p) + sizeof(void*) <= r.end) return true;
    }
    return false;
}
bool covers(const DataSegments& segments, const void* p) { return covers(ranges_of(segments), p); }

std::string describe(const std::vector<AddressRange>& ranges) {
    std::string text;
    char line[64];
    for (const AddressRange& r : ranges) {
        std::snprintf(line, sizeof line, "[%#lx, %#lx)\n", static_cast<unsigned long>(r.begin),
                      static_cast<unsigned long>(r.end));
        text += line;
    }
    return text;
}

// Every object's PT_GNU_RELRO range, read independently of DataSegments.
std::vector<AddressRange> relro_ranges() {
    std::vector<AddressRange> relro;
    dl_iterate_phdr(
        [](dl_phdr_info* info, std::size_t, void* data) {
            for (ElfW(Half) i = 0; i < info->dlpi_phnum; ++i) {
                const ElfW(Phdr)& ph = info->dlpi_phdr[i];
                if (ph.p_type != PT_GNU_RELRO) continue;
                const std::uintptr_t begin = info->dlpi_addr + ph.p_vaddr;
                static_cast<std::vector<AddressRange>*>(data)->push_back({begin, begin + ph.p_memsz});
            }
            return 0;
        },
        &relro);
    return relro;
}

struct Plugin {
    void* handle = nullptr;
    void** (*bss_slot)() = nullptr;
    void** (*data_slot)() = nullptr;
    void** (*tls_slot)() = nullptr;

    Plugin() {
        handle = ::dlopen(GCHEAP_TEST_PLUGIN_PATH, RTLD_NOW | RTLD_LOCAL);
        INFO("dlopen(" GCHEAP_TEST_PLUGIN_PATH "): " << (handle == nullptr ? ::dlerror() : "ok"));
        REQUIRE(handle != nullptr);
        bss_slot = reinterpret_cast<void** (*)()>(::dlsym(handle, "gcheap_test_plugin_bss_slot"));
        data_slot = reinterpret_cast<void** (*)()>(::dlsym(handle, "gcheap_test_plugin_data_slot"));
        tls_slot = reinterpret_cast<void** (*)()>(::dlsym(handle, "gcheap_test_plugin_tls_slot"));
        REQUIRE(bss_slot != nullptr);
        REQUIRE(data_slot != nullptr);
        REQUIRE(tls_slot != nullptr);
    }
    // Unloads it, and checks that the loader really unmapped it.
    void close() {
        REQUIRE(::dlclose(handle) == 0);
        handle = nullptr;
        void* again = ::dlopen(GCHEAP_TEST_PLUGIN_PATH, RTLD_NOW | RTLD_NOLOAD);
        if (again != nullptr) ::dlclose(again);
        REQUIRE(again == nullptr);  // else something pinned it (e.g. an STB_GNU_UNIQUE symbol)
    }
    ~Plugin() {
        if (handle != nullptr) ::dlclose(handle);
    }
};

}  // namespace

TEST_CASE("data segments: globals, class statics and function-local statics are inside a range, .rodata is not",
          "[data segments]") {
    g_bss_global = opaque(&g_data_global);
    g_data_global = opaque(&g_bss_global);
    ClassWithStatic::slot = opaque(&g_bss_global);
    void** local = function_local_static();

    DataSegments segments;
    segments.refresh();
    const std::vector<AddressRange> ranges = ranges_of(segments);
    INFO(describe(ranges));
    REQUIRE(segments.count() > 0);
    CHECK(covers(ranges, &g_data_global));
    CHECK(covers(ranges, &g_bss_global));
    CHECK(covers(ranges, &ClassWithStatic::slot));
    CHECK(covers(ranges, local));
    CHECK_FALSE(covers(ranges, &g_rodata_global[0]));
    CHECK_FALSE(covers(ranges, &g_rodata_global[3]));
}

TEST_CASE("data segments: no range overlaps any object's PT_GNU_RELRO", "[data segments]") {
    DataSegments segments;
    segments.refresh();
    const std::vector<AddressRange> ranges = ranges_of(segments);
    const std::vector<AddressRange> relro = relro_ranges();
    INFO("ranges:\n" << describe(ranges) << "RELRO:\n" << describe(relro));
    REQUIRE_FALSE(relro.empty());  // libc and libstdc++ have one at least: the check below is not vacuous
    for (const AddressRange& r : ranges) {
        for (const AddressRange& ro : relro) CHECK((r.end <= ro.begin || ro.end <= r.begin));
    }
    CHECK_FALSE(covers(ranges, &g_relro_global));
}

TEST_CASE("data segments: ranges are sorted, disjoint, non-empty and word-aligned, and bytes() is their total",
          "[data segments]") {
    DataSegments segments;
    segments.refresh();
    const std::vector<AddressRange> ranges = ranges_of(segments);
    INFO(describe(ranges));
    REQUIRE(ranges.size() == segments.count());
    std::size_t bytes = 0;
    for (std::size_t i = 0; i < ranges.size(); ++i) {
        CHECK(ranges[i].begin < ranges[i].end);
        CHECK(ranges[i].begin % sizeof(void*) == 0);
        CHECK(ranges[i].end % sizeof(void*) == 0);
        if (i > 0) CHECK(ranges[i - 1].end <= ranges[i].begin);
        bytes += ranges[i].end - ranges[i].begin;
    }
    CHECK(segments.bytes() == bytes);
}

TEST_CASE("data segments: refresh() with nothing loaded in between keeps the ranges a fresh snapshot has",
          "[data segments]") {
    DataSegments segments;
    segments.refresh();
    const std::vector<AddressRange> first = ranges_of(segments);
    const std::size_t first_bytes = segments.bytes();
    segments.refresh();  // counters unchanged: the cached snapshot
    const std::vector<AddressRange> second = ranges_of(segments);
    DataSegments fresh;
    fresh.refresh();  // never refreshed before: a full rebuild
    const std::vector<AddressRange> rebuilt = ranges_of(fresh);
    INFO("first:\n" << describe(first) << "second:\n" << describe(second) << "fresh:\n" << describe(rebuilt));
    REQUIRE_FALSE(first.empty());
    REQUIRE(second.size() == first.size());
    REQUIRE(rebuilt.size() == first.size());
    for (std::size_t i = 0; i < first.size(); ++i) {
        CHECK(second[i].begin == first[i].begin);
        CHECK(second[i].end == first[i].end);
        CHECK(rebuilt[i].begin == first[i].begin);
        CHECK(rebuilt[i].end == first[i].end);
    }
    CHECK(segments.bytes() == first_bytes);
    CHECK(fresh.bytes() == first_bytes);
}

TEST_CASE("data segments: a dlopen'd object's .data and .bss are inside a range until dlclose", "[data segments]") {
    DataSegments segments;
    segments.refresh();
    const std::size_t count_before = segments.count();
    const std::size_t bytes_before = segments.bytes();

    Plugin plugin;
    void** bss_slot = plugin.bss_slot();
    void** data_slot = plugin.data_slot();
    CHECK(*bss_slot == nullptr);
    CHECK(*data_slot == reinterpret_cast<void*>(std::uintptr_t{0x5eed}));
    CHECK_FALSE(covers(segments, bss_slot));  // the old snapshot does not know the plugin yet
    segments.refresh();
    {
        INFO(describe(ranges_of(segments)));
        CHECK(covers(segments, bss_slot));
        CHECK(covers(segments, data_slot));
        CHECK(segments.count() > count_before);
        CHECK(segments.bytes() > bytes_before);
    }

    plugin.close();
    segments.refresh();
    INFO(describe(ranges_of(segments)));
    CHECK_FALSE(covers(segments, bss_slot));
    CHECK_FALSE(covers(segments, data_slot));
    CHECK(segments.count() == count_before);
    CHECK(segments.bytes() == bytes_before);
}

namespace {

struct TlsProbe {
    const void* bss_slot;
    const void* data_slot;
    std::vector<AddressRange> ranges;
};

TlsProbe probe_this_thread() {
    t_bss_slot = opaque(&t_data_slot);
    TlsProbe probe{&t_bss_slot, &t_data_slot, {}};
    current_thread_tls_ranges(probe.ranges);
    return probe;
}

}  // namespace

TEST_CASE("TLS: current_thread_tls_ranges covers the test binary's thread_locals, in main and in a std::thread",
          "[data segments][TLS]") {
    const TlsProbe main_probe = probe_this_thread();
    TlsProbe thread_probe;
    std::thread([&] { thread_probe = probe_this_thread(); }).join();  // Catch2 asserts on this thread only

    INFO("main:\n" << describe(main_probe.ranges) << "thread:\n" << describe(thread_probe.ranges));
    CHECK(covers(main_probe.ranges, main_probe.bss_slot));
    CHECK(covers(main_probe.ranges, main_probe.data_slot));
    CHECK(covers(thread_probe.ranges, thread_probe.bss_slot));
    CHECK(covers(thread_probe.ranges, thread_probe.data_slot));
    // Each thread's own blocks, not the initialisation image nor another thread's.
    CHECK(thread_probe.bss_slot != main_probe.bss_slot);
    CHECK_FALSE(covers(main_probe.ranges, thread_probe.bss_slot));
    CHECK_FALSE(covers(thread_probe.ranges, main_probe.bss_slot));
    // And not in the data segments either: TLS blocks are the only way to reach them.
    DataSegments segments;
    segments.refresh();
    CHECK_FALSE(covers(segments, main_probe.bss_slot));
    CHECK_FALSE(covers(segments, thread_probe.bss_slot));
}

TEST_CASE("TLS: a dlopen'd object's thread_local is covered once the thread has touched it",
          "[data segments][TLS]") {
    Plugin plugin;
    void** tls_slot = plugin.tls_slot();  // allocates the plugin's block in this thread
    *tls_slot = opaque(&g_bss_global);
    std::vector<AddressRange> ranges;
    current_thread_tls_ranges(ranges);
    INFO(describe(ranges));
    CHECK(covers(ranges, tls_slot));
    plugin.close();
    current_thread_tls_ranges(ranges);  // replaced, not appended to
    CHECK_FALSE(covers(ranges, tls_slot));
}
