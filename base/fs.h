// Small, error-reporting file helpers for sysfs, procfs and vfiokit's own state files.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace vfiokit {

// Whole file as text; throws Error (operation "read") on any failure.
std::string read_file(const std::filesystem::path& path);
// Whole file, or nullopt when it does not exist; other failures throw.
std::optional<std::string> read_file_if_exists(const std::filesystem::path& path);
// First line without trailing whitespace, or nullopt when the file does not exist.
std::optional<std::string> read_line_if_exists(const std::filesystem::path& path);

// Bytes of a binary file up to `max_bytes` (sysfs "config" files, ROM images).
std::vector<std::uint8_t> read_bytes(const std::filesystem::path& path, std::size_t max_bytes);

// The last component of a symlink's target (".../drivers/nvme" -> "nvme"), or nullopt when the
// link does not exist. Throws if the path exists but is not a link.
std::optional<std::string> read_link_name(const std::filesystem::path& path);

// Names in a directory, sorted; empty when it does not exist.
std::vector<std::string> list_dir(const std::filesystem::path& path);

// One write(2) of `value` to an existing file, as sysfs attributes require (no O_CREAT,
// no O_TRUNC). Throws Error with errno (operation "write", context path and value).
void write_attribute(const std::filesystem::path& path, std::string_view value);

// Replaces `path` atomically and durably: write a temporary file, fsync it, rename it over the
// target, fsync the directory. A crash leaves either the old or the new contents, never a mix.
void write_file_durable(const std::filesystem::path& path, std::string_view contents,
                        unsigned mode = 0644);

// Text helpers for sysfs values.
std::string_view trim(std::string_view text) noexcept;
// Parses "0x1af4", "1af4" (base 16) or decimal per `base`; nullopt on junk or overflow.
std::optional<std::uint64_t> parse_uint(std::string_view text, int base = 10) noexcept;
// The value after the colon of the first "Key: value" line (/proc/self/status, /proc/cpuinfo).
std::optional<std::string> find_key_value(std::string_view text, std::string_view key);

}  // namespace vfiokit
