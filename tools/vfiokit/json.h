// JSON for --json: one document type, std::optional as its value or null, and the one function
// that prints a document. Text from the host, a device or a guest (a mount point, a driver name,
// a payload's log) need not be UTF-8; such bytes are replaced (U+FFFD), never a reason to abort.
#pragma once

#include <iosfwd>
#include <optional>

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

// `document`, indented, then a newline. Never throws on the text inside it.
void print_json(std::ostream& out, const Json& document);

}  // namespace vfiokit::cli
