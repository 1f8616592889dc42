// FixAlloc: off-heap slabs for fixed-size metadata (span descriptors, thread
// caches), Go's mfixalloc.go.
//
// Memory comes from OsMemory::map_metadata in chunks and is never returned to
// the OS while the heap lives; freed objects go on a free list for reuse.
// Invariants: inuse_bytes() == live objects * sizeof(T);
//             sys_bytes() == chunks * kChunkBytes >= inuse_bytes().
// Locking: none inside; the owner serialises calls (the page heap lock for
// spans, the cache registry lock for thread caches).
#pragma once

#include "runtime/os_memory.hpp"

#include <cstddef>
#include <new>
#include <utility>

namespace gcheap::detail {

template <class T>
class FixAlloc {
public:
    explicit FixAlloc(OsMemory& os) : os_(os) {}
    FixAlloc(const FixAlloc&) = delete;
    FixAlloc& operator=(const FixAlloc&) = delete;
    ~FixAlloc() {
        for (Chunk* c = chunks_; c != nullptr;) {
            Chunk* next = c->next;
            os_.unmap(c, kChunkBytes);
            c = next;
        }
    }

    /// Constructs a T; returns nullptr if the OS refuses memory.
    template <class... Args>
    T* create(Args&&... args) {
        void* slot = take_slot();
        if (slot == nullptr) return nullptr;
        inuse_bytes_ += sizeof(T);
        return ::new (slot) T(std::forward<Args>(args)...);
    }

    void destroy(T* object) {
        object->~T();
        auto* node = reinterpret_cast<FreeNode*>(object);
        node->next = free_;
        free_ = node;
        inuse_bytes_ -= sizeof(T);
    }

    std::size_t inuse_bytes() const { return inuse_bytes_; }
    std::size_t sys_bytes() const { return sys_bytes_; }

private:
    static constexpr std::size_t kChunkBytes = 64 * 1024;
    struct FreeNode {
        FreeNode* next;
    };
    struct Chunk {
        Chunk* next;
    };
    static constexpr std::size_t kSlot = (sizeof(T) + alignof(T) - 1) / alignof(T) * alignof(T);
    static constexpr std::size_t kFirstSlot = (sizeof(Chunk) + alignof(T) - 1) / alignof(T) * alignof(T);
    static_assert(sizeof(T) >= sizeof(FreeNode) && kFirstSlot + kSlot <= kChunkBytes);

    void* take_slot() {
        if (free_ != nullptr) {
            FreeNode* node = free_;
            free_ = node->next;
            return node;
        }
        if (bump_ == nullptr || static_cast<std::size_t>(bump_end_ - bump_) < kSlot) {
            void* memory = os_.map_metadata(kChunkBytes);
            if (memory == nullptr) return nullptr;
            auto* chunk = static_cast<Chunk*>(memory);
            chunk->next = chunks_;
            chunks_ = chunk;
            sys_bytes_ += kChunkBytes;
            bump_ = static_cast<char*>(memory) + kFirstSlot;
            bump_end_ = static_cast<char*>(memory) + kChunkBytes;
        }
        void* slot = bump_;
        bump_ += kSlot;
        return slot;
    }

    OsMemory& os_;
    Chunk* chunks_ = nullptr;
    FreeNode* free_ = nullptr;
    char* bump_ = nullptr;
    char* bump_end_ = nullptr;
    std::size_t inuse_bytes_ = 0;
    std::size_t sys_bytes_ = 0;
};

}  // namespace gcheap::detail
