// Shared by the fuzz targets (docs/fuzzing.md). A broken invariant prints what broke and aborts,
// so libFuzzer keeps the input as a crash, whatever NDEBUG says.
#pragma once

#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <vector>

#define FUZZ_CHECK(condition)                                                  \
  do {                                                                         \
    if (!(condition)) ::vfiokit::fuzz::broken(#condition, __FILE__, __LINE__); \
  } while (false)

namespace vfiokit::fuzz {

[[noreturn]] inline void broken(const char* invariant, const char* file, int line) {
  std::fprintf(stderr, "fuzz: invariant broken at %s:%d: %s\n", file, line, invariant);
  std::abort();
}

// Little-endian stores (of up to 8 bytes; bytes past the value's are zero) and loads over byte
// vectors, as the kernel lays its structs out. Stores grow the vector as needed.
inline void put_le(std::vector<std::uint8_t>& bytes, std::size_t offset, std::uint64_t value,
                   std::size_t size) {
  if (bytes.size() < offset + size) bytes.resize(offset + size);
  for (std::size_t i = 0; i < size; ++i) {
    bytes[offset + i] = i < 8 ? static_cast<std::uint8_t>(value >> (8 * i)) : 0;
  }
}
inline std::uint64_t get_le(std::span<const std::uint8_t> bytes, std::size_t offset,
                            std::size_t size) {
  std::uint64_t value = 0;
  for (std::size_t i = 0; i < size; ++i) value |= std::uint64_t{bytes[offset + i]} << (8 * i);
  return value;
}

// Values at the edges more often than a uniform draw would give them: 0, 1, all ones, just below
// a power of two, or anything.
inline std::uint64_t edgy_u64(FuzzedDataProvider& data) {
  switch (data.ConsumeIntegralInRange<int>(0, 5)) {
    case 0:
      return 0;
    case 1:
      return ~std::uint64_t{0} - data.ConsumeIntegralInRange<std::uint64_t>(0, 0x10000);
    case 2:
      return (std::uint64_t{1} << data.ConsumeIntegralInRange<int>(0, 63)) -
             data.ConsumeIntegralInRange<std::uint64_t>(0, 1);
    case 3:
      return data.ConsumeIntegralInRange<std::uint64_t>(0, 0x100000);
    default:
      return data.ConsumeIntegral<std::uint64_t>();
  }
}

}  // namespace vfiokit::fuzz
