// shardai's CPU allocator for ONNX Runtime: counts the bytes ONNX Runtime holds and refuses an
// allocation that would pass BACKEND_MEMORY_LIMIT. Registered in the ONNX Runtime environment,
// it serves every session built with `session.use_env_allocators`.
//
// A refusal is a C++ exception thrown from Alloc: ONNX Runtime's own code calls the allocator
// and turns exceptions into an OrtStatus at its API boundary (a session that cannot be built
// answers "Exception during initialization: <what>", a run the text itself). A null return
// would not be checked everywhere, so it is never used to refuse.
//
// The struct below mirrors OrtAllocator of ONNX Runtime API version 22 (onnxruntime_c_api.h):
// version, Alloc, Free, Info, Reserve; Reserve is read from version 18 on.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <stdexcept>

namespace {

struct Allocator {
    uint32_t version;
    void *(*alloc)(Allocator *self, size_t size);
    void (*free)(Allocator *self, void *p);
    const void *(*info)(const Allocator *self);
    void *(*reserve)(const Allocator *self, size_t size);
    const void *memory_info;
};

// Bytes before each block: its size (kept 64-byte aligned, as ONNX Runtime's kernels like).
constexpr size_t kHeader = 64;

std::atomic<unsigned long long> g_limit{0};
std::atomic<unsigned long long> g_in_use{0};
std::atomic<unsigned long long> g_accesses{0};

void *take(size_t size) {
    if (size > SIZE_MAX - kHeader) {
        throw std::bad_alloc();
    }
    const unsigned long long total = static_cast<unsigned long long>(size) + kHeader;
    const unsigned long long limit = g_limit.load(std::memory_order_relaxed);
    // Reserved only when it fits, so that a refusal never makes another allocation fail.
    unsigned long long cur = g_in_use.load(std::memory_order_relaxed);
    do {
        if (limit != 0 && (total > limit || cur > limit - total)) {
            throw std::runtime_error("Onnxruntime memory limit exceeded, memory allocation failed.");
        }
    } while (!g_in_use.compare_exchange_weak(cur, cur + total, std::memory_order_relaxed));
    void *block = nullptr;
    if (posix_memalign(&block, kHeader, total) != 0 || block == nullptr) {
        g_in_use.fetch_sub(total, std::memory_order_relaxed);
        throw std::bad_alloc();
    }
    g_accesses.fetch_add(1, std::memory_order_relaxed);
    *static_cast<size_t *>(block) = size;
    return static_cast<char *>(block) + kHeader;
}

void *do_alloc(Allocator *, size_t size) { return take(size); }

void *do_reserve(const Allocator *, size_t size) { return take(size); }

void do_free(Allocator *, void *p) {
    if (p == nullptr) {
        return;
    }
    char *block = static_cast<char *>(p) - kHeader;
    const size_t size = *reinterpret_cast<size_t *>(block);
    g_in_use.fetch_sub(size + kHeader, std::memory_order_relaxed);
    g_accesses.fetch_add(1, std::memory_order_relaxed);
    std::free(block);
}

const void *do_info(const Allocator *self) { return self->memory_info; }

}  // namespace

extern "C" {

// A new allocator describing itself with `memory_info` (an OrtMemoryInfo for the CPU,
// kept alive by the caller). Never freed: ONNX Runtime's environment holds it.
void *shai_onnx_allocator_new(const void *memory_info) {
    auto *a = new Allocator;
    a->version = 22;
    a->alloc = do_alloc;
    a->free = do_free;
    a->info = do_info;
    a->reserve = do_reserve;
    a->memory_info = memory_info;
    return a;
}

// BACKEND_MEMORY_LIMIT in bytes; 0: none.
void shai_onnx_set_limit(unsigned long long bytes) { g_limit.store(bytes, std::memory_order_relaxed); }

// Bytes ONNX Runtime holds through the allocator now.
unsigned long long shai_onnx_memory_in_use() { return g_in_use.load(std::memory_order_relaxed); }

// Allocations and frees so far.
unsigned long long shai_onnx_memory_accesses() { return g_accesses.load(std::memory_order_relaxed); }
}
