// JSON for --json: one document type, std::optional as its value or null, the hex convention,
// and the one function that prints a document. Text from the host, a device or a guest (a mount
// point, a driver name, a payload's log) need not be UTF-8; such bytes are replaced (U+FFFD),
// never a reason to abort. docs/json.md is the contract; docs/schema/ holds its schemas.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace nlohmann {

template <typename T>
struct adl_serializer<std::optional<T>> {
  template <typename BasicJson>
  static void to_json(BasicJson& json, const std::optional<T>& value) {
    if (value) {
      json = *value;
    } else {
      json = nullptr;
    }
  }
};

}  // namespace nlohmann

namespace vfiokit::cli {

// Keys stay in the order they were added, so documents read like the text output.
using Json = nlohmann::ordered_json;

// The contract's version, first in every document. It changes only when a document changes in a
// way an existing reader could misread: a key removed or renamed, a value's type or meaning
// changed. New keys and new enum values keep it (readers ignore keys they do not know).
inline constexpr int kJsonSchemaVersion = 1;

// "0x" and lower-case hex digits, zero-padded to `digits` (a register field's width: 4 for PCI
// IDs, 6 for a class code, 2 for a revision); 0 pads nothing (addresses, offsets, masks).
std::string json_hex(std::uint64_t value, int digits = 0);

// {"schema_version": N} followed by the keys of `document` (an object), in their order.
Json versioned(const Json& document);

// versioned(`document`), indented, then a newline. Never throws on the text inside it.
void print_json(std::ostream& out, const Json& document);

}  // namespace vfiokit::cli
