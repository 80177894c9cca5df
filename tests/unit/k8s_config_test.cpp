// The device plugin's config (k8s/config.h): what parses, and every mistake named by its key.
#include "vfiokit/k8s/config.h"

#include <gtest/gtest.h>

#include "vfiokit/base/error.h"

namespace vfiokit::k8s {
namespace {

pci::Bdf bdf(const char* text) { return *pci::parse_bdf(text); }

TEST(K8sConfig, ParsesEverySelectorAndKeepBound) {
  const PluginConfig config = parse_plugin_config(R"({
    "resources": [
      {"name": "vfiokit.io/nvme", "devices": ["1b36:0010", "8086:", ":10d3"]},
      {"name": "vfiokit.io/gpu", "classes": ["03", "0302", "010802"]},
      {"name": "example.com/Edu_1.x", "bdfs": ["0000:00:05.0", "10000:ff:1f.7"]}
    ],
    "keepBound": true
  })");
  const PluginConfig expected{
      {
          {"vfiokit.io/nvme",
           {{0x1b36, 0x0010}, {0x8086, std::nullopt}, {std::nullopt, 0x10d3}},
           {},
           {}},
          {"vfiokit.io/gpu",
           {},
           {{0x030000, 0xff0000}, {0x030200, 0xffff00}, {0x010802, 0xffffff}},
           {}},
          {"example.com/Edu_1.x", {}, {}, {bdf("0000:00:05.0"), bdf("10000:ff:1f.7")}},
      },
      true};
  EXPECT_EQ(config, expected);
}

TEST(K8sConfig, KeepBoundIsOffUnlessSaid) {
  const PluginConfig config =
      parse_plugin_config(R"({"resources": [{"name": "a.b/c", "devices": ["1:2"]}]})");
  EXPECT_FALSE(config.keep_bound);
  ASSERT_EQ(config.resources.size(), 1u);
  EXPECT_EQ(config.resources[0].devices, (std::vector<VendorDevice>{{0x0001, 0x0002}}));
}

TEST(K8sConfig, ResourceNamesKubeletAccepts) {
  for (const char* name : {"vfiokit.io/nvme", "a/b", "x-1.example.com/A.b_c-9",
                           "kubernetes.io.example.com/gpu", "k8s.io.example.com/gpu"}) {
    const std::string text =
        std::string(R"({"resources": [{"name": ")") + name + R"(", "devices": ["1:"]}]})";
    EXPECT_EQ(parse_plugin_config(text).resources.at(0).name, name) << name;
  }
  // The longest whose socket, /var/lib/kubelet/device-plugins/vfiokit-NAME.sock, fits sun_path
  // (107 bytes and a NUL): 62 characters.
  const std::string longest = "a.b/" + std::string(58, 'n');
  EXPECT_NO_THROW(
      parse_plugin_config(R"({"resources": [{"name": ")" + longest + R"(", "devices": ["1:"]}]})"));
}

std::string two_resources(const std::string& first, const std::string& second) {
  return R"({"resources": [{"name": ")" + first + R"(", "devices": ["1:"]}, {"name": ")" + second +
         R"(", "devices": ["2:"]}]})";
}

TEST(K8sConfig, NamesThatDifferOnlyInWhatTheirSocketAndVariableKeepAreAccepted) {
  // '-' and '_' are kept apart in both the socket name and KubeVirt's variable.
  const auto config = parse_plugin_config(two_resources("a.io/x-y", "a.io/x_y"));
  EXPECT_EQ(config.resources.size(), 2u);
}

struct Clash {
  std::string first;
  std::string second;
  std::string shared;  // the socket or variable both would have
};

void PrintTo(const Clash& c, std::ostream* out) { *out << c.first << " " << c.second; }

class K8sConfigNameClash : public testing::TestWithParam<Clash> {};

TEST_P(K8sConfigNameClash, IsRefusedNamingBothResourcesAndTheKey) {
  const Clash& clash = GetParam();
  try {
    parse_plugin_config(two_resources(clash.first, clash.second));
    FAIL() << "accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::usage);
    EXPECT_EQ(e.context_value("key"), "resources[1].name") << e.what();
    EXPECT_NE(e.message().find("\"" + clash.first + "\" (resources[0].name)"), std::string::npos)
        << e.what();
    EXPECT_NE(e.message().find("\"" + clash.second + "\""), std::string::npos) << e.what();
    EXPECT_NE(e.message().find(clash.shared), std::string::npos) << e.what();
    EXPECT_FALSE(e.hint().empty());
  }
}

INSTANTIATE_TEST_SUITE_P(
    Cases, K8sConfigNameClash,
    testing::Values(Clash{"a.io/x-y", "a-io/x.y", "socket vfiokit-a-io-x-y.sock"},
                    Clash{"a.io/x.y", "a.io/x-y", "socket vfiokit-a-io-x-y.sock"},
                    Clash{"a.io/x_y", "a.io/x.y", "PCI_RESOURCE_A_IO_X_Y"},
                    Clash{"a.io/nvme", "a.io/NVMe", "PCI_RESOURCE_A_IO_NVME"}));

TEST(K8sConfig, ANameWhoseSocketPathDoesNotFitIsRefusedWithAFix) {
  const std::string name = "a.b/" + std::string(59, 'n');
  try {
    parse_plugin_config(R"({"resources": [{"name": ")" + name + R"(", "devices": ["1:"]}]})");
    FAIL() << "accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::usage);
    EXPECT_EQ(e.context_value("key"), "resources[0].name") << e.what();
    EXPECT_NE(e.message().find(name), std::string::npos) << e.what();
    EXPECT_NE(e.message().find("108 bytes long, more than the 107"), std::string::npos) << e.what();
    EXPECT_NE(e.hint().find("shorter name"), std::string::npos) << e.hint();
    EXPECT_NE(e.hint().find("--plugin-dir"), std::string::npos) << e.hint();
  }
}

struct Mistake {
  std::string text;
  std::string key;      // the key the error names
  std::string message;  // a part of the message
};

void PrintTo(const Mistake& m, std::ostream* out) { *out << m.text; }

class K8sConfigMistake : public testing::TestWithParam<Mistake> {};

TEST_P(K8sConfigMistake, IsAUsageErrorNamingTheKeyWithAFix) {
  const Mistake& mistake = GetParam();
  try {
    parse_plugin_config(mistake.text);
    FAIL() << "accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.operation(), "read device-plugin config");
    EXPECT_EQ(e.kind(), ErrorKind::usage);
    EXPECT_EQ(e.context_value("key"), mistake.key) << e.what();
    EXPECT_NE(e.message().find(mistake.message), std::string::npos) << e.what();
    EXPECT_FALSE(e.hint().empty()) << e.what();
  }
}

std::string with_name(const std::string& name) {
  return R"({"resources": [{"name": )" + name + R"(, "devices": ["1:"]}]})";
}
std::string with_resource(const std::string& fields) {
  return R"({"resources": [{"name": "a.io/ok", "devices": ["1:"]}, {)" + fields + "}]}";
}

INSTANTIATE_TEST_SUITE_P(
    Document, K8sConfigMistake,
    testing::Values(Mistake{"", "(document)", "not valid JSON"},
                    Mistake{R"({"resources": [)", "(document)", "not valid JSON"},
                    Mistake{"{} trailing", "(document)", "not valid JSON"},
                    Mistake{"[]", "(document)", "not a JSON object"},
                    Mistake{R"({"resources": [{"name": "a.io/b", "devices": ["1:"]}],
                                "extra": 1})",
                            "extra", "not a key"},
                    Mistake{"{}", "resources", "is missing"},
                    Mistake{R"({"resources": []})", "resources", "is empty"},
                    Mistake{R"({"resources": {}})", "resources", "not a list"},
                    Mistake{R"({"resources": [{"name": "a.io/b", "devices": ["1:"]}],
                                "keepBound": "yes"})",
                            "keepBound", "not true or false"}));

INSTANTIATE_TEST_SUITE_P(
    Resource, K8sConfigMistake,
    testing::Values(
        Mistake{R"({"resources": ["a.io/b"]})", "resources[0]", "not an object"},
        Mistake{with_resource(R"("devices": ["1:"])"), "resources[1].name", "is missing"},
        Mistake{with_resource(R"("name": "a.io/c")"), "resources[1]", "selects nothing"},
        Mistake{with_resource(R"("name": "a.io/c", "devices": [])"), "resources[1]",
                "selects nothing"},
        Mistake{with_resource(R"("name": "a.io/c", "vendor": "1b36")"), "resources[1].vendor",
                "not a key"},
        Mistake{with_resource(R"("name": "a.io/ok", "devices": ["2:"])"), "resources[1].name",
                "earlier resource"},
        Mistake{with_resource(R"("name": "a.io/c", "devices": "1b36:0010")"),
                "resources[1].devices", "not a list of strings"},
        Mistake{with_resource(R"("name": "a.io/c", "classes": ["03", 3])"),
                "resources[1].classes[1]", "not a string"}));

INSTANTIATE_TEST_SUITE_P(
    Name, K8sConfigMistake,
    testing::Values(
        Mistake{with_name("7"), "resources[0].name", "not a string"},
        Mistake{with_name(R"("nvme")"), "resources[0].name", "no domain"},
        Mistake{with_name(R"("a.io/b/c")"), "resources[0].name", "more than one"},
        Mistake{with_name(R"("/nvme")"), "resources[0].name", "domain before"},
        Mistake{with_name(R"("Vfiokit.io/nvme")"), "resources[0].name", "lower-case"},
        Mistake{with_name(R"("a..io/nvme")"), "resources[0].name", "empty label"},
        Mistake{with_name(R"("-a.io/nvme")"), "resources[0].name", "'-'"},
        Mistake{with_name("\"" + std::string(120, 'a') + "." + std::string(133, 'a') + "/n\""),
                "resources[0].name", "253"},
        Mistake{with_name(R"("kubernetes.io/nvme")"), "resources[0].name", "Kubernetes' own"},
        Mistake{with_name(R"("devices.kubernetes.io/nvme")"), "resources[0].name",
                "Kubernetes' own"},
        Mistake{with_name(R"("mykubernetes.io/nvme")"), "resources[0].name", "Kubernetes' own"},
        Mistake{with_name(R"("k8s.io/nvme")"), "resources[0].name", "Kubernetes' own"},
        Mistake{with_name(R"("node.k8s.io/nvme")"), "resources[0].name", "Kubernetes' own"},
        Mistake{with_name("\"" + std::string(64, 'a') + ".io/n\""), "resources[0].name", "63"},
        Mistake{with_name(R"("requests.a.io/nvme")"), "resources[0].name", "requests."},
        Mistake{with_name(R"("a.io/")"), "resources[0].name", "after '/' is empty"},
        Mistake{with_name(R"("a.io/nv me")"), "resources[0].name", "only letters"},
        Mistake{with_name(R"("a.io/_nvme")"), "resources[0].name", "start and end"},
        Mistake{with_name(R"("a.io/nvme.")"), "resources[0].name", "start and end"},
        Mistake{with_name("\"a.io/" + std::string(64, 'n') + "\""), "resources[0].name", "63"}));

std::string with_list(const std::string& key, const std::string& entry) {
  return R"({"resources": [{"name": "a.io/b", ")" + key + R"(": ["1:", )" + entry + "]}]}";
}

INSTANTIATE_TEST_SUITE_P(
    Devices, K8sConfigMistake,
    testing::Values(
        Mistake{with_list("devices", R"("1b36")"), "resources[0].devices[1]", "not VENDOR:DEVICE"},
        Mistake{with_list("devices", R"("1b36:0010:0108")"), "resources[0].devices[1]",
                "not VENDOR:DEVICE"},
        Mistake{with_list("devices", R"("1b3g:0010")"), "resources[0].devices[1]", "vendor"},
        Mistake{with_list("devices", R"("12345:0010")"), "resources[0].devices[1]", "vendor"},
        Mistake{with_list("devices", R"("1b36:x")"), "resources[0].devices[1]", "device"},
        Mistake{with_list("devices", R"(":")"), "resources[0].devices[1]", "every PCI function"}));

INSTANTIATE_TEST_SUITE_P(
    ClassesAndBdfs, K8sConfigMistake,
    testing::Values(Mistake{with_list("classes", R"("3")"), "resources[0].classes[0]",
                            "class code"},
                    Mistake{R"({"resources": [{"name": "a.io/b", "classes": ["03", "030"]}]})",
                            "resources[0].classes[1]", "class code"},
                    Mistake{R"({"resources": [{"name": "a.io/b", "classes": ["0x03"]}]})",
                            "resources[0].classes[0]", "class code"},
                    Mistake{R"({"resources": [{"name": "a.io/b", "classes": ["01080200"]}]})",
                            "resources[0].classes[0]", "class code"},
                    Mistake{R"({"resources": [{"name": "a.io/b", "classes": [""]}]})",
                            "resources[0].classes[0]", "class code"},
                    Mistake{R"({"resources": [{"name": "a.io/b", "bdfs": ["01:00.0"]}]})",
                            "resources[0].bdfs[0]", "with its domain"},
                    Mistake{R"({"resources": [{"name": "a.io/b", "bdfs": ["0000:01:20.0"]}]})",
                            "resources[0].bdfs[0]", "with its domain"},
                    Mistake{R"({"resources": [{"name": "a.io/b", "bdfs": ["0000:01:00.0 "]}]})",
                            "resources[0].bdfs[0]", "with its domain"}));

TEST(K8sConfig, AControlCharacterInAValueIsEscapedInTheMessage) {
  try {
    parse_plugin_config(R"({"resources": [{"name": "a\u0007b", "devices": ["1:"]}]})");
    FAIL() << "accepted";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find(R"(\u0007)"), std::string::npos) << e.message();
    EXPECT_EQ(e.message().find('\a'), std::string::npos);
  }
}

}  // namespace
}  // namespace vfiokit::k8s
