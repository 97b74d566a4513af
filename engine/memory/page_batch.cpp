#include "engine/memory/page_batch.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "common/error.hpp"

namespace rmig::engine {

namespace {

void put_u32(std::byte* p, uint32_t v) {
    for (int i = 0; i < 4; ++i) p[i] = static_cast<std::byte>(v >> (8 * i));
}
void put_u64(std::byte* p, uint64_t v) {
    for (int i = 0; i < 8; ++i) p[i] = static_cast<std::byte>(v >> (8 * i));
}
uint32_t get_u32(const std::byte* p) {
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(p[i]) << (8 * i);
    return v;
}
uint64_t get_u64(const std::byte* p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(p[i]) << (8 * i);
    return v;
}

}  // namespace

const char* to_string(PageKind k) noexcept {
    switch (k) {
    case PageKind::zero: return "zero";
    case PageKind::raw: return "raw";
    case PageKind::lz4: return "lz4";
    case PageKind::zstd: return "zstd";
    }
    return "?";
}

namespace {

// `bytes` holds at least the header and the table (all of the batch when
// with_payloads); `total` is the size of the whole batch.
PageBatch decode(std::span<const std::byte> bytes, size_t total, const BatchLayout& layout, bool with_payloads) {
    if (total < kPageBatchHeaderSize || bytes.size() < kPageBatchHeaderSize)
        throw ProtocolError(cat("page batch: ", total, " bytes, shorter than its ",
                                kPageBatchHeaderSize, "-byte header"));
    const std::byte* p = bytes.data();
    uint32_t magic = get_u32(p);
    if (magic != kPageBatchMagic)
        throw ProtocolError(cat("page batch: bad magic 0x", std::hex, magic));
    PageBatch batch;
    batch.region = get_u32(p + 4);
    uint32_t count = get_u32(p + 8);
    if (batch.region >= layout.region_pages.size())
        throw ProtocolError(cat("page batch: region ", batch.region, " does not exist (",
                                layout.region_pages.size(), " regions)"));
    if (count == 0) throw ProtocolError("page batch: no pages");
    // Bound the table by the bytes actually present before trusting count.
    size_t room = total - kPageBatchHeaderSize;
    if (count > room / kPageEntrySize)
        throw ProtocolError(cat("page batch: count ", count, " does not fit in ", total,
                                " bytes"));
    const size_t table_end = kPageBatchHeaderSize + size_t{count} * kPageEntrySize;
    if (bytes.size() < table_end)
        throw ProtocolError(cat("page batch: ", bytes.size(), " bytes given, the table needs ", table_end));
    const uint64_t region_pages = layout.region_pages[batch.region];
    const size_t ps = layout.page_size;

    batch.pages.reserve(count);
    size_t payload_at = table_end;
    for (uint32_t i = 0; i < count; ++i) {
        const std::byte* e = p + kPageBatchHeaderSize + size_t{i} * kPageEntrySize;
        PageEntry entry;
        entry.page_index = get_u64(e);
        uint8_t kind = static_cast<uint8_t>(e[8]);
        uint32_t len = get_u32(e + 9);
        if (entry.page_index >= region_pages)
            throw ProtocolError(cat("page batch: page ", i, " index ", entry.page_index,
                                    " out of range (region ", batch.region, " has ",
                                    region_pages, " pages)"));
        if (kind > static_cast<uint8_t>(PageKind::zstd))
            throw ProtocolError(cat("page batch: page ", i, " has unknown kind ", unsigned{kind}));
        entry.kind = static_cast<PageKind>(kind);
        bool len_ok = false;
        switch (entry.kind) {
        case PageKind::zero: len_ok = len == 0; break;
        case PageKind::raw: len_ok = len == ps; break;
        case PageKind::lz4:
        case PageKind::zstd: len_ok = len > 0 && len < ps; break;
        }
        if (!len_ok)
            throw ProtocolError(cat("page batch: page ", i, " (", to_string(entry.kind),
                                    ") has length ", len, ", page size ", ps));
        if (len > total - payload_at)
            throw ProtocolError(cat("page batch: page ", i, " payload runs past the end (",
                                    total, " bytes)"));
        entry.length = len;
        if (with_payloads) entry.payload = bytes.subspan(payload_at, len);
        payload_at += len;
        batch.pages.push_back(entry);
    }
    if (payload_at != total)
        throw ProtocolError(cat("page batch: ", total - payload_at,
                                " trailing bytes after the last payload"));
    return batch;
}

}  // namespace

PageBatch decode_page_batch(std::span<const std::byte> bytes, const BatchLayout& layout) {
    return decode(bytes, bytes.size(), layout, true);
}

size_t page_batch_head_size(std::span<const std::byte> header, size_t total) {
    if (total < kPageBatchHeaderSize || header.size() < kPageBatchHeaderSize)
        throw ProtocolError(cat("page batch: ", total, " bytes, shorter than its ", kPageBatchHeaderSize,
                                "-byte header"));
    uint32_t count = get_u32(header.data() + 8);
    if (count > (total - kPageBatchHeaderSize) / kPageEntrySize)
        throw ProtocolError(cat("page batch: count ", count, " does not fit in ", total, " bytes"));
    return kPageBatchHeaderSize + size_t{count} * kPageEntrySize;
}

PageBatch decode_page_table(std::span<const std::byte> head, size_t total, const BatchLayout& layout) {
    return decode(head, total, layout, false);
}

void PageBatchEncoder::reset(uint32_t region) {
    region_ = region;
    count_ = 0;
    table_.clear();
    payloads_.clear();
}

size_t PageBatchEncoder::encoded_size() const noexcept {
    return kPageBatchHeaderSize + table_.size() + payloads_.size();
}

bool PageBatchEncoder::add(uint64_t page_index, PageKind kind, std::span<const std::byte> payload) {
    if (count_ > 0 && encoded_size() + kPageEntrySize + payload.size() > budget_) return false;
    std::byte e[kPageEntrySize];
    put_u64(e, page_index);
    e[8] = static_cast<std::byte>(kind);
    put_u32(e + 9, static_cast<uint32_t>(payload.size()));
    table_.insert(table_.end(), e, e + kPageEntrySize);
    payloads_.insert(payloads_.end(), payload.begin(), payload.end());
    ++count_;
    return true;
}

std::span<const std::byte> PageBatchEncoder::finish() {
    finish_into(out_);
    return out_;
}

void PageBatchEncoder::finish_into(std::vector<std::byte>& out) const {
    out.resize(encoded_size());
    put_u32(out.data(), kPageBatchMagic);
    put_u32(out.data() + 4, region_);
    put_u32(out.data() + 8, count_);
    if (!table_.empty()) std::memcpy(out.data() + kPageBatchHeaderSize, table_.data(), table_.size());
    if (!payloads_.empty())
        std::memcpy(out.data() + kPageBatchHeaderSize + table_.size(), payloads_.data(), payloads_.size());
}

PageBatchBuilder::PageBatchBuilder(size_t page_size, size_t budget)
    : page_size_(page_size),
      max_pages_(budget > kPageBatchHeaderSize ? (budget - kPageBatchHeaderSize) / (kPageEntrySize + page_size) : 0) {
    if (max_pages_ == 0)
        throw Error(cat("page batch budget of ", budget, " bytes cannot hold one ", page_size, "-byte page"));
    max_pages_ = std::min<size_t>(max_pages_, UINT32_MAX);
}

void PageBatchBuilder::start(std::vector<std::byte>& buf, uint32_t region) {
    const size_t need = kPageBatchHeaderSize + max_pages_ * (kPageEntrySize + page_size_);
    if (buf.size() < need) buf.resize(need);
    buf_ = buf.data();
    region_ = region;
    count_ = 0;
    payload_end_ = kPageBatchHeaderSize + max_pages_ * kPageEntrySize;
}

std::span<std::byte> PageBatchBuilder::slot() noexcept { return {buf_ + payload_end_, page_size_}; }

void PageBatchBuilder::commit(uint64_t page_index, PageKind kind, size_t length) noexcept {
    std::byte* e = buf_ + kPageBatchHeaderSize + size_t{count_} * kPageEntrySize;
    put_u64(e, page_index);
    e[8] = static_cast<std::byte>(kind);
    put_u32(e + 9, static_cast<uint32_t>(length));
    payload_end_ += length;
    ++count_;
}

size_t PageBatchBuilder::finish() noexcept {
    put_u32(buf_, kPageBatchMagic);
    put_u32(buf_ + 4, region_);
    put_u32(buf_ + 8, count_);
    const size_t reserved_end = kPageBatchHeaderSize + max_pages_ * kPageEntrySize;
    const size_t table_end = kPageBatchHeaderSize + size_t{count_} * kPageEntrySize;
    if (table_end != reserved_end)
        std::memmove(buf_ + table_end, buf_ + reserved_end, payload_end_ - reserved_end);
    return table_end + (payload_end_ - reserved_end);
}

}  // namespace rmig::engine
