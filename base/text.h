// Text helpers shared by every layer's messages and reports.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace vfiokit {

std::string join(const std::vector<std::string>& parts, std::string_view separator);
// Fields separated by runs of spaces and tabs; views into `text`.
std::vector<std::string_view> split_words(std::string_view text);
// Lines without their '\n'; a trailing newline does not make an empty last line.
std::vector<std::string_view> split_lines(std::string_view text);
// The views would outlive a temporary string (a range-for over split_words(f().value_or("")));
// name the string first.
std::vector<std::string_view> split_words(std::string&& text) = delete;
std::vector<std::string_view> split_lines(std::string&& text) = delete;
// "0x1f" (lower case, no padding).
std::string hex(std::uint64_t value);
// Exact binary units when the value is a whole number of them: "16 KiB", "32 GiB", "1000 B".
std::string human_size(std::uint64_t bytes);

}  // namespace vfiokit
