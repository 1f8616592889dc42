// gcheap — fighting fragmentation by hand: the collector never moves objects,
// but a program that knows every pointer to an object can copy it to a fresh
// slot and drop the original (docs/fragmentation.md, samples/scenario5).
#pragma once

#include <cstddef>
#include <iterator>
#include <type_traits>

namespace gcheap {

namespace detail {
void* relocate_object(const void* object, std::size_t type_size);
}  // namespace detail

/// Whether the span holding `object` has fewer live objects than `threshold`
/// (0..1) of its slots: a span that one survivor keeps in use for hundreds of
/// dead neighbours. Large objects have a span of their own and are never
/// sparse. The figure is as of the last sweep (exact after collect()).
///
/// @throws std::invalid_argument if `object` does not point into an object of
///         the default heap, or `threshold` is not in [0, 1].
bool is_sparse(const void* object, double threshold);

/// Copies `*object` into a fresh allocation of the same size class and the
/// same kind (scanned or noscan) and returns the copy. The whole slot is
/// copied. The original is untouched: the caller replaces every pointer to
/// it with the copy, and the original is freed once unreachable. Copies come
/// from the thread's current span of the class, like any allocation: that
/// span can itself be a sparse one taken from the partial list, so
/// relocation packs survivors best when they are relocated in one batch
/// (the Compactor does) and then collected; check the result with
/// is_sparse() or the fragmentation report.
///
/// `object` must point to the start of an object of the default heap, or to
/// a pointer-free T smaller than 16 bytes inside a tiny block (which is
/// copied into the tiny allocator again). T must be trivially copyable: no
/// constructor runs, and T's identity (its address) changes.
///
/// @throws std::invalid_argument for any other pointer; std::bad_alloc.
template <class T>
T* relocate(T* object) {
    static_assert(std::is_trivially_copyable_v<T>, "gcheap::relocate copies bytes: T must be trivially copyable");
    return static_cast<T*>(detail::relocate_object(object, sizeof(T)));
}

/// A policy for containers of pointers to gcheap objects: relocate the
/// objects that sit on sparse spans whenever the container has doubled in
/// size since the last compaction (so the work, like a vector's growth, is
/// amortised over the insertions). The container's elements must be `T*`
/// for a trivially copyable T, and they must be the only pointers to these
/// objects that matter (the copies replace them in the container).
///
/// The container itself must be visible to the collector (a gcheap array, a
/// standard container with gcheap::allocator or traceable_allocator, a
/// global, or memory registered with add_roots()), like any holder of gcheap
/// pointers.
class Compactor {
public:
    /// `threshold`: a span below this occupancy is sparse (see is_sparse()).
    /// `min_size`: never compact a container smaller than this.
    explicit Compactor(double threshold = 0.25, std::size_t min_size = 1024)
        : threshold_(threshold), min_size_(min_size) {}

    /// Relocates every object of `pointers` that is on a sparse span, replacing
    /// it in place. Returns the number of objects relocated.
    template <class Range>
    std::size_t compact(Range& pointers) {
        std::size_t moved = 0;
        for (auto& slot : pointers) {
            if (slot != nullptr && is_sparse(slot, threshold_)) {
                slot = relocate(slot);
                ++moved;
            }
        }
        size_at_last_ = static_cast<std::size_t>(std::size(pointers));
        return moved;
    }

    /// compact(pointers) if it holds at least `min_size` elements and twice as
    /// many as at the last compaction; otherwise nothing. Returns the number
    /// of objects relocated.
    template <class Range>
    std::size_t compact_if_grown(Range& pointers) {
        const auto size = static_cast<std::size_t>(std::size(pointers));
        if (size < min_size_ || size < 2 * size_at_last_) return 0;
        return compact(pointers);
    }

    /// The container's size at the last compaction (0 before the first).
    std::size_t size_at_last_compaction() const { return size_at_last_; }

private:
    double threshold_;
    std::size_t min_size_;
    std::size_t size_at_last_ = 0;
};

}  // namespace gcheap
