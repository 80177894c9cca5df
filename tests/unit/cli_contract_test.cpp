// The --json contract (docs/json.md) on real output: every command that works on the fixture
// trees is run on each of them, for every device, and each document (errors included) must match
// its schema in docs/schema/, start with schema_version, and have nothing the schema lacks.
#include <gtest/gtest.h>

#include <algorithm>

#include "tests/unit/fixtures.h"
#include "tools/vfiokit/json_schema.h"
#include "vfiokit/base/fs.h"
#include "vfiokit/base/process.h"
#include "vfiokit/bind/persist.h"

namespace vfiokit {
namespace {

using cli::Json;

struct Output {
  int exit_status = -1;
  Json document;
};

// stdout only: a --json document is all that is there.
Output run_json(std::vector<std::string> args) {
  args.insert(std::find(args.begin(), args.end(), "--"), "--json");  // not among QEMU's
  args.insert(args.begin(), VFIOKIT_CLI);
  ChildOptions options;
  options.output = ChildOutput::capture_stdout;
  ChildProcess child = ChildProcess::spawn(args, options);
  const std::string text = child.read_output();
  Output out;
  out.exit_status = child.wait().value();
  out.document = Json::parse(text);
  return out;
}

// The document against `schema`, or against error.json when it is an error (exit status 1-3).
void expect_conforms(const std::string& schema, const Output& out, const std::string& what) {
  SCOPED_TRACE(what);
  const bool error = out.document.contains("error");
  if (error) {
    EXPECT_NE(out.exit_status, 0);
  }
  const std::string name = error ? "error.json" : schema;
  const auto mismatches = cli::validate_json(cli::bundled_schemas(), name, out.document);
  EXPECT_TRUE(mismatches.empty()) << name << ":\n"
                                  << cli::describe(mismatches) << out.document.dump(2);
  ASSERT_TRUE(out.document.is_object());
  EXPECT_EQ(out.document.begin().key(), "schema_version");
  // A key the schema does not know fails: a new key needs a schema change.
  Json extended = out.document;
  extended["not_in_the_schema"] = true;
  EXPECT_FALSE(cli::validate_json(cli::bundled_schemas(), name, extended).empty());
}

Output expect_json(const std::string& schema, std::vector<std::string> args) {
  std::string what;
  for (const auto& arg : args) what += arg + " ";
  Output out = run_json(std::move(args));
  expect_conforms(schema, out, what);
  return out;
}

const char* const kSysfsFixtures[] = {
    "boot-apply", "boot-vga", "gpu-audio-group", "gpu-in-use",  "mounted-disk",
    "no-iommu",   "rig",      "sriov-pf",        "vfio-in-use", "vfio-device-fds"};

std::vector<std::string> devices_of(const std::string& root) {
  const Output list = run_json({"--host-root", root, "list"});
  std::vector<std::string> bdfs;
  for (const auto& group : list.document["groups"]) {
    for (const auto& device : group["devices"]) bdfs.push_back(device["bdf"]);
  }
  for (const auto& device : list.document["without_group"]) bdfs.push_back(device["bdf"]);
  return bdfs;
}

TEST(CliContract, DoctorOnEveryHostFixture) {
  for (const char* host : {"dmar-disabled", "no-iommu", "vtd-ready"}) {
    expect_json("doctor.json",
                {"--host-root", test::fixture("hosts").append(host).string(), "doctor"});
  }
}

// One test per fixture tree, so ctest runs them side by side (each runs the CLI seven times per
// device; under ASan+UBSan all of them in one test took minutes of wall time on its own).
class CliContractOnFixture : public testing::TestWithParam<const char*> {};

TEST_P(CliContractOnFixture, ReadOnlyCommandsOnEveryDevice) {
  const std::string root = test::fixture("sysfs").append(GetParam()).string();
  expect_json("list.json", {"--host-root", root, "list"});
  const auto bdfs = devices_of(root);
  EXPECT_FALSE(bdfs.empty()) << GetParam();
  for (const auto& bdf : bdfs) {
    expect_json("show.json", {"--host-root", root, "show", bdf});
    expect_json("check.json", {"--host-root", root, "check", bdf});
    expect_json("bind.json", {"--host-root", root, "bind", "--dry-run", bdf});
    expect_json("unbind.json", {"--host-root", root, "unbind", "--dry-run", bdf});
    expect_json("persist.json", {"--host-root", root, "persist", "--dry-run", bdf});
    expect_json("launch.json", {"--host-root", root, "launch", bdf, "--qemu", "--dry-run",
                                "--qemu-binary", "/bin/true", "--", "-m", "1G"});
    expect_json("rom.json", {"--host-root", root, "rom", bdf});
  }
  expect_json("restore.json", {"--host-root", root, "restore", "--all", "--dry-run"});
  expect_json("persist.json", {"--host-root", root, "persist", "--list"});
  // The sample config shipped in deploy/ (run by vfiokit-device-plugin, which vfiokit execs).
  expect_json("device-plugin.json",
              {"--host-root", root, "device-plugin", "--config",
               std::string(VFIOKIT_SOURCE_DIR) + "/deploy/config.json", "--dry-run", "--json"});
}

INSTANTIATE_TEST_SUITE_P(EveryFixture, CliContractOnFixture, testing::ValuesIn(kSysfsFixtures),
                         [](const testing::TestParamInfo<const char*>& fixture) {
                           std::string name = fixture.param;
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

// show --json says which resets a device has and what a bus reset also hits.
TEST(CliContract, ShowCarriesTheResetSupport) {
  const std::string root = test::fixture("sysfs/gpu-in-use").string();
  const auto gpu = expect_json("show.json", {"--host-root", root, "show", "0000:0a:00.0"});
  const auto& reset = gpu.document["device"]["reset"];
  EXPECT_EQ(reset["methods"], Json::array({"bus"}));
  EXPECT_EQ(reset["from_kernel"], false);
  EXPECT_EQ(reset["function_level"], false);
  EXPECT_EQ(reset["pm"], false);  // No_Soft_Reset
  EXPECT_EQ(reset["slot"], true);
  EXPECT_EQ(reset["also_reset"], Json::array({"0000:0a:00.1"}));
  const auto nvme = expect_json(
      "show.json", {"--host-root", test::fixture("sysfs/rig").string(), "show", "0000:00:02.0"});
  EXPECT_EQ(nvme.document["device"]["reset"]["methods"], Json::array({"flr"}));
  EXPECT_EQ(nvme.document["device"]["reset"]["from_kernel"], true);
}

// A narrowed list keeps each device's whole group in iommu_group_devices.
TEST(CliContract, ASelectionKeepsTheDeviceObject) {
  const std::string root = test::fixture("sysfs/gpu-audio-group").string();
  const auto list = expect_json("list.json", {"--host-root", root, "list", "--class", "display"});
  ASSERT_EQ(list.document["groups"].size(), 1u);
  ASSERT_EQ(list.document["groups"][0]["devices"].size(), 1u);
  EXPECT_EQ(list.document["groups"][0]["devices"][0]["iommu_group_devices"].size(), 3u);
}

TEST(CliContract, ChangesOnFixtureCopies) {
  test::FixtureCopy copy(test::fixture("sysfs/gpu-audio-group"));
  const std::string root = copy.root().string();
  expect_json("persist.json", {"--host-root", root, "persist", "0000:01:00.0"});
  const auto listed = expect_json("persist.json", {"--host-root", root, "persist", "--list"});
  EXPECT_EQ(listed.document["persisted"].size(), 2u);
  expect_json("persist.json", {"--host-root", root, "persist", "--remove", "0000:01:00.0"});
  expect_json("restore.json", {"--host-root", root, "restore", "--all"});  // an empty journal

  // restore with entries it can use and entries it cannot (left).
  const auto devices = copy.root() / "run/vfiokit/devices";
  std::filesystem::create_directories(devices);
  write_file_durable(devices / "0000:01:00.0",
                     "vfiokit-journal 1\nbdf 0000:01:00.0\ngroup 1\noriginal-driver nouveau\n"
                     "original-override -\ntarget-driver vfio-pci\nstate bound\npid 1\n");
  write_file_durable(devices / "0000:01:00.1", "vfiokit-journal 1\nbdf 0000:01:00.1\ngr");
  const auto restored = expect_json("restore.json", {"--host-root", root, "restore", "--all"});
  EXPECT_EQ(restored.exit_status, 1);
  EXPECT_EQ(restored.document["left"].size(), 1u);

  test::FixtureCopy in_use(test::fixture("sysfs/vfio-in-use"));
  const auto unbound = expect_json("unbind.json", {"--host-root", in_use.root().string(), "unbind",
                                                   "0000:06:00.0", "--force-group-in-use"});
  EXPECT_EQ(unbound.exit_status, 0);
  EXPECT_TRUE(unbound.document["result"].is_array());
}

// vfiokit.service's `persist --apply`: every persisted slot's decision, and bind's plan.
TEST(CliContract, PersistApplyOnTheBootFixture) {
  test::FixtureCopy copy(test::fixture("sysfs/boot-apply"));
  const std::string root = copy.root().string();
  bind::PersistStore(copy.paths().etc)
      .add({{*pci::parse_bdf("0000:03:00.0"), 0x1b36, 0x0010, "nvme"},
            {*pci::parse_bdf("0000:05:00.0"), 0x1b36, 0x0010, "nvme"},
            {*pci::parse_bdf("0000:07:00.0"), 0x1b36, 0x0010, "nvme"}});
  const Output out =
      expect_json("persist.json", {"--host-root", root, "persist", "--apply", "--dry-run"});
  EXPECT_EQ(out.document["operation"], "persist-apply");
  EXPECT_EQ(out.document["devices"].size(), 3u);
  EXPECT_TRUE(out.document["plan"].is_object());
}

TEST(CliContract, ARefusedLaunchShowsThePlanAsBindDoes) {
  // The payload launch is refused before anything moves, in the launch plan document.
  test::FixtureCopy copy(test::fixture("sysfs/boot-vga"));
  const std::string root = copy.root().string();
  const auto payload = expect_json(
      "launch.json", {"--host-root", root, "launch", "0000:00:02.0", "--payload", "edu-dma"});
  EXPECT_EQ(payload.exit_status, 3);
  EXPECT_EQ(payload.document["command"], nullptr);
  const auto bind = run_json({"--host-root", root, "bind", "0000:00:02.0", "--dry-run"});
  EXPECT_EQ(payload.document["plan"], bind.document["plan"]);
  EXPECT_EQ(payload.document["plan"]["refused"][0]["force_flag"], "--force-boot-vga");
  const auto qemu = expect_json("launch.json", {"--host-root", root, "launch", "0000:00:02.0",
                                                "--qemu", "--qemu-binary", "/bin/true"});
  EXPECT_EQ(qemu.exit_status, 3);
  EXPECT_EQ(qemu.document["dry_run"], false);
  EXPECT_EQ(qemu.document["plan"], bind.document["plan"]);
  // As text too: the plan, then each refusal with its override.
  const CommandResult text = run_command(
      {VFIOKIT_CLI, "--host-root", root, "launch", "0000:00:02.0", "--payload", "edu-dma"});
  EXPECT_EQ(text.exit_status, 3);
  EXPECT_NE(text.output.find("plan: bind for the guest, restore when the payload ends\n"
                             "  0000:00:02.0  i915 -> vfio-pci"),
            std::string::npos)
      << text.output;
  EXPECT_NE(text.output.find("override with --force-boot-vga"), std::string::npos) << text.output;
}

// `vfiokit rom`: a valid ROM saved for romfile=, another card's ROM refused, no ROM a usage error.
TEST(CliContract, RomReadsChecksAndSaves) {
  test::FixtureCopy copy(test::fixture("sysfs/gpu-audio-group"));
  const std::string root = copy.root().string();
  const auto rom_path = copy.root() / "sys/bus/pci/devices/0000:01:00.0/rom";
  const std::string saved = (copy.root() / "gpu.rom").string();
  const auto good =
      expect_json("rom.json", {"--host-root", root, "rom", "0000:01:00.0", "--output", saved});
  EXPECT_EQ(good.exit_status, 0);
  EXPECT_EQ(good.document["source"], "sysfs");
  EXPECT_EQ(good.document["valid"], true);
  ASSERT_EQ(good.document["images"].size(), 2u);
  EXPECT_EQ(good.document["images"][0]["code_type_name"], "x86");
  EXPECT_EQ(good.document["images"][0]["checksum"], "ok");
  EXPECT_EQ(good.document["images"][1]["efi"]["machine"], "x64");
  EXPECT_EQ(good.document["images"][1]["checksum"], "not-required");
  EXPECT_EQ(good.document["images"][1]["last"], true);
  EXPECT_EQ(good.document["output"], saved);
  EXPECT_EQ(read_file(saved), read_file(rom_path));

  // The same ROM after the BAR's 0xff padding (as VFIO's region reads it): the file is the
  // images only.
  std::string padded = read_file(rom_path);
  const std::size_t images = padded.size();
  padded.resize(0x80000, '\xff');
  write_file_durable(rom_path, padded, 0600);
  const auto trimmed =
      expect_json("rom.json", {"--host-root", root, "rom", "0000:01:00.0", "--output", saved});
  EXPECT_EQ(trimmed.document["read_size"], 0x80000);
  EXPECT_EQ(trimmed.document["size"], images);
  EXPECT_EQ(read_file(saved).size(), images);

  // Another card's ROM: exit 1, the reason, and nothing written.
  padded[1024 + 0x1c + 6] = 0x11;  // PCIR device ID of image 1 (UEFI: no checksum to upset)
  write_file_durable(rom_path, padded, 0600);
  std::filesystem::remove(saved);
  const auto other =
      expect_json("rom.json", {"--host-root", root, "rom", "0000:01:00.0", "--output", saved});
  EXPECT_EQ(other.exit_status, 1);
  EXPECT_EQ(other.document["valid"], false);
  EXPECT_EQ(other.document["problems"][0]["kind"], "id-mismatch");
  EXPECT_EQ(other.document["output"], nullptr);
  EXPECT_FALSE(std::filesystem::exists(saved));
  const CommandResult text = run_command({VFIOKIT_CLI, "--host-root", root, "rom", "0000:01:00.0"});
  EXPECT_EQ(text.exit_status, 1);
  EXPECT_NE(text.output.find("not for this device 10de:2204"), std::string::npos) << text.output;
  EXPECT_NE(text.output.find("not a valid option ROM for 10de:2204"), std::string::npos);

  // The HDMI audio function has no ROM BAR: a usage error.
  const auto none = expect_json("rom.json", {"--host-root", root, "rom", "0000:01:00.1"});
  EXPECT_EQ(none.exit_status, 2);
  EXPECT_NE(none.document.dump().find("no option ROM"), std::string::npos);
}

TEST(CliContract, ErrorsAreErrorDocuments) {
  const std::string rig = test::fixture("sysfs/rig").string();
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{{"frobnicate"},
                                             {"bind", "--wait", "soon", "0000:00:01.0"},
                                             {"--host-root", rig, "show", "00:02"},
                                             {"--host-root", rig, "check", "0000:00:09.0"},
                                             {"--host-root", rig, "info", "0000:00:02.0"},
                                             {"--host-root", rig, "selftest", "0000:00:02.0"}}) {
    const auto out = expect_json("error.json", args);
    EXPECT_TRUE(out.document.contains("error")) << out.document.dump();
  }
}

// One object, one shape: a device in list has the keys of the device in show, in that order.
TEST(CliContract, ADeviceHasTheSameKeysInTheSameOrderEverywhere) {
  const std::string root = test::fixture("sysfs/mounted-disk").string();
  const auto list = run_json({"--host-root", root, "list"});
  const auto show = run_json({"--host-root", root, "show", "0000:04:00.0"});
  Json listed;
  for (const auto& group : list.document["groups"]) {
    for (const auto& device : group["devices"]) {
      if (device["bdf"] == "0000:04:00.0") listed = device;
    }
  }
  ASSERT_TRUE(listed.is_object());
  std::vector<std::string> list_keys;
  std::vector<std::string> show_keys;
  for (const auto& [key, value] : listed.items()) list_keys.push_back(key);
  for (const auto& [key, value] : show.document["device"].items()) show_keys.push_back(key);
  EXPECT_EQ(list_keys, show_keys);
  EXPECT_EQ(list_keys.front(), "bdf");
  EXPECT_TRUE(listed["host_use"].is_null());
  EXPECT_TRUE(show.document["device"]["host_use"].is_object());
}

}  // namespace
}  // namespace vfiokit
