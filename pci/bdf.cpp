#include "vfiokit/pci/bdf.h"

#include <charconv>
#include <cstdio>

#include "vfiokit/base/error.h"

namespace vfiokit::pci {
namespace {

// Parses exactly `text` as hex, between 1 and max_digits digits, no prefix or sign.
std::optional<std::uint32_t> parse_hex_field(std::string_view text, std::size_t max_digits) {
  if (text.empty() || text.size() > max_digits) return std::nullopt;
  std::uint32_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value, 16);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

}  // namespace

std::string Bdf::to_string() const {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%04x:%02x:%02x.%x", domain, bus, device, function);
  return buffer;
}

std::optional<Bdf> parse_bdf(std::string_view text) noexcept {
  // Split from the right: ".F", then ":DD", then ":BB", and an optional "DDDD:" before it.
  const std::size_t dot = text.rfind('.');
  if (dot == std::string_view::npos) return std::nullopt;
  const std::string_view function_text = text.substr(dot + 1);
  const std::string_view head = text.substr(0, dot);

  const std::size_t colon2 = head.rfind(':');
  if (colon2 == std::string_view::npos) return std::nullopt;
  const std::string_view device_text = head.substr(colon2 + 1);
  const std::string_view bus_and_domain = head.substr(0, colon2);

  const std::size_t colon1 = bus_and_domain.rfind(':');
  const std::string_view bus_text =
      colon1 == std::string_view::npos ? bus_and_domain : bus_and_domain.substr(colon1 + 1);
  const std::optional<std::string_view> domain_text =
      colon1 == std::string_view::npos ? std::nullopt
                                       : std::optional(bus_and_domain.substr(0, colon1));

  const auto function = parse_hex_field(function_text, 1);
  const auto device = parse_hex_field(device_text, 2);
  const auto bus = parse_hex_field(bus_text, 2);
  const auto domain = domain_text ? parse_hex_field(*domain_text, 8) : std::optional(0u);
  if (!function || !device || !bus || !domain) return std::nullopt;
  if (*function > 7 || *device > 31) return std::nullopt;
  return Bdf{*domain, static_cast<std::uint8_t>(*bus), static_cast<std::uint8_t>(*device),
             static_cast<std::uint8_t>(*function)};
}

Bdf parse_bdf_or_throw(std::string_view text) {
  if (auto bdf = parse_bdf(text)) return *bdf;
  throw Error("parse BDF", "'" + std::string(text) + "' is not a PCI address")
      .kind(ErrorKind::usage)
      .hint(
          "write it as DOMAIN:BUS:DEVICE.FUNCTION in hex, e.g. 0000:01:00.0 (see `vfiokit list`)");
}

}  // namespace vfiokit::pci
