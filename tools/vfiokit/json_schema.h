// Checking --json documents against the contract's JSON Schema files (docs/schema/, draft
// 2020-12). Only the subset the contract uses: type, properties, required,
// additionalProperties, items, enum, const, pattern, $defs/$ref, oneOf, anyOf (and the
// annotations $schema, $id, title, description). Pure functions over documents, so unit and rig
// tests check real output with them.
#pragma once

#include <functional>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tools/vfiokit/json.h"

namespace vfiokit::cli {

// Schema documents by file name ("defs.json"); "$ref": "defs.json#/$defs/device" names one of
// them, "#/$defs/x" the document it is in.
using SchemaSet = std::map<std::string, Json, std::less<>>;

struct SchemaMismatch {
  std::string pointer;  // JSON pointer into the checked document ("" is the whole document)
  std::string message;
};

// Every place `document` breaks schema file `schema` of `schemas` (empty: it conforms). A $ref
// that does not resolve is reported as a mismatch at the place it was needed.
std::vector<SchemaMismatch> validate_json(const SchemaSet& schemas, std::string_view schema,
                                          const Json& document);

// What is wrong with the schemas themselves: a $ref that resolves nowhere, a keyword outside the
// subset above (which validate_json would silently ignore). Each as "FILE POINTER: problem".
std::vector<std::string> check_schema_set(const SchemaSet& schemas);

// "/groups/1/devices/0: expected string, got null" lines, for test messages.
std::string describe(const std::vector<SchemaMismatch>& mismatches);

struct BundledSchema {
  std::string_view name;  // "bind.json"
  std::string_view text;
};
// docs/schema/*.json as they were at build time (generated into the build, bundled_schemas.cpp):
// what `cmake --install` puts in share/vfiokit/schema, and what the rig tests check against.
std::span<const BundledSchema> bundled_schema_texts();
// The same, parsed once.
const SchemaSet& bundled_schemas();

}  // namespace vfiokit::cli
