#include "tests/hil/rig_support.h"

#include <chrono>
#include <iostream>
#include <thread>

#include "tools/vfiokit/json_schema.h"
#include "vfiokit/base/fs.h"
#include "vfiokit/base/text.h"

namespace vfiokit::hil {

std::optional<std::string> find_pci_function(unsigned vendor, unsigned device) {
  const std::filesystem::path devices = "/sys/bus/pci/devices";
  for (const auto& name : list_dir(devices)) {
    const auto v = parse_uint(read_line_if_exists(devices / name / "vendor").value_or(""), 16);
    const auto d = parse_uint(read_line_if_exists(devices / name / "device").value_or(""), 16);
    if (v == vendor && d == device) return name;
  }
  return std::nullopt;
}

CommandResult vfiokit(std::vector<std::string> args) {
  args.insert(args.begin(), "vfiokit");
  return run_command(args);
}

cli::Json conforming_json(const CommandResult& result, std::string_view schema) {
  cli::Json document;
  try {
    document = cli::Json::parse(result.output);
  } catch (const cli::Json::exception& e) {
    ADD_FAILURE() << "not a JSON document (" << e.what() << "):\n" << result.output;
    return document;
  }
  const std::string_view name = document.contains("error") ? "error.json" : schema;
  const auto mismatches = cli::validate_json(cli::bundled_schemas(), name, document);
  EXPECT_TRUE(mismatches.empty()) << name << ":\n" << cli::describe(mismatches) << result.output;
  return document;
}

ChildProcess spawn_background(const std::vector<std::string>& argv,
                              const std::vector<std::string>& env, const std::string& log) {
  ChildOptions options;
  options.environment = env;
  options.output = ChildOutput::file;
  options.output_file = log;
  return ChildProcess::spawn(argv, options);
}

bool wait_until_stopped(pid_t pid, int timeout_ms) {
  for (int waited = 0; waited < timeout_ms; waited += 20) {
    const std::string stat =
        read_file_if_exists("/proc/" + std::to_string(pid) + "/stat").value_or("");
    const std::size_t close = stat.rfind(')');
    if (close != std::string::npos && close + 2 < stat.size() && stat[close + 2] == 'T')
      return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

bool wait_for_path(const std::string& path, bool exists, int timeout_ms) {
  for (int waited = 0; waited <= timeout_ms; waited += 20) {
    if (std::filesystem::exists(path) == exists) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

std::string driver_of(const std::string& bdf) {
  return read_link_name("/sys/bus/pci/devices/" + bdf + "/driver").value_or("(none)");
}

namespace {
std::vector<std::string>& retries() {
  static std::vector<std::string> list;
  return list;
}
}  // namespace

void record_rig_retry(const std::string& what) {
  std::cerr << "hil: retrying after a hang of the emulated rig: " << what << '\n';
  retries().push_back(what);
}

const std::vector<std::string>& rig_retries() { return retries(); }

std::uint64_t locked_memory_kib() {
  const std::string status = read_file("/proc/self/status");
  const std::string locked = find_key_value(status, "VmLck").value_or("0 kB");
  const auto words = split_words(locked);
  return words.empty() ? 0 : parse_uint(words[0]).value_or(0);
}

void RigDeviceTest::SetUp() {
  VFIOKIT_REQUIRE_RIG();
  nvme_ = find_pci_function(kNvmeVendor, kNvmeDevice).value_or("");
  edu_ = find_pci_function(kEduVendor, kEduDevice).value_or("");
  ASSERT_FALSE(nvme_.empty());
  ASSERT_FALSE(edu_.empty());
  ASSERT_EQ(driver_of(nvme_), "nvme") << "a previous test left nvme off its driver";
}

void RigDeviceTest::TearDown() {
  if (!in_rig()) return;
  const auto restore = vfiokit({"restore", "--all"});
  EXPECT_EQ(restore.exit_status, 0) << restore.output;
  if (!nvme_.empty()) {
    EXPECT_EQ(driver_of(nvme_), "nvme");
  }
}

}  // namespace vfiokit::hil
