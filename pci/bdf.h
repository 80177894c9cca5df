// A PCI function address: domain:bus:device.function, as sysfs names it ("0000:00:03.0").
#pragma once

#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace vfiokit::pci {

struct Bdf {
  std::uint32_t domain = 0;  // sysfs allows up to 0xffff; VMD domains go beyond, up to 0xffffffff
  std::uint8_t bus = 0;
  std::uint8_t device = 0;    // 0..31
  std::uint8_t function = 0;  // 0..7

  // "0000:00:03.0"; domains above 0xffff print with as many digits as they need.
  [[nodiscard]] std::string to_string() const;
  auto operator<=>(const Bdf&) const = default;
};

// Accepts "DDDD:BB:DD.F" and the short "BB:DD.F" (domain 0), hex digits in either case.
// Returns nullopt for anything else: wrong separators, out-of-range device or function, extra
// characters, empty fields.
std::optional<Bdf> parse_bdf(std::string_view text) noexcept;

// parse_bdf, or a usage Error that names the text and shows the expected form.
Bdf parse_bdf_or_throw(std::string_view text);

}  // namespace vfiokit::pci
