// The JSON Schema subset validator (tools/vfiokit/json_schema.h), keyword by keyword, and the
// contract's own schemas (docs/schema/): they parse, every $ref resolves, and only keywords the
// validator knows are used.
#include "tools/vfiokit/json_schema.h"

#include <gtest/gtest.h>

namespace vfiokit::cli {
namespace {

// One schema, "s.json", beside a "d.json" of shared definitions.
std::vector<SchemaMismatch> check(const Json& schema, const Json& document) {
  const SchemaSet schemas{
      {"s.json", schema},
      {"d.json", Json::parse(R"({"$defs": {"byte": {"type": "integer"}, "hex": {"$ref":
                                "#/$defs/str"}, "str": {"type": "string"}}})")}};
  return validate_json(schemas, "s.json", document);
}

bool accepts(const char* schema, const char* document) {
  return check(Json::parse(schema), Json::parse(document)).empty();
}

TEST(JsonSchema, Type) {
  EXPECT_TRUE(accepts(R"({"type": "string"})", R"("x")"));
  EXPECT_FALSE(accepts(R"({"type": "string"})", "1"));
  EXPECT_TRUE(accepts(R"({"type": "integer"})", "3"));
  EXPECT_TRUE(accepts(R"({"type": "integer"})", "3.0"));
  EXPECT_FALSE(accepts(R"({"type": "integer"})", "3.5"));
  EXPECT_TRUE(accepts(R"({"type": "number"})", "3.5"));
  EXPECT_FALSE(accepts(R"({"type": "boolean"})", "0"));
  EXPECT_TRUE(accepts(R"({"type": ["string", "null"]})", "null"));
  EXPECT_FALSE(accepts(R"({"type": ["string", "null"]})", "{}"));
  EXPECT_TRUE(accepts(R"({"type": "array"})", "[]"));
  EXPECT_FALSE(accepts(R"({"type": "object"})", "[]"));
}

TEST(JsonSchema, PropertiesRequiredAndAdditionalProperties) {
  const char* schema = R"({"type": "object", "properties": {"a": {"type": "integer"}},
                           "required": ["a"], "additionalProperties": false})";
  EXPECT_TRUE(accepts(schema, R"({"a": 1})"));
  EXPECT_FALSE(accepts(schema, R"({"a": "1"})"));
  EXPECT_FALSE(accepts(schema, R"({})"));
  EXPECT_FALSE(accepts(schema, R"({"a": 1, "b": 2})"));
  // Without additionalProperties any other key goes; with a schema, it must match it.
  EXPECT_TRUE(accepts(R"({"properties": {"a": {"type": "integer"}}})", R"({"b": "x"})"));
  EXPECT_TRUE(accepts(R"({"additionalProperties": {"type": "string"}})", R"({"b": "x"})"));
  EXPECT_FALSE(accepts(R"({"additionalProperties": {"type": "string"}})", R"({"b": 1})"));
}

TEST(JsonSchema, ItemsEnumConstAndPattern) {
  EXPECT_TRUE(accepts(R"({"items": {"type": "integer"}})", "[1, 2]"));
  EXPECT_FALSE(accepts(R"({"items": {"type": "integer"}})", R"([1, "2"])"));
  EXPECT_TRUE(accepts(R"({"enum": ["a", 1]})", "1"));
  EXPECT_FALSE(accepts(R"({"enum": ["a", 1]})", R"("b")"));
  EXPECT_TRUE(accepts(R"({"const": 1})", "1"));
  EXPECT_FALSE(accepts(R"({"const": 1})", "2"));
  EXPECT_TRUE(accepts(R"({"pattern": "^0x[0-9a-f]{4}$"})", R"("0x10de")"));
  EXPECT_FALSE(accepts(R"({"pattern": "^0x[0-9a-f]{4}$"})", R"("0x10DE")"));
  EXPECT_FALSE(accepts(R"({"pattern": "^0x[0-9a-f]{4}$"})", R"("10de")"));
  EXPECT_TRUE(accepts(R"({"pattern": "b"})", R"("abc")"));  // a search, as JSON Schema says
  EXPECT_TRUE(accepts(R"({"pattern": "^x$"})", "1"));       // applies to strings only
}

TEST(JsonSchema, RefsInTheSameFileAndAnother) {
  EXPECT_TRUE(accepts(R"({"$defs": {"n": {"type": "integer"}}, "$ref": "#/$defs/n"})", "1"));
  EXPECT_FALSE(accepts(R"({"$defs": {"n": {"type": "integer"}}, "$ref": "#/$defs/n"})", "true"));
  EXPECT_TRUE(accepts(R"({"$ref": "d.json#/$defs/byte"})", "7"));
  EXPECT_FALSE(accepts(R"({"$ref": "d.json#/$defs/byte"})", R"("7")"));
  // "#/..." inside d.json means d.json, wherever the reference came from.
  EXPECT_TRUE(accepts(R"({"$ref": "d.json#/$defs/hex"})", R"("0x1")"));
  EXPECT_FALSE(accepts(R"({"$ref": "d.json#/$defs/hex"})", "1"));
  const auto missing = check(Json::parse(R"({"$ref": "d.json#/$defs/nothing"})"), Json(1));
  ASSERT_EQ(missing.size(), 1u);
  EXPECT_NE(missing[0].message.find("unresolved $ref"), std::string::npos);
}

TEST(JsonSchema, OneOfNeedsExactlyOneAndAnyOfAtLeastOne) {
  const char* one_of = R"({"oneOf": [{"type": "integer"}, {"type": "number"}, {"const": "a"}]})";
  EXPECT_TRUE(accepts(one_of, "1.5"));  // a number only
  EXPECT_FALSE(accepts(one_of, "1"));   // an integer is a number too: two match
  EXPECT_TRUE(accepts(one_of, R"("a")"));
  EXPECT_FALSE(accepts(one_of, R"("b")"));
  const char* any_of = R"({"anyOf": [{"type": "integer"}, {"type": "number"}]})";
  EXPECT_TRUE(accepts(any_of, "1"));
  EXPECT_FALSE(accepts(any_of, R"("1")"));
}

TEST(JsonSchema, EachMismatchHasTheJsonPointerOfItsPlace) {
  const Json schema = Json::parse(R"({"properties": {"a/b": {"items": {"properties": {
      "c": {"type": "string"}}, "additionalProperties": false}}}})");
  const auto mismatches =
      check(schema, Json::parse(R"({"a/b": [{"c": "ok"}, {"c": 1, "d~": 2}]})"));
  ASSERT_EQ(mismatches.size(), 2u) << describe(mismatches);
  EXPECT_EQ(mismatches[0].pointer, "/a~1b/1/c");
  EXPECT_EQ(mismatches[1].pointer, "/a~1b/1/d~0");
  EXPECT_NE(describe(mismatches).find("/a~1b/1/c: expected \"string\", got integer"),
            std::string::npos)
      << describe(mismatches);
}

TEST(JsonSchema, TheSchemaSetCheckFindsBadRefsAndUnknownKeywords) {
  const SchemaSet schemas{
      {"a.json", Json::parse(R"({"properties": {"x": {"$ref": "b.json#/$defs/y"}},
                                 "minLength": 1, "$defs": {"z": {"$ref": "#/$defs/none"}}})")},
      {"b.json", Json::parse(R"({"$defs": {}})")}};
  const auto problems = check_schema_set(schemas);
  ASSERT_EQ(problems.size(), 3u);
  EXPECT_EQ(problems[0], "a.json /properties/x/$ref: $ref b.json#/$defs/y resolves nowhere");
  EXPECT_EQ(problems[1], "a.json /minLength: keyword outside the supported subset");
  EXPECT_EQ(problems[2], "a.json /$defs/z/$ref: $ref #/$defs/none resolves nowhere");
}

TEST(JsonSchema, TheContractsSchemasParseAndEveryRefResolves) {
  const SchemaSet& schemas = bundled_schemas();
  for (const char* name : {"defs.json", "error.json", "doctor.json", "list.json", "show.json",
                           "check.json", "bind.json", "unbind.json", "restore.json", "persist.json",
                           "info.json", "selftest.json", "launch.json"}) {
    EXPECT_TRUE(schemas.contains(name)) << name;
  }
  const auto problems = check_schema_set(schemas);
  EXPECT_TRUE(problems.empty()) << ::testing::PrintToString(problems);
  for (const auto& [name, schema] : schemas) {
    EXPECT_EQ(schema.value("$schema", ""), "https://json-schema.org/draft/2020-12/schema") << name;
    EXPECT_EQ(schema.value("$id", ""), name);
  }
}

}  // namespace
}  // namespace vfiokit::cli
