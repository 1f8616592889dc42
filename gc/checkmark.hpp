// CheckMarker: GCHEAP_DEBUG=checkmark (Go's gccheckmark, V8 cppgc's marking
// verifier). After the collector has marked, with the world still stopped,
// the collector hands the same roots to a second marker built to share as
// little as possible with the first: one thread, depth-first, its own set of
// visited objects (an open-addressing hash set, not the span mark bits), its
// own stack, and object lookup through Heap::find_object rather than the
// marker's inlined filter. The first object it reaches that the collector
// left unmarked is reported — its address, size class, span, and the word
// that referenced it (in which root or object) — and the process aborts.
//
// Memory: the set and the stack are sized from the number of allocated
// objects before the pass and mapped with mmap, never malloc (a stopped
// thread may hold malloc's lock); both are unmapped when the pass ends, so
// the check costs time and transient address space, and leaves no trace in
// MemStats. If the OS refuses the memory, the check is skipped with a note.
//
// Both passes get the same stack ranges. The collecting thread's own stack
// is scanned from its collection entry point up (threads.hpp), above the
// collector's frames, so it does not change between the passes either.
//
// Legal call order, world stopped:
//   begin() -> the collector's drain() -> { scan_root_range() | scan_stack() | grey()
//   | scan_object_words() }* -> finish()
#pragma once

#include <cstddef>
#include <cstdint>

namespace gcheap::detail {

class Heap;
class Marker;

class CheckMarker {
public:
    CheckMarker(Heap& heap, const Marker& primary) : heap_(heap), primary_(primary) {}
    ~CheckMarker() { release(); }
    CheckMarker(const CheckMarker&) = delete;
    CheckMarker& operator=(const CheckMarker&) = delete;

    /// Maps the visited set and the stack; false (with a note on stderr) if
    /// the OS refused, in which case every other call does nothing.
    bool begin();
    void scan_root_range(std::uintptr_t begin, std::uintptr_t end) { scan(begin, end, Referrer::kRootRange); }
    void scan_stack(std::uintptr_t sp, std::uintptr_t hi, void* fake_stack);
    bool grey(std::uintptr_t addr);
    void scan_object_words(std::uintptr_t base);
    /// Scans everything reached; aborts with a report at the first object the
    /// collector did not mark. Unmaps the pass's memory.
    void finish();

    /// Objects the pass reached (for tests).
    std::uint64_t reached() const { return reached_; }

private:
    enum class Referrer : std::uint8_t { kRootRange, kStack, kFinalizer, kObject };

    void scan(std::uintptr_t begin, std::uintptr_t end, Referrer referrer, std::intptr_t slot_offset = 0);
    void visit(std::uintptr_t candidate, std::uintptr_t slot, Referrer referrer);
    bool insert(std::uintptr_t base);  // true if base was not in the set
    [[noreturn]] void report(std::uintptr_t object, std::uintptr_t slot, Referrer referrer);
    void release();

    Heap& heap_;
    const Marker& primary_;
    bool active_ = false;
    std::uintptr_t* set_ = nullptr;  // object bases; 0 = empty slot
    std::size_t set_mask_ = 0;
    unsigned set_shift_ = 64;
    std::size_t set_bytes_ = 0;
    std::uintptr_t* stack_ = nullptr;  // object bases waiting to be scanned
    std::size_t stack_size_ = 0;
    std::size_t stack_capacity_ = 0;
    std::size_t stack_bytes_ = 0;
    std::uint64_t reached_ = 0;
};

}  // namespace gcheap::detail
