#include "tests/hil/rig_support.h"

#include <signal.h>

#include <chrono>
#include <iostream>
#include <thread>

#include "tools/vfiokit/json_schema.h"
#include "vfiokit/base/fs.h"
#include "vfiokit/base/text.h"

namespace vfiokit::hil {

using Clock = std::chrono::steady_clock;

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

std::optional<pid_t> qemu_pid() {
  for (const auto& pid : list_dir("/proc")) {
    if (read_line_if_exists("/proc/" + pid + "/comm").value_or("") != "qemu-system-x86") continue;
    if (const auto number = parse_uint(pid)) return static_cast<pid_t>(*number);
  }
  return std::nullopt;
}

std::string qemu_proc_line(const std::string& file, const std::string& key) {
  const auto pid = qemu_pid();
  if (!pid) return "";
  const std::string text =
      read_file_if_exists("/proc/" + std::to_string(*pid) + "/" + file).value_or("");
  for (const auto line : split_lines(text)) {
    if (line.starts_with(key)) return std::string(line);
  }
  return "";
}

bool wait_until_qemu_catches(int signal, std::chrono::seconds limit) {
  const auto deadline = Clock::now() + limit;
  do {
    const std::string line = qemu_proc_line("status", "SigCgt:");
    const auto words = split_words(line);
    if (words.size() == 2) {
      const auto mask = parse_uint(words[1], 16);
      if (mask && (*mask >> (signal - 1) & 1u) != 0) return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  } while (Clock::now() < deadline);
  return false;
}

bool wait_for_text(const std::string& path, const std::string& text, int timeout_ms) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  while (Clock::now() < deadline) {
    if (read_file_if_exists(path).value_or("").find(text) != std::string::npos) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

QemuKvmStats qemu_kvm_stats() {
  QemuKvmStats stats;
  const auto pid = qemu_pid();
  if (!pid) return stats;
  for (const auto& vm : list_dir("/sys/kernel/debug/kvm")) {
    if (!vm.starts_with(std::to_string(*pid) + "-")) continue;
    const std::string dir = "/sys/kernel/debug/kvm/" + vm + "/";
    const auto exits = parse_uint(read_line_if_exists(dir + "exits").value_or(""));
    const auto injections = parse_uint(read_line_if_exists(dir + "irq_injections").value_or(""));
    if (!exits || !injections) continue;
    stats = {true, *exits, *injections};
  }
  return stats;
}

CommandResult launch_inner_guest(const std::string& bdf, const InnerGuestOptions& options) {
  constexpr int kAttempts = 3;
  std::vector<std::string> command{"vfiokit", "launch", bdf, "--qemu"};
  command.insert(command.end(), options.launch_options.begin(), options.launch_options.end());
  command.insert(command.end(), {"--",
                                 "-M",
                                 "q35,kernel-irqchip=off",
                                 "-accel",
                                 "kvm",
                                 "-cpu",
                                 "host,kvm=off",
                                 "-m",
                                 "256M",
                                 "-display",
                                 "none",
                                 "-vga",
                                 "none",
                                 "-monitor",
                                 "none",
                                 "-serial",
                                 "stdio",
                                 "-no-reboot",
                                 "-nic",
                                 "none",
                                 "-kernel",
                                 "/opt/vfiokit/guest/vmlinuz",
                                 "-initrd",
                                 "/opt/vfiokit/guest/initrd.gz",
                                 "-append",
                                 "console=ttyS0 quiet panic=-1 no_timer_check"});
  command.insert(command.end(), options.qemu_arguments.begin(), options.qemu_arguments.end());
  const std::string log = "/tmp/inner-guest-launch.log";
  for (int attempt = 1;; ++attempt) {
    ChildProcess launch = spawn_background(command, {}, log);
    const auto deadline = Clock::now() + options.boot_limit;
    while (Clock::now() < deadline) {
      if (const auto status = launch.wait_for(std::chrono::milliseconds(200))) {
        return {status->value(), read_file(log)};
      }
      if (options.while_running) options.while_running();
    }
    const QemuKvmStats before = qemu_kvm_stats();
    std::this_thread::sleep_for(std::chrono::seconds(2));
    const QemuKvmStats after = qemu_kvm_stats();
    launch.kill(SIGTERM);
    CommandResult run{launch.wait().value(), read_file(log)};
    const bool stalled = before.known && after.known && after.exits > before.exits &&
                         after.injections == before.injections;
    const std::string seen =
        !before.known || !after.known
            ? std::string("KVM's statistics for QEMU's VM could not be read")
            : "in 2 s its vCPUs exited to KVM " + std::to_string(after.exits - before.exits) +
                  " times and KVM injected " +
                  std::to_string(after.injections - before.injections) + " interrupts";
    if (!stalled || attempt == kAttempts) {
      run.output += "\nhil: the inner guest did not boot within " +
                    std::to_string(options.boot_limit.count()) + " s; " + seen + "\n";
      return run;
    }
    record_rig_retry("the inner guest of launch --qemu " + bdf + " (attempt " +
                     std::to_string(attempt) + "): " + seen +
                     " (the nested KVM's stalled timer); the hung attempt:\n" + run.output);
  }
}

void expect_devices_home(const std::string& nvme, const std::string& edu) {
  EXPECT_EQ(driver_of(nvme), "nvme");
  EXPECT_EQ(driver_of(edu), "(none)");
  EXPECT_EQ(read_line_if_exists("/sys/bus/pci/devices/" + nvme + "/driver_override"), "(null)");
  EXPECT_EQ(read_line_if_exists("/sys/bus/pci/devices/" + edu + "/driver_override"), "(null)");
  EXPECT_TRUE(list_dir("/run/vfiokit/devices").empty());
  EXPECT_TRUE(wait_for_path("/dev/nvme0n1", true, 5000)) << "the nvme disk did not come back";
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
