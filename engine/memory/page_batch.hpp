// The page batch: the payload of one DATA frame on a memory-mode data channel.
// Many pages of one region travel together so a frame amortizes its header and
// checksum over up to ~1 MiB of pages.
//
// Layout (all integers little-endian):
//   header   u32 magic ("RMPB"), u32 region, u32 count
//   count x  u64 page_index, u8 kind, u32 length      (13 bytes, packed)
//   payloads concatenated in entry order
// kind: 0 zero (length 0, the page is all zeros), 1 raw (length = page size),
// 2 lz4 / 3 zstd (0 < length < page size; decompresses to exactly one page).
// The batch carries nothing else: its size must equal header + table + the sum
// of the lengths.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace rmig::engine {

inline constexpr uint32_t kPageBatchMagic = 0x42504d52;  // "RMPB"
inline constexpr size_t kPageBatchHeaderSize = 12;
inline constexpr size_t kPageEntrySize = 13;
inline constexpr size_t kDefaultBatchBudget = 1u << 20;
// Largest device-state blob a session carries (sent in pieces of a batch).
inline constexpr size_t kMaxDeviceState = size_t{256} << 20;

enum class PageKind : uint8_t { zero = 0, raw = 1, lz4 = 2, zstd = 3 };
const char* to_string(PageKind k) noexcept;

// What the receiver knows about its memory: enough to judge a batch.
struct BatchLayout {
    size_t page_size = 4096;
    std::vector<uint64_t> region_pages;  // pages per region, by region index
};

struct PageEntry {
    uint64_t page_index = 0;
    PageKind kind = PageKind::zero;
    std::span<const std::byte> payload;  // points into the decoded batch bytes (empty from decode_page_table)
    uint32_t length = 0;                 // payload bytes on the wire
};

struct PageBatch {
    uint32_t region = 0;
    std::vector<PageEntry> pages;
};

// Checks every field of an untrusted batch against `layout` (magic, region
// exists, count fits the size, each page index in range, kind known, length
// consistent with the kind, lengths add up to the size exactly) and throws
// rmig::ProtocolError naming the first problem. Decompressing (and checking the
// decompressed size) is the placer's job: page_placer.hpp.
PageBatch decode_page_batch(std::span<const std::byte> bytes, const BatchLayout& layout);

// For receivers that read payloads straight into place: with the first
// kPageBatchHeaderSize bytes of a batch of `total` bytes, how many bytes the
// header and table take (the count is checked against `total`) ...
size_t page_batch_head_size(std::span<const std::byte> header, size_t total);
// ... and, given those, every check of decode_page_batch except the payload
// bytes themselves: entries carry their lengths, payloads stay empty; they
// follow the head in entry order.
PageBatch decode_page_table(std::span<const std::byte> head, size_t total, const BatchLayout& layout);

// Builds batches for one region at a time. Reused across batches: its buffers
// keep their capacity, so a worker allocates only for its first batch.
class PageBatchEncoder {
public:
    explicit PageBatchEncoder(size_t budget = kDefaultBatchBudget) : budget_(budget) {}

    // Drops any pages added so far and starts a batch for `region`.
    void reset(uint32_t region);
    // Appends one page unless that would push a non-empty batch over the byte
    // budget: then returns false and the caller sends finish() and retries.
    bool add(uint64_t page_index, PageKind kind, std::span<const std::byte> payload);

    uint32_t region() const noexcept { return region_; }
    size_t count() const noexcept { return count_; }
    bool empty() const noexcept { return count_ == 0; }
    size_t encoded_size() const noexcept;

    // The encoded batch; valid until the next reset/add.
    std::span<const std::byte> finish();
    // The same, built into `out` (resized; its capacity is reused): a batch
    // that outlives the encoder's next reset, e.g. queued for a sender thread.
    void finish_into(std::vector<std::byte>& out) const;

private:
    size_t budget_;
    uint32_t region_ = 0;
    uint32_t count_ = 0;
    std::vector<std::byte> table_;     // entries
    std::vector<std::byte> payloads_;  // payload bytes
    std::vector<std::byte> out_;       // header + table + payloads
};

// Builds a batch in place, in a caller's buffer, so a page is copied once:
// from guest memory straight to where it goes on the wire. The table is
// reserved for at most max_pages() entries ahead of the payloads; finish()
// closes the gap when fewer came (the last batch of a shard), so full batches
// cost no second copy. Same wire layout as PageBatchEncoder.
class PageBatchBuilder {
public:
    // Throws Error when `budget` cannot hold one raw page with its entry.
    PageBatchBuilder(size_t page_size, size_t budget);

    size_t max_pages() const noexcept { return max_pages_; }
    // Starts a batch for `region` in `buf`, growing it if needed (its size is
    // otherwise kept, so a recycled buffer is not cleared again).
    void start(std::vector<std::byte>& buf, uint32_t region);
    bool full() const noexcept { return count_ == max_pages_; }
    bool empty() const noexcept { return count_ == 0; }
    // page_size bytes where the next payload goes; fill it, then commit().
    std::span<std::byte> slot() noexcept;
    // Records the next entry, whose `length` payload bytes (0 for a zero page,
    // at most page_size) are at the start of slot().
    void commit(uint64_t page_index, PageKind kind, size_t length) noexcept;
    // Writes the header, closes the table gap; returns the batch's size: the
    // first that many bytes of the buffer given to start().
    size_t finish() noexcept;

private:
    size_t page_size_, max_pages_;
    std::byte* buf_ = nullptr;
    uint32_t region_ = 0;
    uint32_t count_ = 0;
    size_t payload_end_ = 0;  // offset in buf_
};

}  // namespace rmig::engine
