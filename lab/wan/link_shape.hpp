// The shape of one direction of an emulated WAN path (delay, bottleneck rate
// and queue, random and burst loss, reordering, outages) and the parsers for
// the values rmig-wan takes on its command line ("25ms", "1gbit", "0.1%",
// "10+2/30", "8+10:reset", "delay=25ms,rate=500mbit,...").
//
// Percentages are percent with or without the sign ("0.1%" == "0.1"), as
// netem writes them. Rates are bits per second with tc's bit suffixes; tc's
// "mbps" means megaBYTES per second, so the "bps" forms are refused rather
// than guessed.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/args.hpp"  // UsageError, what the parsers throw

namespace rmig::wan {

using Nanos = std::chrono::nanoseconds;

// Gilbert-Elliott burst loss: a two-state chain stepped once per packet.
// Mean burst length is 1 / p_bad_to_good packets; the share of time spent in
// the bad state is p_good_to_bad / (p_good_to_bad + p_bad_to_good).
struct GilbertElliott {
    double p_good_to_bad = 0;
    double p_bad_to_good = 1;
    double loss_in_bad = 1;
    bool enabled() const { return p_good_to_bad > 0; }
};

// With `probability`, a packet's propagation delay changes by `gap`: positive,
// it arrives late and the packets behind it overtake it; negative, it
// overtakes the packets ahead of it (never below zero delay).
struct Reorder {
    double probability = 0;
    Nanos gap = std::chrono::milliseconds(1);
};

// The path is down from `at` for `length` (counted from the moment the link
// comes up), and again every `every` after that if `every` is not zero.
// `reset`: a stateful middlebox on the path (firewall, NAT) fails over
// without its connection table; once each occurrence ends, the path answers
// packets of connections it did not see start with a TCP reset
// (reset_firewall.hpp). Otherwise the outage is silent.
struct Outage {
    Nanos at{0};
    Nanos length{0};
    Nanos every{0};
    bool reset = false;
    bool covers(Nanos since_start) const;
    // Down at any moment in [from, to] (both counted from the start)?
    bool overlaps(Nanos from, Nanos to) const;
    // How many occurrences have ended by `since_start` (an occurrence ends at
    // its start + length: from that moment on it counts).
    uint64_t ended(Nanos since_start) const;
};

// Without a queue setting, the bottleneck queue holds one bandwidth-delay
// product (rate x 2 x delay: the RTT of a symmetric path), and never less than
// this: ~100 full 1500-byte packets, so a path with no delay still absorbs a
// burst the way a switch port does.
inline constexpr uint64_t kMinDefaultQueueBytes = 150'000;

struct LinkShape {
    Nanos delay{0};            // one way
    uint64_t rate_bps = 0;     // bottleneck rate in bits/s; 0 = unlimited (no queue either)
    uint64_t queue_bytes = 0;  // drop-tail bound; 0 = from queue_time, else the default above
    Nanos queue_time{0};       // the bound as time at the rate ("100ms")
    double loss = 0;           // independent loss probability per packet, 0..1
    GilbertElliott burst;
    Reorder reorder;
    std::vector<Outage> outages;  // shared by both directions of the path

    bool has_reset_outage() const;
    // The drop-tail bound in bytes (meaningful only with a rate).
    uint64_t queue_limit() const;
    // How the bound was chosen: "given", "100ms of rate", "BDP", "minimum".
    std::string queue_origin() const;
    // "delay 25ms, rate 1gbit, queue 6.25 MB (BDP), loss 0.1%, ..."
    std::string describe() const;
};

// A path spec as given to --path2: the shape's settings plus the path's subnet.
struct PathSpec {
    LinkShape shape;
    std::optional<std::string> subnet;
};

// Parsers. All throw UsageError naming `what` and saying what to give.
// A duration "25ms", "1.5s", "250us", "0"; without a unit, `bare_unit` if
// given (outages are written in seconds), otherwise an error.
Nanos parse_duration(const std::string& text, const std::string& what, std::optional<Nanos> bare_unit = std::nullopt);
// A signed duration ("-5ms"), for reordering gaps.
Nanos parse_signed_duration(const std::string& text, const std::string& what);
// "1gbit", "500mbit", "64kbit", "1000000bit", "1000000" (bits/s), "0" or "unlimited".
uint64_t parse_rate(const std::string& text, const std::string& what);
// "0.1%" or "0.1": a probability of 0.001.
double parse_percent(const std::string& text, const std::string& what);
// "P_GOOD_TO_BAD:P_BAD_TO_GOOD[:LOSS_IN_BAD]", each a percentage.
GilbertElliott parse_burst_loss(const std::string& text, const std::string& what);
// "P[:GAP]": a percentage and a signed duration.
Reorder parse_reorder(const std::string& text, const std::string& what);
// "AT+LEN[/EVERY][:reset][,AT+LEN...]" in seconds or with units ("10+2",
// "1.5s+500ms/30s", "8+10:reset").
std::vector<Outage> parse_outages(const std::string& text, const std::string& what);
// Bytes ("150000", "64K", "4M") or time at the rate ("100ms"); sets one of the
// shape's two queue fields and clears the other.
void parse_queue(const std::string& text, const std::string& what, LinkShape& shape);
// One setting by name (delay, rate, queue, loss, burst-loss, reorder, outage);
// outage adds to the list. Errors name `what` and the key ("--path2 rate"),
// or "--KEY" when `what` is empty. Throws UsageError for an unknown name.
void apply_setting(LinkShape& shape, const std::string& key, const std::string& value, const std::string& what);
// "delay=25ms,rate=500mbit,loss=0.1%,outage=5+1,outage=20+1,subnet=10.201.1.0/24".
PathSpec parse_path_spec(const std::string& text, const std::string& what);

// Formatting in the same units the parsers take ("25ms", "1gbit").
std::string format_duration(Nanos d);
std::string format_rate_bits(uint64_t bps);

}  // namespace rmig::wan
