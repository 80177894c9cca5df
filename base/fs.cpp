#include "base/fs.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>

#include "base/error.h"
#include "base/unique_fd.h"

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

void write_file_durable(const fs::path& path, std::string_view contents, unsigned mode) {
  const fs::path tmp = path.string() + ".tmp";
  {
    const UniqueFd fd =
        open_or_throw(tmp, O_WRONLY | O_CREAT | O_TRUNC, "create", static_cast<mode_t>(mode));
    std::size_t done = 0;
    while (done < contents.size()) {
      const ssize_t n = ::write(fd.get(), contents.data() + done, contents.size() - done);
      if (n < 0) {
        const int err = errno;
        if (err == EINTR) continue;
        throw Error::from_errno(err, "write").with("path", tmp.string());
      }
      done += static_cast<std::size_t>(n);
    }
    if (::fsync(fd.get()) != 0) {
      throw Error::from_last_errno("fsync").with("path", tmp.string());
    }
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    throw Error::from_last_errno("rename").with("path", path.string());
  }
  const fs::path dir = path.has_parent_path() ? path.parent_path() : fs::path(".");
  const UniqueFd dir_fd = open_or_throw(dir, O_RDONLY | O_DIRECTORY, "open directory");
  if (::fsync(dir_fd.get()) != 0) {
    throw Error::from_last_errno("fsync").with("path", dir.string());
  }
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
