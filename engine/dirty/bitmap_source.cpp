#include "engine/dirty/bitmap_source.hpp"

namespace rmig::engine {

BitmapSource::BitmapSource(size_t pages, size_t page_size) : pending_(pages, page_size) {}

void BitmapSource::start() { pending_.clear_all(); }

void BitmapSource::collect(DirtyBitmap& snapshot) { pending_.take(snapshot); }

void BitmapSource::submit(const uint64_t* words, size_t nwords) { pending_.merge_from(words, nwords); }

}  // namespace rmig::engine
