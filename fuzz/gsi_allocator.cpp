// The GSI allocator under a fuzzed workload of allocations and releases, good and bad.
//
// Invariants: handed-out GSIs are inside [first, limit) and never handed out twice; available()
// is exactly the free count; a failed allocation or release changes nothing; releasing
// everything restores the start.
#include <algorithm>
#include <set>

#include "fuzz/fuzz.h"
#include "vfiokit/base/error.h"
#include "vfiokit/msix/routing.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  using namespace vfiokit::msix;
  FuzzedDataProvider data(bytes, size);
  const auto first = data.ConsumeIntegralInRange<std::uint32_t>(0, 64);
  const auto limit = data.ConsumeIntegralInRange<std::uint32_t>(0, 320);
  const std::uint32_t capacity = limit > first ? limit - first : 0;
  GsiAllocator gsis(first, limit);
  std::set<std::uint32_t> held;

  auto check = [&] { FUZZ_CHECK(gsis.available() + held.size() == capacity); };
  check();
  while (data.remaining_bytes() > 0) {
    const std::uint32_t before = gsis.available();
    switch (data.ConsumeIntegralInRange<int>(0, 2)) {
      case 0: {
        const auto count = data.ConsumeIntegralInRange<std::uint32_t>(0, capacity + 4);
        try {
          const auto got = gsis.allocate(count);
          FUZZ_CHECK(got.size() == count);
          for (std::uint32_t gsi : got) {
            FUZZ_CHECK(gsi >= first && gsi < limit);
            FUZZ_CHECK(held.insert(gsi).second);
          }
        } catch (const vfiokit::Error&) {
          FUZZ_CHECK(count > before && gsis.available() == before);
        }
        break;
      }
      case 1: {
        // Some of the held GSIs, in any order.
        std::vector<std::uint32_t> give(held.begin(), held.end());
        for (std::size_t i = give.size(); i > 1; --i) {
          std::swap(give[i - 1], give[data.ConsumeIntegralInRange<std::size_t>(0, i - 1)]);
        }
        give.resize(data.ConsumeIntegralInRange<std::size_t>(0, give.size()));
        gsis.release(give);
        for (std::uint32_t gsi : give) held.erase(gsi);
        break;
      }
      default: {
        // A list with something in it that is not held: a stranger or a repeat.
        std::vector<std::uint32_t> give;
        if (!held.empty() && data.ConsumeBool()) give.push_back(*held.begin());
        std::uint32_t bad = data.ConsumeIntegral<std::uint32_t>();
        if (data.ConsumeBool() && !give.empty()) bad = give.front();  // released twice
        if (held.count(bad) && !(give.size() == 1 && give.front() == bad)) break;
        give.push_back(bad);
        try {
          gsis.release(give);
          vfiokit::fuzz::broken("a release of GSIs not held succeeded", __FILE__, __LINE__);
        } catch (const vfiokit::Error&) {
          FUZZ_CHECK(gsis.available() == before);  // nothing of the list was released
        }
        break;
      }
    }
    check();
  }
  const std::vector<std::uint32_t> all(held.begin(), held.end());
  gsis.release(all);
  FUZZ_CHECK(gsis.available() == capacity);
  return 0;
}
