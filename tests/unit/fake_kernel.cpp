#include "tests/unit/fake_kernel.h"

#include <algorithm>

#include "vfiokit/base/error.h"
#include "vfiokit/base/fs.h"
#include "vfiokit/iommu/group.h"

namespace vfiokit::test {
namespace fs = std::filesystem;

FakeKernel::FakeKernel(HostPaths paths) : paths_(std::move(paths)) {
  for (const auto& bdf : list_dir(paths_.sys / "bus/pci/devices")) {
    if (auto driver = driver_of(bdf)) default_driver_[bdf] = *driver;
  }
}

fs::path FakeKernel::device(const std::string& bdf) const {
  return paths_.sys / "bus/pci/devices" / bdf;
}

std::optional<std::string> FakeKernel::driver_of(const std::string& bdf) const {
  return read_link_name(device(bdf) / "driver");
}

std::optional<std::string> FakeKernel::override_of(const std::string& bdf) const {
  auto value = read_line_if_exists(device(bdf) / "driver_override");
  if (!value || *value == "(null)" || value->empty()) return std::nullopt;
  return value;
}

void FakeKernel::bind_driver(const std::string& bdf, const std::string& driver) {
  fs::create_directory_symlink(paths_.sys / "bus/pci/drivers" / driver, device(bdf) / "driver");
  if (iommu::is_vfio_driver(driver)) {
    if (auto group = read_link_name(device(bdf) / "iommu_group")) {
      fs::create_directories(paths_.dev / "vfio");
      write_file_durable(paths_.dev / "vfio" / *group, "");
    }
  }
}

void FakeKernel::unbind_driver(const std::string& bdf) {
  const bool was_vfio = iommu::is_vfio_driver(driver_of(bdf).value_or(""));
  fs::remove(device(bdf) / "driver");
  if (!was_vfio) return;
  // The group node goes when no member is on a VFIO driver any more.
  if (auto group = read_link_name(device(bdf) / "iommu_group")) {
    for (const auto& member : list_dir(paths_.sys / "kernel/iommu_groups" / *group / "devices")) {
      if (iommu::is_vfio_driver(driver_of(member).value_or(""))) return;
    }
    fs::remove(paths_.dev / "vfio" / *group);
  }
}

void FakeKernel::write(const fs::path& attribute, std::string_view value,
                       std::optional<std::chrono::milliseconds>) {
  const std::string relative = attribute.lexically_relative(paths_.sys).string();
  const std::string text(trim(value));
  const std::size_t index = writes.size();
  writes.push_back({relative, std::string(value)});
  if (fail_write_at == index) {
    throw Error::from_errno(fail_errno, "write").with("path", attribute.string());
  }
  auto fail = [&](int err) {
    throw Error::from_errno(err, "write").with("path", attribute.string()).with("value", text);
  };
  if (relative.ends_with("/driver_override")) {
    write_file_durable(attribute, text.empty() ? "(null)\n" : text + "\n");
  } else if (relative == "bus/pci/drivers_probe") {
    if (!fs::exists(device(text))) fail(ENODEV);
    if (driver_of(text)) return;
    const auto wanted = override_of(text);
    const std::string driver = wanted                        ? *wanted
                               : default_driver_.count(text) ? default_driver_[text]
                                                             : "";
    if (driver.empty() || !fs::exists(paths_.sys / "bus/pci/drivers" / driver)) return;
    if (std::find(refusing_drivers.begin(), refusing_drivers.end(), driver) !=
        refusing_drivers.end())
      return;
    bind_driver(text, driver);
  } else if (relative.starts_with("bus/pci/drivers/") && relative.ends_with("/unbind")) {
    const std::string driver = fs::path(relative).parent_path().filename().string();
    if (driver_of(text) != driver) fail(ENODEV);
    unbind_driver(text);
  } else if (relative.starts_with("bus/pci/drivers/") && relative.ends_with("/bind")) {
    const std::string driver = fs::path(relative).parent_path().filename().string();
    if (driver_of(text)) fail(EBUSY);
    const auto wanted = override_of(text);
    const bool matches =
        wanted ? *wanted == driver : default_driver_.count(text) && default_driver_[text] == driver;
    if (!matches) fail(ENODEV);
    bind_driver(text, driver);
  } else {
    fail(EACCES);  // a write the fake does not model is a test bug
  }
}

void FakeKernel::load_module(std::string_view name) {
  modules_loaded.emplace_back(name);
  const fs::path dir = paths_.sys / "bus/pci/drivers" / name;
  fs::create_directories(dir);
  write_file_durable(dir / "bind", "");
  write_file_durable(dir / "unbind", "");
}

void FakeKernel::set_owner(const fs::path& node, uid_t uid, gid_t gid) {
  owners_set.push_back(node.lexically_relative(paths_.dev).string() + ' ' + std::to_string(uid) +
                       ':' + std::to_string(gid));
}

void FakeKernel::sleep(std::chrono::milliseconds) { ++sleeps; }

}  // namespace vfiokit::test
