// Little-endian field access for wire structs (the wire is little-endian;
// we never memcpy host structs onto the wire).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace rmig::wire {

template <class T> inline void put_le(std::byte* p, T v) {
    for (size_t i = 0; i < sizeof(T); ++i) p[i] = static_cast<std::byte>((v >> (8 * i)) & 0xff);
}

template <class T> inline T get_le(const std::byte* p) {
    T v = 0;
    for (size_t i = 0; i < sizeof(T); ++i)
        v = static_cast<T>(v | (static_cast<T>(std::to_integer<uint8_t>(p[i])) << (8 * i)));
    return v;
}

}  // namespace rmig::wire
