// The two halves of a stream in the flow protocol: the sender's window (what
// is kept until acknowledged, resent when a flow is lost) and the receiver's
// reorder buffer (in order, each byte once, stale resends dropped).
#include <gtest/gtest.h>

#include <future>

#include "common/error.hpp"
#include "qemu-plugin/reorder_buffer.hpp"
#include "qemu-plugin/send_window.hpp"

using namespace rmig;
using namespace rmig::qemu;
using std::chrono::milliseconds;

namespace {

std::shared_ptr<OutSegment> out(uint64_t offset, uint32_t len, bool fin = false) {
    auto s = std::make_shared<OutSegment>();
    s->header = {offset, len, wire::SegmentCodec::none, fin};
    return s;
}

InSegment in(uint64_t offset, size_t len, bool fin = false) {
    InSegment s{offset, fin, std::vector<std::byte>(len, std::byte(offset & 0xff)), 0, len};
    return s;
}

}  // namespace

TEST(SendWindow, KeepsSegmentsUntilAcknowledgedAndResendsALostFlows) {
    SendWindow w(1 << 20);
    ASSERT_TRUE(w.push(out(0, 100)));
    ASSERT_TRUE(w.push(out(100, 100)));
    ASSERT_TRUE(w.push(out(200, 100)));
    auto a = w.take(1, milliseconds(0));
    auto b = w.take(2, milliseconds(0));
    auto c = w.take(1, milliseconds(0));
    ASSERT_TRUE(a && b && c);
    EXPECT_EQ(b->header.offset, 100u);
    EXPECT_FALSE(w.take(2, milliseconds(0))) << "every segment is out";
    EXPECT_TRUE(w.acknowledge({100, false}));
    EXPECT_EQ(w.held_bytes(), 200u);
    w.flow_lost(1);  // carried 0 (acknowledged) and 200 (not)
    auto again = w.take(2, milliseconds(0));
    ASSERT_TRUE(again);
    EXPECT_EQ(again->header.offset, 200u);
    EXPECT_TRUE(w.acknowledge({50, false})) << "an older ack (slower flow) is ignored";
    EXPECT_EQ(w.acknowledged(), 100u);
    EXPECT_FALSE(w.acknowledge({400, false})) << "past what was sent";
    EXPECT_FALSE(w.acknowledge({300, true})) << "the end was not sent";
    ASSERT_TRUE(w.push(out(300, 0, true)));
    EXPECT_TRUE(w.acknowledge({300, true}));
    EXPECT_TRUE(w.all_acknowledged());
    EXPECT_EQ(w.held_bytes(), 0u);
}

TEST(SendWindow, FullWindowHoldsTheWriterBackUntilAnAck) {
    SendWindow w(200);
    ASSERT_TRUE(w.push(out(0, 150)));
    auto blocked = std::async(std::launch::async, [&] { return w.push(out(150, 100)); });
    EXPECT_EQ(blocked.wait_for(milliseconds(100)), std::future_status::timeout);
    w.take(1, milliseconds(0));
    EXPECT_TRUE(w.acknowledge({150, false}));
    EXPECT_TRUE(blocked.get());
    w.close();
    EXPECT_FALSE(w.push(out(250, 10)));
}

TEST(SendWindow, OldestInFlightNamesTheFlowHoldingIt) {
    SendWindow w(1 << 20);
    w.push(out(0, 10));
    w.push(out(10, 10));
    EXPECT_FALSE(w.oldest_in_flight().any);
    w.take(7, milliseconds(0));
    auto o = w.oldest_in_flight();
    EXPECT_TRUE(o.any);
    EXPECT_EQ(o.flow, 7u);
}

TEST(ReorderBuffer, DeliversInOrderAndDropsDuplicates) {
    ReorderBuffer r(1 << 20);
    EXPECT_EQ(r.put(in(100, 100), "flow 1"), ReorderBuffer::Put::stored);
    EXPECT_FALSE(r.next(milliseconds(0))) << "offset 0 is missing";
    EXPECT_EQ(r.put(in(0, 100), "flow 2"), ReorderBuffer::Put::stored);
    EXPECT_EQ(r.put(in(100, 100), "flow 2"), ReorderBuffer::Put::duplicate);
    auto s = r.next(milliseconds(0));
    ASSERT_TRUE(s);
    EXPECT_EQ(s->offset, 0u);
    // A resend of the one the writer holds is a duplicate, not a second copy.
    EXPECT_EQ(r.put(in(0, 100), "flow 3"), ReorderBuffer::Put::duplicate);
    r.mark_delivered(*s);
    EXPECT_EQ(r.put(in(0, 100), "flow 3"), ReorderBuffer::Put::duplicate);
    s = r.next(milliseconds(0));
    ASSERT_TRUE(s);
    EXPECT_EQ(s->offset, 100u);
    r.mark_delivered(*s);
    EXPECT_EQ(r.put(in(200, 0, true), "flow 1"), ReorderBuffer::Put::stored);
    s = r.next(milliseconds(0));
    ASSERT_TRUE(s && s->fin);
    r.mark_delivered(*s);
    EXPECT_TRUE(r.fin_delivered());
    EXPECT_EQ(r.delivered(), 200u);
    EXPECT_EQ(r.held_bytes(), 0u);
}

TEST(ReorderBuffer, ContradictionsAreProtocolErrors) {
    ReorderBuffer r(1000);
    r.put(in(0, 100), "flow 1");
    EXPECT_THROW(r.put(in(0, 50), "flow 1"), ProtocolError) << "same offset, other length";
    EXPECT_THROW(r.put(in(50, 100), "flow 1"), ProtocolError) << "overlap";
    EXPECT_THROW(r.put(in(100ull << 20, 10), "flow 1"), ProtocolError) << "beyond the window";
    r.put(in(300, 0, true), "flow 1");
    EXPECT_THROW(r.put(in(250, 100), "flow 1"), ProtocolError) << "past the end";
    EXPECT_THROW(r.put(in(400, 0, true), "flow 1"), ProtocolError) << "a second end";
}
