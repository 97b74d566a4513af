// Binding on the real machine: pinning the calling thread and node-local memory.
#include "numa/binding.hpp"

#include <gtest/gtest.h>
#include <sched.h>

#include <cstring>
#include <string>

#include "common/error.hpp"

using namespace rmig;
using namespace rmig::numa;

namespace {

// Puts the test thread's affinity back so that later tests are not confined.
class RestoreAffinity {
public:
    RestoreAffinity() { saved_ok_ = sched_getaffinity(0, sizeof saved_, &saved_) == 0; }
    ~RestoreAffinity() {
        if (saved_ok_) sched_setaffinity(0, sizeof saved_, &saved_);
    }
    bool allowed(int cpu) const { return saved_ok_ && CPU_ISSET(cpu, &saved_); }

private:
    cpu_set_t saved_{};
    bool saved_ok_ = false;
};

}  // namespace

TEST(Binding, PinsTheCurrentThreadToPuZero) {
    RestoreAffinity restore;
    if (!restore.allowed(0)) GTEST_SKIP() << "CPU 0 is not in this process's affinity mask";
    pin_current_thread(0);
    EXPECT_EQ(sched_getcpu(), 0);
    cpu_set_t now;
    ASSERT_EQ(sched_getaffinity(0, sizeof now, &now), 0);
    EXPECT_EQ(CPU_COUNT(&now), 1);
    EXPECT_TRUE(CPU_ISSET(0, &now));
}

TEST(Binding, PinningToAMissingPuSaysWhich) {
    RestoreAffinity restore;
    for (int pu : {-1, 5000}) {
        try {
            pin_current_thread(pu);
            ADD_FAILURE() << "PU " << pu << " accepted";
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find("PU " + std::to_string(pu)), std::string::npos) << e.what();
        }
    }
}

TEST(Binding, NodeBufferOnNodeZeroIsWritable) {
    const size_t size = 4u << 20;
    NodeBuffer buf(size, 0);
    ASSERT_NE(buf.data(), nullptr);
    EXPECT_EQ(buf.size(), size);
    EXPECT_EQ(buf.node(), 0);
    auto* bytes = static_cast<unsigned char*>(buf.data());
    std::memset(bytes, 0xa5, size);
    EXPECT_EQ(bytes[0], 0xa5);
    EXPECT_EQ(bytes[size - 1], 0xa5);
    // The touched pages are on node 0 (checked only when bound: unbound memory
    // may be anywhere on a multi-node machine).
    // alloc_on_node reports the same binding as the buffer does.
    bool bound = false;
    void* raw = alloc_on_node(4096, 0, &bound);
    free_on_node(raw, 4096);
    EXPECT_EQ(buf.bound(), bound);
    const int where = node_of_memory(buf.data(), size);
    if (buf.bound() && where >= 0) {
        EXPECT_EQ(where, 0);
    }

    NodeBuffer moved(std::move(buf));
    EXPECT_EQ(buf.data(), nullptr);
    EXPECT_EQ(moved.data(), bytes);
    NodeBuffer assigned;
    assigned = std::move(moved);
    EXPECT_EQ(assigned.data(), bytes);
}

TEST(Binding, NodeBufferOnAMissingNodeThrows) {
    try {
        NodeBuffer buf(4096, 999);
        ADD_FAILURE() << "node 999 accepted";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("node 999"), std::string::npos) << e.what();
    }
    EXPECT_THROW(NodeBuffer(0, 0), Error);
}
