// Where a pre-copy round learns which pages changed since the previous round.
#pragma once

#include "engine/dirty/dirty_bitmap.hpp"

namespace rmig::engine {

class DirtySource {
public:
    virtual ~DirtySource() = default;

    // Begins tracking: pages written from now on are reported by collect().
    // The caller sends everything once itself (the full first round).
    virtual void start() = 0;

    // Replaces `snapshot` with the pages dirtied since the previous collect()
    // (or start()). Tracking continues: a write racing with collect() lands in
    // this snapshot or the next one, never in neither. `snapshot` must have
    // the source's geometry (pages, page size).
    virtual void collect(DirtyBitmap& snapshot) = 0;

    // Ends tracking and releases whatever start() set up; idempotent.
    virtual void stop() = 0;
};

}  // namespace rmig::engine
