// Writable data segments and TLS blocks from dl_iterate_phdr; see data_segments.hpp.
#include "gc/data_segments.hpp"

#include <link.h>

#include <algorithm>
#include <cstddef>
#include <new>

namespace gcheap::detail {

namespace {

constexpr std::uintptr_t kWord = sizeof(std::uintptr_t);

// Older loaders pass a shorter dl_phdr_info; a field exists only if `size`
// reaches past it.
constexpr std::size_t kCountersEnd = offsetof(dl_phdr_info, dlpi_subs) + sizeof(dl_phdr_info::dlpi_subs);
constexpr std::size_t kTlsDataEnd = offsetof(dl_phdr_info, dlpi_tls_data) + sizeof(dl_phdr_info::dlpi_tls_data);

// Appends [begin, end) shrunk to whole words, unless nothing is left.
void append_aligned(std::vector<AddressRange>& out, std::uintptr_t begin, std::uintptr_t end) {
    begin = (begin + kWord - 1) & ~(kWord - 1);
    end &= ~(kWord - 1);
    if (begin < end) out.push_back({begin, end});
}

// The object's writable PT_LOAD segments minus its PT_GNU_RELRO range. In
// practice RELRO is the head of the one writable segment; the general case
// (RELRO anywhere inside, or a segment it does not touch) costs nothing more.
void append_writable_segments(const dl_phdr_info& info, std::vector<AddressRange>& out) {
    std::uintptr_t relro_begin = 0;
    std::uintptr_t relro_end = 0;
    for (ElfW(Half) i = 0; i < info.dlpi_phnum; ++i) {
        const ElfW(Phdr)& ph = info.dlpi_phdr[i];
        if (ph.p_type == PT_GNU_RELRO) {
            relro_begin = info.dlpi_addr + ph.p_vaddr;
            relro_end = relro_begin + ph.p_memsz;
        }
    }
    for (ElfW(Half) i = 0; i < info.dlpi_phnum; ++i) {
        const ElfW(Phdr)& ph = info.dlpi_phdr[i];
        if (ph.p_type != PT_LOAD || (ph.p_flags & PF_W) == 0 || ph.p_memsz == 0) continue;
        const std::uintptr_t begin = info.dlpi_addr + ph.p_vaddr;
        const std::uintptr_t end = begin + ph.p_memsz;
        if (relro_end <= begin || end <= relro_begin) {
            append_aligned(out, begin, end);
            continue;
        }
        append_aligned(out, begin, std::max(begin, relro_begin));  // below RELRO
        append_aligned(out, std::min(end, relro_end), end);        // above RELRO
    }
}

void sort_by_address(std::vector<AddressRange>& ranges) {
    std::sort(ranges.begin(), ranges.end(),
              [](const AddressRange& a, const AddressRange& b) { return a.begin < b.begin; });
}

// One dl_iterate_phdr pass of refresh(). The callback runs under the
// loader's lock, inside glibc's C frames: it must not throw (unwinding out
// would leave the lock held), so a failed allocation stops the pass and
// refresh() throws after dl_iterate_phdr has returned.
struct RefreshPass {
    bool cached_counters_valid;
    unsigned long long cached_adds;
    unsigned long long cached_subs;
    std::vector<AddressRange>* out;

    bool first_object = true;
    bool unchanged = false;
    bool counters_seen = false;
    unsigned long long adds = 0;
    unsigned long long subs = 0;
    bool out_of_memory = false;
};

int refresh_callback(dl_phdr_info* info, std::size_t size, void* data) {
    RefreshPass& pass = *static_cast<RefreshPass*>(data);
    if (pass.first_object) {
        // Every object of one pass carries the same counters: the first
        // decides whether the snapshot still describes the loaded objects.
        pass.first_object = false;
        if (size >= kCountersEnd) {
            pass.counters_seen = true;
            pass.adds = info->dlpi_adds;
            pass.subs = info->dlpi_subs;
            if (pass.cached_counters_valid && pass.adds == pass.cached_adds && pass.subs == pass.cached_subs) {
                pass.unchanged = true;
                return 1;
            }
        }
    }
    try {
        append_writable_segments(*info, *pass.out);
    } catch (const std::bad_alloc&) {
        pass.out_of_memory = true;
        return 1;
    }
    return 0;
}

struct TlsPass {
    std::vector<AddressRange>* out;
    bool out_of_memory = false;
};

int tls_callback(dl_phdr_info* info, std::size_t size, void* data) {
    TlsPass& pass = *static_cast<TlsPass*>(data);
    if (size < kTlsDataEnd || info->dlpi_tls_data == nullptr) return 0;  // no TLS, or not allocated in this thread
    for (ElfW(Half) i = 0; i < info->dlpi_phnum; ++i) {
        const ElfW(Phdr)& ph = info->dlpi_phdr[i];
        if (ph.p_type != PT_TLS) continue;
        const auto begin = reinterpret_cast<std::uintptr_t>(info->dlpi_tls_data);
        try {
            append_aligned(*pass.out, begin, begin + ph.p_memsz);
        } catch (const std::bad_alloc&) {
            pass.out_of_memory = true;
            return 1;
        }
    }
    return 0;
}

}  // namespace

void DataSegments::refresh() {
    rebuilt_.clear();
    RefreshPass pass{counters_valid_, counters_.adds, counters_.subs, &rebuilt_};
    dl_iterate_phdr(refresh_callback, &pass);
    if (pass.unchanged) return;
    if (pass.out_of_memory) {
        counters_valid_ = false;  // keep the old snapshot, but rebuild next time
        throw std::bad_alloc();
    }
    sort_by_address(rebuilt_);
    ranges_.swap(rebuilt_);
    bytes_ = 0;
    for (const AddressRange& range : ranges_) bytes_ += range.bytes();
    counters_ = {pass.adds, pass.subs};
    counters_valid_ = pass.counters_seen;
}

void current_thread_tls_ranges(std::vector<AddressRange>& out) {
    out.clear();
    TlsPass pass{&out};
    dl_iterate_phdr(tls_callback, &pass);
    if (pass.out_of_memory) throw std::bad_alloc();
    sort_by_address(out);
}

}  // namespace gcheap::detail
