// The pipelined send stage (engine/memory/batch_sender.hpp) over a real tcp
// loopback channel: batches arrive whole and in order, buffers are recycled,
// and a peer that goes away surfaces as an error in the worker.
#include "engine/memory/batch_sender.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <future>

#include "common/error.hpp"
#include "tests/support/channel_pair.hpp"

using namespace rmig;
using namespace rmig::engine;
using namespace std::chrono_literals;

namespace {

using Pair = test::ChannelPair;

std::vector<std::byte> batch_of(size_t i, std::vector<std::byte> buf) {
    buf.resize(1000 + i * 37);
    for (size_t k = 0; k < buf.size(); ++k) buf[k] = static_cast<std::byte>((i * 131 + k) & 0xff);
    return buf;
}

}  // namespace

TEST(BatchSender, BatchesArriveWholeAndInOrder) {
    Pair p;
    constexpr size_t kBatches = 200;
    auto reader = std::async(std::launch::async, [&] {
        std::vector<std::byte> got;
        for (size_t i = 0; i < kBatches; ++i) {
            EXPECT_EQ(p.dst->recv(got), wire::FrameType::data);
            EXPECT_EQ(got, batch_of(i, {})) << "batch " << i;
        }
    });
    uint64_t bytes = 0;
    {
        BatchSender s(*p.src, 2);
        for (size_t i = 0; i < kBatches; ++i) {
            auto b = batch_of(i, s.buffer());
            bytes += b.size();
            s.push(std::move(b));
        }
        s.drain();
        EXPECT_EQ(s.bytes_sent(), bytes);
    }
    ASSERT_EQ(reader.wait_for(10s), std::future_status::ready);
    reader.get();
}

// Recycled buffers keep their size; only the `used` prefix goes out.
TEST(BatchSender, SendsOnlyTheUsedPrefixOfARecycledBuffer) {
    Pair p;
    constexpr size_t kBatches = 50;
    auto reader = std::async(std::launch::async, [&] {
        std::vector<std::byte> got;
        for (size_t i = 0; i < kBatches; ++i) {
            EXPECT_EQ(p.dst->recv(got), wire::FrameType::data);
            ASSERT_EQ(got.size(), 100 + i) << "batch " << i;
            for (auto b : got) ASSERT_EQ(b, std::byte(i & 0xff)) << "batch " << i;
        }
    });
    {
        BatchSender s(*p.src, 2);
        for (size_t i = 0; i < kBatches; ++i) {
            auto b = s.buffer();
            if (b.size() < 4096) b.resize(4096);
            std::fill(b.begin(), b.end(), std::byte{0xee});  // what must not be sent
            std::fill_n(b.begin(), 100 + i, std::byte(i & 0xff));
            s.push(std::move(b), 100 + i);
        }
        s.drain();
        EXPECT_EQ(s.bytes_sent(), kBatches * 100 + kBatches * (kBatches - 1) / 2);
    }
    ASSERT_EQ(reader.wait_for(10s), std::future_status::ready);
    reader.get();
}

TEST(BatchSender, APeerThatGoesAwayIsAnErrorForTheWorker) {
    Pair p;
    p.dst.reset();  // closes the receiving end
    BatchSender s(*p.src, 2);
    auto t0 = std::chrono::steady_clock::now();
    std::string error;
    try {
        // Enough to fill the socket buffers: the send stage must fail.
        for (int i = 0; i < 10000; ++i) {
            auto b = s.buffer();
            b.assign(1 << 20, std::byte{1});
            s.push(std::move(b));
        }
        s.drain();
    } catch (const LinkError& e) {
        error = e.what();
    }
    EXPECT_FALSE(error.empty());
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
}
