#include "tools/vfiokit/json_schema.h"

#include <algorithm>
#include <cmath>
#include <regex>
#include <set>

namespace vfiokit::cli {
namespace {

const std::set<std::string, std::less<>>& known_keywords() {
  static const std::set<std::string, std::less<>> keywords{
      "$schema",     "$id",  "$defs",      "$ref",     "title",
      "description", "type", "properties", "required", "additionalProperties",
      "items",       "enum", "const",      "pattern",  "oneOf",
      "anyOf"};
  return keywords;
}

std::string escape_token(std::string_view token) {
  std::string out;
  for (const char c : token) {
    if (c == '~') {
      out += "~0";
    } else if (c == '/') {
      out += "~1";
    } else {
      out += c;
    }
  }
  return out;
}

std::string type_of(const Json& value) {
  switch (value.type()) {
    case Json::value_t::null:
      return "null";
    case Json::value_t::boolean:
      return "boolean";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
      return "integer";
    case Json::value_t::number_float:
      return "number";
    case Json::value_t::string:
      return "string";
    case Json::value_t::array:
      return "array";
    case Json::value_t::object:
      return "object";
    default:
      return "unknown";
  }
}

bool has_type(const Json& value, std::string_view type) {
  if (type == "number") return value.is_number();
  if (type == "integer") {
    if (value.is_number_integer()) return true;
    if (!value.is_number_float()) return false;
    const double d = value.get<double>();
    return std::isfinite(d) && d == std::floor(d);
  }
  return type_of(value) == type;
}

std::string short_text(const Json& value) {
  std::string text = value.dump(-1, ' ', false, Json::error_handler_t::replace);
  if (text.size() > 60) text = text.substr(0, 57) + "...";
  return text;
}

struct Resolved {
  const Json* schema = nullptr;
  std::string file;
};

// "FILE#POINTER", "#POINTER" (in `file`) or "FILE" (its root).
Resolved resolve(const SchemaSet& schemas, const std::string& file, std::string_view ref) {
  const std::size_t hash = ref.find('#');
  const std::string target(hash == std::string_view::npos ? ref : ref.substr(0, hash));
  const std::string pointer(hash == std::string_view::npos ? "" : ref.substr(hash + 1));
  const std::string name = target.empty() ? file : target;
  const auto it = schemas.find(name);
  if (it == schemas.end()) return {};
  try {
    const Json::json_pointer at(pointer);
    if (!it->second.contains(at)) return {};
    return {&it->second.at(at), name};
  } catch (const Json::exception&) {
    return {};
  }
}

class Validator {
 public:
  explicit Validator(const SchemaSet& schemas) : schemas_(schemas) {}

  void check(const Json& schema, const std::string& file, const Json& value,
             const std::string& pointer, std::vector<SchemaMismatch>& out) {
    if (schema.is_boolean()) {
      if (!schema.get<bool>()) out.push_back({pointer, "no value is allowed here"});
      return;
    }
    if (!schema.is_object()) {
      out.push_back({pointer, "the schema here is not an object or a boolean"});
      return;
    }
    if (const auto ref = schema.find("$ref"); ref != schema.end()) {
      const Resolved target = resolve(schemas_, file, ref->get<std::string>());
      if (target.schema == nullptr) {
        out.push_back({pointer, "unresolved $ref " + ref->get<std::string>()});
      } else if (++depth_ > kMaxDepth) {
        out.push_back({pointer, "$ref nests too deep (a cycle?)"});
      } else {
        check(*target.schema, target.file, value, pointer, out);
      }
      if (target.schema != nullptr) --depth_;
    }
    check_type(schema, value, pointer, out);
    if (const auto c = schema.find("const"); c != schema.end() && *c != value) {
      out.push_back({pointer, "expected " + short_text(*c) + ", got " + short_text(value)});
    }
    if (const auto e = schema.find("enum"); e != schema.end()) {
      if (std::find(e->begin(), e->end(), value) == e->end()) {
        out.push_back({pointer, short_text(value) + " is not one of " + short_text(*e)});
      }
    }
    if (const auto p = schema.find("pattern"); p != schema.end() && value.is_string()) {
      const std::regex pattern(p->get<std::string>(), std::regex::ECMAScript);
      if (!std::regex_search(value.get<std::string>(), pattern)) {
        out.push_back({pointer, short_text(value) + " does not match " + p->get<std::string>()});
      }
    }
    if (value.is_object()) check_object(schema, file, value, pointer, out);
    if (const auto items = schema.find("items"); items != schema.end() && value.is_array()) {
      for (std::size_t i = 0; i < value.size(); ++i) {
        check(*items, file, value[i], pointer + "/" + std::to_string(i), out);
      }
    }
    check_alternatives(schema, file, value, pointer, out);
  }

 private:
  static constexpr int kMaxDepth = 64;

  static void check_type(const Json& schema, const Json& value, const std::string& pointer,
                         std::vector<SchemaMismatch>& out) {
    const auto type = schema.find("type");
    if (type == schema.end()) return;
    const std::vector<std::string> types = type->is_array()
                                               ? type->get<std::vector<std::string>>()
                                               : std::vector<std::string>{type->get<std::string>()};
    const bool ok = std::any_of(types.begin(), types.end(),
                                [&](const std::string& t) { return has_type(value, t); });
    if (!ok) out.push_back({pointer, "expected " + short_text(*type) + ", got " + type_of(value)});
  }

  void check_object(const Json& schema, const std::string& file, const Json& value,
                    const std::string& pointer, std::vector<SchemaMismatch>& out) {
    if (const auto required = schema.find("required"); required != schema.end()) {
      for (const auto& key : *required) {
        if (!value.contains(key.get<std::string>())) {
          out.push_back({pointer, "missing key \"" + key.get<std::string>() + "\""});
        }
      }
    }
    const auto properties = schema.find("properties");
    const auto additional = schema.find("additionalProperties");
    for (const auto& [key, member] : value.items()) {
      const std::string at = pointer + "/" + escape_token(key);
      if (properties != schema.end() && properties->contains(key)) {
        check((*properties)[key], file, member, at, out);
      } else if (additional != schema.end()) {
        if (additional->is_boolean() && !additional->get<bool>()) {
          out.push_back({at, "key \"" + key + "\" is not in the schema"});
        } else {
          check(*additional, file, member, at, out);
        }
      }
    }
  }

  void check_alternatives(const Json& schema, const std::string& file, const Json& value,
                          const std::string& pointer, std::vector<SchemaMismatch>& out) {
    for (const char* keyword : {"oneOf", "anyOf"}) {
      const auto list = schema.find(keyword);
      if (list == schema.end()) continue;
      std::size_t matches = 0;
      std::vector<std::string> why;
      for (const auto& alternative : *list) {
        std::vector<SchemaMismatch> errors;
        check(alternative, file, value, pointer, errors);
        if (errors.empty()) {
          ++matches;
        } else {
          why.push_back(errors.front().pointer + ": " + errors.front().message);
        }
      }
      const bool one_of = std::string_view(keyword) == "oneOf";
      if (matches == 0) {
        std::string message = std::string("matches none of ") + keyword;
        for (const auto& reason : why) message += "; " + reason;
        out.push_back({pointer, message});
      } else if (one_of && matches > 1) {
        out.push_back({pointer, "matches " + std::to_string(matches) + " of oneOf, not one"});
      }
    }
  }

  const SchemaSet& schemas_;
  int depth_ = 0;
};

void check_schema_node(const SchemaSet& schemas, const std::string& file, const Json& schema,
                       const std::string& pointer, std::vector<std::string>& problems) {
  if (schema.is_boolean()) return;
  if (!schema.is_object()) {
    problems.push_back(file + " " + pointer + ": a schema must be an object or a boolean");
    return;
  }
  for (const auto& [key, member] : schema.items()) {
    const std::string at = pointer + "/" + escape_token(key);
    if (!known_keywords().contains(key)) {
      problems.push_back(file + " " + at + ": keyword outside the supported subset");
      continue;
    }
    if (key == "$ref" && resolve(schemas, file, member.get<std::string>()).schema == nullptr) {
      problems.push_back(file + " " + at + ": $ref " + member.get<std::string>() +
                         " resolves nowhere");
    } else if (key == "pattern") {
      try {
        const std::regex pattern(member.get<std::string>(), std::regex::ECMAScript);
      } catch (const std::regex_error&) {
        problems.push_back(file + " " + at + ": not a regular expression");
      }
    } else if (key == "items" || key == "additionalProperties") {
      check_schema_node(schemas, file, member, at, problems);
    } else if (key == "properties" || key == "$defs") {
      for (const auto& [name, sub] : member.items()) {
        check_schema_node(schemas, file, sub, at + "/" + escape_token(name), problems);
      }
    } else if (key == "oneOf" || key == "anyOf") {
      for (std::size_t i = 0; i < member.size(); ++i) {
        check_schema_node(schemas, file, member[i], at + "/" + std::to_string(i), problems);
      }
    }
  }
}

}  // namespace

std::vector<SchemaMismatch> validate_json(const SchemaSet& schemas, std::string_view schema,
                                          const Json& document) {
  std::vector<SchemaMismatch> out;
  const auto it = schemas.find(schema);
  if (it == schemas.end()) {
    out.push_back({"", "no schema " + std::string(schema)});
    return out;
  }
  Validator validator(schemas);
  validator.check(it->second, it->first, document, "", out);
  return out;
}

std::vector<std::string> check_schema_set(const SchemaSet& schemas) {
  std::vector<std::string> problems;
  for (const auto& [name, schema] : schemas) check_schema_node(schemas, name, schema, "", problems);
  return problems;
}

std::string describe(const std::vector<SchemaMismatch>& mismatches) {
  std::string text;
  for (const auto& m : mismatches) {
    text += (m.pointer.empty() ? std::string("(document)") : m.pointer) + ": " + m.message + "\n";
  }
  return text;
}

const SchemaSet& bundled_schemas() {
  static const SchemaSet schemas = [] {
    SchemaSet set;
    for (const auto& schema : bundled_schema_texts()) {
      set.emplace(std::string(schema.name), Json::parse(schema.text));
    }
    return set;
  }();
  return schemas;
}

}  // namespace vfiokit::cli
