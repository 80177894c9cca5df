// Small, error-reporting file helpers for sysfs, procfs and vfiokit's own state files.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <sys/stat.h>
#include <sys/types.h>

#include "vfiokit/base/unique_fd.h"

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
// The temporary (PATH.tmp) is created fresh (O_EXCL, O_NOFOLLOW: a link planted there is
// replaced, never written through), with exactly `mode` whatever the umask.
void write_file_durable(const std::filesystem::path& path, std::string_view contents,
                        unsigned mode = 0644);

// Why a directory or file of vfiokit's own state (its journal, its lock) must not be trusted,
// or nullopt when it may: it must be a directory (or a regular file with a single link, so
// that it is no hard link to something else), owned by root or by `euid` (unit tests run
// unprivileged; `check` reads root's journal unprivileged), and writable by nobody else.
std::optional<std::string> untrusted_state_reason(const struct stat& st, bool directory,
                                                  uid_t euid);

// A directory of vfiokit's own state (/run/vfiokit and below), held open and used only through
// its fd: every file is opened relative to it with O_NOFOLLOW, so nothing planted in it can
// redirect a write, and a directory or file that is a symlink or untrusted
// (untrusted_state_reason) is refused with an Error naming it and the fix. Move-only.
class StateDir {
 public:
  // Opens `path`, creating it (and missing parents) first with exactly `mode`, whatever the
  // umask.
  static StateDir create(const std::filesystem::path& path, unsigned mode);
  // nullopt when `path` does not exist.
  static std::optional<StateDir> open(const std::filesystem::path& path);

  StateDir create_subdir(std::string_view name, unsigned mode) const;
  std::optional<StateDir> open_subdir(std::string_view name) const;

  // Opens a file that lives on (a lock) for reading and writing, created with `mode` if missing.
  UniqueFd open_file(std::string_view name, unsigned mode) const;
  // The file's contents; nullopt when it does not exist. Throws Error for a file that is a
  // symlink, untrusted, not a regular file, or longer than `max_bytes`.
  std::optional<std::string> read_file(std::string_view name, std::size_t max_bytes) const;
  // write_file_durable() inside this directory.
  void write_file_durable(std::string_view name, std::string_view contents, unsigned mode) const;
  // False when there was nothing to remove.
  bool remove(std::string_view name) const;
  // Names in it, sorted.
  std::vector<std::string> list() const;

  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }
  [[nodiscard]] int fd() const noexcept { return fd_.get(); }

 private:
  StateDir(UniqueFd fd, std::filesystem::path path) : fd_(std::move(fd)), path_(std::move(path)) {}
  static std::optional<StateDir> open_at(int parent, const std::filesystem::path& path,
                                         std::string_view name,
                                         std::optional<unsigned> create_mode);

  UniqueFd fd_;
  std::filesystem::path path_;
};

// Text helpers for sysfs values.
std::string_view trim(std::string_view text) noexcept;
// Parses "0x1af4", "1af4" (base 16) or decimal per `base`; nullopt on junk or overflow.
std::optional<std::uint64_t> parse_uint(std::string_view text, int base = 10) noexcept;
// The value after the colon of the first "Key: value" line (/proc/self/status, /proc/cpuinfo).
std::optional<std::string> find_key_value(std::string_view text, std::string_view key);

}  // namespace vfiokit
