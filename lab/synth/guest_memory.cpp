#include "lab/synth/guest_memory.hpp"

#include <sys/mman.h>

#include <cstring>

#include <xxhash.h>

#include "common/error.hpp"

namespace rmig::synth {

namespace {

constexpr uint64_t kMagic = 0x524d494753594e31ULL;  // "RMIGSYN1"

uint64_t splitmix(uint64_t& s) noexcept {
    uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

// Which pages start (and stay, until written) zero: a fixed pseudo-random share.
bool starts_zero(uint64_t page, double zero_fraction) noexcept {
    uint64_t s = page * 0x2545f4914f6cdd1dULL;
    return static_cast<double>(splitmix(s) >> 11) * 0x1.0p-53 < zero_fraction;
}

}  // namespace

void fill_page(std::byte* dst, uint64_t page, uint64_t version) noexcept {
    uint64_t w[kPageSize / 8];
    uint64_t seed = (page << 24) ^ version;
    w[0] = page;
    w[1] = version;
    w[2] = kMagic;
    for (size_t i = 3; i < kPageSize / 16; ++i) w[i] = splitmix(seed);
    for (size_t i = kPageSize / 16; i < kPageSize / 8; ++i) w[i] = w[3 + i % 8];
    std::memcpy(dst, w, kPageSize);
}

PageContent classify_page(const std::byte* page, uint64_t index) noexcept {
    uint64_t head[3];
    std::memcpy(head, page, sizeof head);
    if (head[0] == index && head[1] >= 1 && head[2] == kMagic) {
        alignas(64) std::byte expect[kPageSize];
        fill_page(expect, index, head[1]);
        return std::memcmp(expect, page, kPageSize) == 0 ? PageContent::synth : PageContent::invalid;
    }
    for (size_t off = 0; off < kPageSize; off += sizeof(uint64_t)) {
        uint64_t w;
        std::memcpy(&w, page + off, sizeof w);
        if (w != 0) return PageContent::invalid;
    }
    return PageContent::zero;
}

uint64_t page_hash(const std::byte* page) noexcept {
    return XXH3_64bits(page, kPageSize);
}

Mapping::Mapping(size_t bytes) : size_(bytes) {
    if (bytes == 0 || bytes % kPageSize != 0)
        throw Error(cat("guest memory: ", bytes, " bytes is not a positive multiple of ", kPageSize));
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (p == MAP_FAILED) throw_errno(cat("guest memory: mmap of ", bytes, " bytes"));
    base_ = static_cast<std::byte*>(p);
}

Mapping::~Mapping() {
    munmap(base_, size_);
}

GuestMemory::GuestMemory(size_t bytes, double zero_fraction, unsigned threads)
    : map_(bytes), hashes_(map_.pages()), versions_(new uint32_t[map_.pages()]) {
    parallel_for(pages(), threads, [&](size_t b, size_t e) {
        for (size_t p = b; p < e; ++p) {
            if (starts_zero(p, zero_fraction)) {
                versions_[p] = 0;  // populated zero page
            } else {
                versions_[p] = 1;
                fill_page(map_.page(p), p, 1);
            }
            hashes_[p] = page_hash(map_.page(p));
        }
    });
}

void GuestMemory::write(size_t page) noexcept {
    fill_page(map_.page(page), page, ++versions_[page]);
    hashes_[page] = page_hash(map_.page(page));
}

void GuestMemory::hash_all(std::vector<uint64_t>& out, unsigned threads) const {
    out.resize(map_.pages());
    parallel_for(map_.pages(), threads, [&](size_t b, size_t e) {
        for (size_t p = b; p < e; ++p) out[p] = page_hash(map_.page(p));
    });
}

}  // namespace rmig::synth
