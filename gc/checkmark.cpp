// The checkmark pass; see checkmark.hpp.
#include "gc/checkmark.hpp"

#include "gc/marker.hpp"
#include "runtime/debug.hpp"
#include "runtime/heap.hpp"
#include "runtime/sanitizers.hpp"

#include <fmt/format.h>

#include <sys/mman.h>
#include <unistd.h>

#include <bit>

namespace gcheap::detail {

namespace {

std::size_t round_to_os_pages(std::size_t bytes) {
    const std::size_t page = OsMemory::os_page_size();
    return (bytes + page - 1) / page * page;
}

// Straight from the OS, not through OsMemory: the check's memory is no part
// of the heap, and must not consume a fault injected into the heap's calls.
template <class T>
T* map_pages(std::size_t bytes) {
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? nullptr : static_cast<T*>(p);
}

void note(const char* text) { [[maybe_unused]] auto n = ::write(STDERR_FILENO, text, std::char_traits<char>::length(text)); }

}  // namespace

bool CheckMarker::begin() {
    // Every object the pass can reach is allocated now, and each enters the
    // set and the stack at most once: their count bounds both.
    std::uint64_t objects = 0;
    heap_.arena_index().for_each_span(
        [&](const Span* span) { objects += span->alloc_count.load(std::memory_order_relaxed); });
    const std::size_t slots = std::bit_ceil(static_cast<std::size_t>(objects) * 2 + 16);
    set_bytes_ = round_to_os_pages(slots * sizeof(std::uintptr_t));
    stack_capacity_ = static_cast<std::size_t>(objects) + 1;
    stack_bytes_ = round_to_os_pages(stack_capacity_ * sizeof(std::uintptr_t));
    set_ = map_pages<std::uintptr_t>(set_bytes_);
    stack_ = map_pages<std::uintptr_t>(stack_bytes_);
    if (set_ == nullptr || stack_ == nullptr) {
        release();
        note("gcheap: checkmark: skipped this cycle, the OS refused memory for the check\n");
        return false;
    }
    set_mask_ = slots - 1;
    set_shift_ = 64 - static_cast<unsigned>(std::countr_zero(slots));
    stack_size_ = 0;
    reached_ = 0;
    active_ = true;
    return true;
}

void CheckMarker::release() {
    if (set_ != nullptr) ::munmap(set_, set_bytes_);
    if (stack_ != nullptr) ::munmap(stack_, stack_bytes_);
    set_ = nullptr;
    stack_ = nullptr;
    active_ = false;
}

bool CheckMarker::insert(std::uintptr_t base) {
    // Fibonacci hashing: the top bits of the product mix every bit of the
    // address, including the zero low bits of aligned objects.
    std::size_t i = static_cast<std::size_t>((base * 0x9e3779b97f4a7c15ULL) >> set_shift_);
    while (set_[i] != 0) {
        if (set_[i] == base) return false;
        i = (i + 1) & set_mask_;
    }
    set_[i] = base;
    return true;
}

void CheckMarker::visit(std::uintptr_t candidate, std::uintptr_t slot, Referrer referrer) {
    ObjectRef ref;
    if (!heap_.find_object(candidate, ref) || !insert(ref.base)) return;
    if (++reached_ >= stack_capacity_) {
        // More objects reachable than allocated: the counts themselves are corrupt.
        debug_fatal("gcheap: checkmark: more objects are reachable than the spans count as allocated\n"
                    "gcheap:   the heap's allocation counts are corrupt (run with GCHEAP_DEBUG=verify)\n");
    }
    if (!primary_.is_marked(ref.base)) report(ref.base, slot, referrer);
    if (!ref.span->noscan) stack_[stack_size_++] = ref.base;
}

GCHEAP_NO_SANITIZE_SCAN void CheckMarker::scan(std::uintptr_t begin, std::uintptr_t end, Referrer referrer,
                                                std::intptr_t slot_offset) {
    if (!active_) return;
    begin = (begin + sizeof(std::uintptr_t) - 1) & ~(sizeof(std::uintptr_t) - 1);
    for (std::uintptr_t p = begin; p + sizeof(std::uintptr_t) <= end; p += sizeof(std::uintptr_t)) {
        visit(*reinterpret_cast<const volatile std::uintptr_t*>(p), p + static_cast<std::uintptr_t>(slot_offset),
              referrer);
    }
}

void CheckMarker::scan_stack(std::uintptr_t sp, std::uintptr_t hi, void* fake_stack) {
    scan(sp, hi, Referrer::kStack);
    for_each_fake_frame(sp, hi, fake_stack,
                        [this](std::uintptr_t lo, std::uintptr_t end) { scan(lo, end, Referrer::kStack); });
}

bool CheckMarker::grey(std::uintptr_t addr) {
    if (!active_) return false;
    const std::uint64_t before = reached_;
    visit(addr, 0, Referrer::kFinalizer);
    return reached_ != before;
}

void CheckMarker::scan_object_words(std::uintptr_t base) {
    ObjectRef ref;
    if (!active_ || !heap_.find_object(base, ref) || ref.span->noscan) return;
    scan(ref.base, ref.base + ref.span->elem_size, Referrer::kObject);
}

void CheckMarker::finish() {
    while (active_ && stack_size_ > 0) {
        const std::uintptr_t base = stack_[--stack_size_];
        const Span* span = heap_.arena_index().span_of(base);
        scan(base, base + span->elem_size, Referrer::kObject);
    }
    release();
}

namespace {

// Appends to a fixed buffer: fmt::format_to_n allocates nothing, and the
// world is stopped.
class ReportBuffer {
public:
    template <class... Args>
    void add(fmt::format_string<Args...> format, Args&&... args) {
        end_ = fmt::format_to_n(end_, static_cast<std::size_t>(text_ + sizeof text_ - 1 - end_), format,
                                std::forward<Args>(args)...)
                   .out;
    }
    const char* c_str() {
        *end_ = '\0';
        return text_;
    }

private:
    char text_[1024];
    char* end_ = text_;
};

}  // namespace

void CheckMarker::report(std::uintptr_t object, std::uintptr_t slot, Referrer referrer) {
    ReportBuffer out;
    const Span* span = heap_.arena_index().span_of(object);
    out.add("gcheap: checkmark: object {:#x} is reachable but the collector did not mark it\n"
            "gcheap:   object: size class {}, {} bytes, {} span [{:#x}, {:#x})\n",
            object, span->size_class, span->elem_size, span->noscan ? "noscan" : "scan", span->base, span->end());
    ObjectRef parent;
    switch (referrer) {
        case Referrer::kRootRange:
            out.add("gcheap:   referenced by the word at {:#x} in a registered root range\n", slot);
            break;
        case Referrer::kStack:
            out.add("gcheap:   referenced by the word at {:#x} on a thread's stack or registers\n", slot);
            break;
        case Referrer::kFinalizer:
            out.add("gcheap:   referenced by the finalizer queue\n");
            break;
        case Referrer::kObject:
            if (heap_.find_object(slot, parent)) {
                out.add("gcheap:   referenced by the word at {:#x}, offset {} of object {:#x} (size class {}, {} bytes)\n",
                        slot, slot - parent.base, parent.base, parent.span->size_class, parent.span->elem_size);
            }
            break;
    }
    out.add("gcheap:   this is a collector bug (or heap corruption): please report it with this text\n");
    debug_fatal(out.c_str());
}

}  // namespace gcheap::detail
