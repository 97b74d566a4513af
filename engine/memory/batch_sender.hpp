// The send stage of a memory-mode worker: a thread that sends finished page
// batches on the worker's channel while the worker scans, classifies and
// compresses the next ones. At most `depth` batches wait or travel at once;
// their buffers are recycled, so a round allocates only its first few.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "transport/channel.hpp"

namespace rmig::engine {

class BatchSender {
public:
    BatchSender(transport::Channel& ch, size_t depth);
    // Stops the thread; batches not yet sent are dropped (the round failed).
    ~BatchSender();
    BatchSender(const BatchSender&) = delete;
    BatchSender& operator=(const BatchSender&) = delete;

    // A buffer to build the next batch in (a recycled one keeps its size and
    // stale bytes, so reusing it costs no clearing); blocks while `depth` are
    // queued or in flight. Rethrows the sender's error, if it had one.
    std::vector<std::byte> buffer();
    // Queues the first `used` bytes of a buffer from buffer() to be sent as
    // one DATA frame; without `used`, all of it.
    void push(std::vector<std::byte> batch, size_t used);
    void push(std::vector<std::byte> batch) {
        size_t n = batch.size();
        push(std::move(batch), n);
    }
    // Returns once every pushed batch was sent; rethrows a send error.
    void drain();

    uint64_t bytes_sent() const;

private:
    void run();
    void rethrow_locked();

    transport::Channel& ch_;
    const size_t depth_;
    mutable std::mutex mu_;
    std::condition_variable cv_;
    struct Queued {
        std::vector<std::byte> buf;
        size_t used;
    };
    std::deque<Queued> queue_;                  // to send, in order
    std::vector<std::vector<std::byte>> free_;  // sent, capacity kept
    size_t in_flight_ = 0;                      // handed out by buffer() or queued or sending
    uint64_t bytes_ = 0;
    bool stop_ = false;
    std::exception_ptr error_;
    std::thread thread_;  // last: started once everything above exists
};

}  // namespace rmig::engine
