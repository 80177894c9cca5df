#include "vfiokit/base/fs.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>

#include "vfiokit/base/error.h"
#include "vfiokit/base/unique_fd.h"

namespace vfiokit {
namespace fs = std::filesystem;

namespace {

UniqueFd open_or_throw(const fs::path& path, int flags, std::string_view operation,
                       mode_t mode = 0) {
  UniqueFd fd(::open(path.c_str(), flags | O_CLOEXEC, mode));
  if (!fd) {
    throw Error::from_last_errno(operation).with("path", path.string());
  }
  return fd;
}

// Reads until EOF; sysfs files report size 4096 regardless of content, so size is not trusted.
std::string read_all(int fd, const fs::path& path, std::size_t max_bytes) {
  std::string data;
  char buffer[4096];
  while (data.size() < max_bytes) {
    const std::size_t want = std::min(sizeof buffer, max_bytes - data.size());
    const ssize_t n = ::read(fd, buffer, want);
    if (n < 0) {
      const int err = errno;
      if (err == EINTR) continue;
      throw Error::from_errno(err, "read").with("path", path.string());
    }
    if (n == 0) break;
    data.append(buffer, static_cast<std::size_t>(n));
  }
  return data;
}

}  // namespace

std::string read_file(const fs::path& path) {
  const UniqueFd fd = open_or_throw(path, O_RDONLY, "read");
  return read_all(fd.get(), path, static_cast<std::size_t>(64) << 20);
}

std::optional<std::string> read_file_if_exists(const fs::path& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    const int err = errno;
    if (err == ENOENT || err == ENOTDIR) return std::nullopt;
    throw Error::from_errno(err, "read").with("path", path.string());
  }
  return read_all(fd.get(), path, static_cast<std::size_t>(64) << 20);
}

std::optional<std::string> read_line_if_exists(const fs::path& path) {
  auto text = read_file_if_exists(path);
  if (!text) return std::nullopt;
  const auto end = text->find('\n');
  return std::string(trim(std::string_view(*text).substr(0, end)));
}

std::vector<std::uint8_t> read_bytes(const fs::path& path, std::size_t max_bytes) {
  const UniqueFd fd = open_or_throw(path, O_RDONLY, "read");
  const std::string data = read_all(fd.get(), path, max_bytes);
  return {data.begin(), data.end()};
}

std::optional<std::string> read_link_name(const fs::path& path) {
  std::error_code ec;
  const fs::path target = fs::read_symlink(path, ec);
  if (ec) {
    if (ec == std::errc::no_such_file_or_directory || ec == std::errc::not_a_directory) {
      return std::nullopt;
    }
    throw Error::from_errno(ec.value(), "readlink").with("path", path.string());
  }
  return target.filename().string();
}

std::vector<std::string> list_dir(const fs::path& path) {
  std::vector<std::string> names;
  std::error_code ec;
  for (fs::directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec)) {
    names.push_back(it->path().filename().string());
  }
  if (ec && ec != std::errc::no_such_file_or_directory && ec != std::errc::not_a_directory) {
    throw Error::from_errno(ec.value(), "list directory").with("path", path.string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

void write_attribute(const fs::path& path, std::string_view value) {
  const UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) {
    throw Error::from_last_errno("write")
        .with("path", path.string())
        .with("value", std::string(trim(value)));
  }
  // Kernel contract: sysfs store() handlers take the whole value in one write and return the
  // count consumed; a short count means the attribute did not accept the rest.
  const ssize_t n = ::write(fd.get(), value.data(), value.size());
  if (n < 0) {
    throw Error::from_last_errno("write")
        .with("path", path.string())
        .with("value", std::string(trim(value)));
  }
  if (static_cast<std::size_t>(n) != value.size()) {
    throw Error("write", "short write to a sysfs attribute")
        .with("path", path.string())
        .with("value", std::string(trim(value)));
  }
}

namespace {

void write_all(int fd, std::string_view contents, const fs::path& path) {
  std::size_t done = 0;
  while (done < contents.size()) {
    const ssize_t n = ::write(fd, contents.data() + done, contents.size() - done);
    if (n < 0) {
      const int err = errno;
      if (err == EINTR) continue;
      throw Error::from_errno(err, "write").with("path", path.string());
    }
    done += static_cast<std::size_t>(n);
  }
}

// write_file_durable() relative to an open directory.
void write_durable_at(int dir_fd, const fs::path& dir, std::string_view name,
                      std::string_view contents, unsigned mode) {
  const std::string tmp_name = std::string(name) + ".tmp";
  const fs::path tmp = dir / tmp_name;
  // A leftover of an interrupted write, or something planted: unlinkat removes a symlink itself,
  // never what it points to, and O_EXCL below refuses anything that appears meanwhile.
  if (::unlinkat(dir_fd, tmp_name.c_str(), 0) != 0 && errno != ENOENT) {
    throw Error::from_last_errno("remove").with("path", tmp.string());
  }
  {
    const UniqueFd fd(::openat(dir_fd, tmp_name.c_str(),
                               O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                               static_cast<mode_t>(mode)));
    if (!fd) throw Error::from_last_errno("create").with("path", tmp.string());
    try {
      // Exactly `mode`: the umask of whoever runs vfiokit is no say in who may read it.
      if (::fchmod(fd.get(), static_cast<mode_t>(mode)) != 0) {
        throw Error::from_last_errno("chmod").with("path", tmp.string());
      }
      write_all(fd.get(), contents, tmp);
      if (::fsync(fd.get()) != 0) throw Error::from_last_errno("fsync").with("path", tmp.string());
    } catch (const Error&) {
      ::unlinkat(dir_fd, tmp_name.c_str(), 0);
      throw;
    }
  }
  const std::string target(name);
  if (::renameat(dir_fd, tmp_name.c_str(), dir_fd, target.c_str()) != 0) {
    throw Error::from_last_errno("rename").with("path", (dir / target).string());
  }
  if (::fsync(dir_fd) != 0) throw Error::from_last_errno("fsync").with("path", dir.string());
}

Error untrusted_state(const fs::path& path, const std::string& reason) {
  return Error("state", path.string() + " " + reason +
                            ": vfiokit keeps its journal and lock only where nobody else can "
                            "plant or change files")
      .with("path", path.string())
      .hint(
          "see what is in it and who made it; if nothing there is vfiokit's, remove it (vfiokit "
          "makes it anew), else chown it to root and chmod go-w it");
}

// The reason an open state object fails untrusted_state_reason, thrown.
void require_trusted(int fd, const fs::path& path, bool directory) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw Error::from_last_errno("stat").with("path", path.string());
  if (auto reason = untrusted_state_reason(st, directory, ::geteuid())) {
    throw untrusted_state(path, *reason);
  }
}

// After an O_NOFOLLOW open failed: a symlink is refused by name, anything else is errno's.
[[noreturn]] void throw_open_failure(int err, int dir_fd, std::string_view name,
                                     const fs::path& path, std::string_view operation) {
  struct stat st {};
  const std::string entry(name);
  if ((err == ELOOP || err == ENOTDIR) &&
      ::fstatat(dir_fd, entry.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode)) {
    throw untrusted_state(path, "is a symbolic link");
  }
  throw Error::from_errno(err, std::string(operation)).with("path", path.string());
}

}  // namespace

void write_file_durable(const fs::path& path, std::string_view contents, unsigned mode) {
  const fs::path dir = path.has_parent_path() ? path.parent_path() : fs::path(".");
  const UniqueFd dir_fd = open_or_throw(dir, O_RDONLY | O_DIRECTORY, "open directory");
  write_durable_at(dir_fd.get(), dir, path.filename().string(), contents, mode);
}

std::optional<std::string> untrusted_state_reason(const struct stat& st, bool directory,
                                                  uid_t euid) {
  if (directory && !S_ISDIR(st.st_mode)) return "is not a directory";
  if (!directory) {
    if (!S_ISREG(st.st_mode)) return "is not a regular file";
    if (st.st_nlink != 1) return "has " + std::to_string(st.st_nlink) + " hard links";
  }
  if (st.st_uid != 0 && st.st_uid != euid) {
    return "is owned by uid " + std::to_string(st.st_uid) + ", neither root nor this user";
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return std::string("is writable by group or others (mode ") + mode + ")";
  }
  return std::nullopt;
}

std::optional<StateDir> StateDir::open_at(int parent, const fs::path& path, std::string_view name,
                                          std::optional<unsigned> create_mode) {
  const std::string entry(name);
  bool created = false;
  if (create_mode) {
    if (::mkdirat(parent, entry.c_str(), static_cast<mode_t>(*create_mode)) == 0) {
      created = true;
    } else if (errno != EEXIST) {
      throw Error::from_last_errno("create state folder").with("path", path.string());
    }
  }
  UniqueFd fd(::openat(parent, entry.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) {
    const int err = errno;
    if (err == ENOENT && !create_mode) return std::nullopt;
    throw_open_failure(err, parent, name, path, "open state folder");
  }
  // mkdir's mode passes through the umask (0777 under umask 000); the folder gets exactly this.
  if (created && ::fchmod(fd.get(), static_cast<mode_t>(*create_mode)) != 0) {
    throw Error::from_last_errno("chmod").with("path", path.string());
  }
  require_trusted(fd.get(), path, true);
  return StateDir(std::move(fd), path);
}

StateDir StateDir::create(const fs::path& path, unsigned mode) {
  const fs::path parent = path.has_parent_path() ? path.parent_path() : fs::path(".");
  std::error_code ec;
  fs::create_directories(parent, ec);
  if (ec) throw Error::from_errno(ec.value(), "create folder").with("path", parent.string());
  const UniqueFd parent_fd = open_or_throw(parent, O_RDONLY | O_DIRECTORY, "open directory");
  return *open_at(parent_fd.get(), path, path.filename().string(), mode);
}

std::optional<StateDir> StateDir::open(const fs::path& path) {
  const fs::path parent = path.has_parent_path() ? path.parent_path() : fs::path(".");
  const UniqueFd parent_fd(::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!parent_fd) {
    const int err = errno;
    if (err == ENOENT) return std::nullopt;
    throw Error::from_errno(err, "open directory").with("path", parent.string());
  }
  return open_at(parent_fd.get(), path, path.filename().string(), std::nullopt);
}

StateDir StateDir::create_subdir(std::string_view name, unsigned mode) const {
  return *open_at(fd_.get(), path_ / name, name, mode);
}

std::optional<StateDir> StateDir::open_subdir(std::string_view name) const {
  return open_at(fd_.get(), path_ / name, name, std::nullopt);
}

UniqueFd StateDir::open_file(std::string_view name, unsigned mode) const {
  const std::string entry(name);
  const fs::path path = path_ / entry;
  // O_NONBLOCK: a FIFO or device node must not hang or act on the open; it is refused below.
  UniqueFd fd(::openat(fd_.get(), entry.c_str(),
                       O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC,
                       static_cast<mode_t>(mode)));
  if (!fd) throw_open_failure(errno, fd_.get(), name, path, "open");
  require_trusted(fd.get(), path, false);
  return fd;
}

std::optional<std::string> StateDir::read_file(std::string_view name, std::size_t max_bytes) const {
  const std::string entry(name);
  const fs::path path = path_ / entry;
  const UniqueFd fd(
      ::openat(fd_.get(), entry.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (!fd) {
    const int err = errno;
    if (err == ENOENT) return std::nullopt;
    throw_open_failure(err, fd_.get(), name, path, "read");
  }
  require_trusted(fd.get(), path, false);
  std::string data = read_all(fd.get(), path, max_bytes + 1);
  if (data.size() > max_bytes) {
    throw Error("read", path.string() + " is longer than " + std::to_string(max_bytes) + " bytes")
        .with("path", path.string());
  }
  return data;
}

void StateDir::write_file_durable(std::string_view name, std::string_view contents,
                                  unsigned mode) const {
  write_durable_at(fd_.get(), path_, name, contents, mode);
}

bool StateDir::remove(std::string_view name) const {
  const std::string entry(name);
  if (::unlinkat(fd_.get(), entry.c_str(), 0) == 0) return true;
  if (errno == ENOENT) return false;
  throw Error::from_last_errno("remove").with("path", (path_ / entry).string());
}

std::vector<std::string> StateDir::list() const {
  // fdopendir takes over its fd; a duplicate keeps ours.
  UniqueFd copy(::fcntl(fd_.get(), F_DUPFD_CLOEXEC, 0));
  if (!copy) throw Error::from_last_errno("list directory").with("path", path_.string());
  DIR* dir = ::fdopendir(copy.get());
  if (dir == nullptr) throw Error::from_last_errno("list directory").with("path", path_.string());
  [[maybe_unused]] const int owned_by_dir = copy.release();
  ::rewinddir(dir);
  std::vector<std::string> names;
  while (const dirent* entry = ::readdir(dir)) {
    const std::string_view name = entry->d_name;
    if (name != "." && name != "..") names.emplace_back(name);
  }
  ::closedir(dir);
  std::sort(names.begin(), names.end());
  return names;
}

std::string_view trim(std::string_view text) noexcept {
  const auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
  return text;
}

std::optional<std::uint64_t> parse_uint(std::string_view text, int base) noexcept {
  text = trim(text);
  if (base == 16 && (text.starts_with("0x") || text.starts_with("0X"))) text.remove_prefix(2);
  if (text.empty()) return std::nullopt;
  std::uint64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value, base);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

std::optional<std::string> find_key_value(std::string_view text, std::string_view key) {
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::size_t end = std::min(text.find('\n', pos), text.size());
    const std::string_view line = text.substr(pos, end - pos);
    if (line.starts_with(key)) {
      // "Key:\tvalue" (/proc/self/status) or "key\t: value" (/proc/cpuinfo).
      std::size_t colon = key.size();
      while (colon < line.size() && (line[colon] == ' ' || line[colon] == '\t')) ++colon;
      if (colon < line.size() && line[colon] == ':') {
        return std::string(trim(line.substr(colon + 1)));
      }
    }
    pos = end + 1;
  }
  return std::nullopt;
}

}  // namespace vfiokit
