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

    // The last collect(), made while the guest is paused (the switchover):
    // nothing can write any more, so a source may skip re-arming its tracking
    // (uffd-wp: re-protecting every dirty page), which would only add to the
    // downtime. Only stop() may follow.
    virtual void collect_final(DirtyBitmap& snapshot) { collect(snapshot); }

    // Ends tracking and releases whatever start() set up; idempotent.
    virtual void stop() = 0;
};

}  // namespace rmig::engine
