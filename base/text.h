// Text helpers shared by every layer's messages and reports.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace vfiokit {

std::string join(const std::vector<std::string>& parts, std::string_view separator);
// "0x1f" (lower case, no padding).
std::string hex(std::uint64_t value);
// Exact binary units when the value is a whole number of them: "16 KiB", "32 GiB", "1000 B".
std::string human_size(std::uint64_t bytes);

}  // namespace vfiokit
