#include "vfiokit/iommu/argsz.h"

#include "vfiokit/base/error.h"
#include "vfiokit/base/text.h"

namespace vfiokit::iommu {

std::vector<std::uint8_t> query_with_argsz(
    std::size_t initial, const std::function<std::uint32_t(std::span<std::uint8_t>)>& ask,
    std::string_view what, int attempts) {
  std::vector<std::uint8_t> buffer(initial, 0);
  std::uint32_t wanted = 0;
  for (int attempt = 0; attempt < attempts; ++attempt) {
    wanted = ask(buffer);
    if (wanted <= buffer.size()) return buffer;
    if (wanted > kMaxArgsz) break;
    buffer.assign(wanted, 0);  // the capabilities did not fit: ask again with room
  }
  throw Error(std::string(what), "the kernel still wanted " + human_size(wanted) +
                                     " for its reply after " + std::to_string(attempts) + " tries")
      .with("argsz", std::to_string(wanted));
}

}  // namespace vfiokit::iommu
