// `vfiokit launch BDF --payload NAME|PATH` (the built-in VMM) and `vfiokit launch BDF --qemu --
// QEMU-ARGS...` (a full OS guest): the device's group on vfio-pci for the run, and back after.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <iostream>
#include <map>
#include <memory>
#include <set>

#include "tools/vfiokit/binding_report.h"
#include "tools/vfiokit/cli.h"
#include "tools/vfiokit/commands.h"
#include "tools/vfiokit/device_report.h"
#include "tools/vfiokit/options.h"
#include "vfiokit/base/error.h"
#include "vfiokit/base/fs.h"
#include "vfiokit/base/log.h"
#include "vfiokit/base/process.h"
#include "vfiokit/base/signals.h"
#include "vfiokit/base/text.h"
#include "vfiokit/bind/binding_session.h"
#include "vfiokit/iommu/group.h"
#include "vfiokit/payloads/mailbox.h"
#include "vfiokit/payloads/payloads.h"
#include "vfiokit/pci/device.h"
#include "vfiokit/pci/select.h"
#include "vfiokit/vfio/open.h"
#include "vfiokit/vmm/cpu_set.h"
#include "vfiokit/vmm/firmware.h"
#include "vfiokit/vmm/hugepages.h"
#include "vfiokit/vmm/launch.h"
#include "vfiokit/vmm/pinning.h"
#include "vfiokit/vmm/qemu_command.h"
#include "vfiokit/vmm/qmp.h"

namespace vfiokit::cli {
namespace {

struct LaunchArgs {
  std::string bdf;
  std::string payload;
  bool qemu = false;
  bool dry_run = false;
  std::string expected_serial;
  std::string interrupts = "auto";  // payloads: "auto" or "intx" (MSI and MSI-X hidden)
  std::chrono::milliseconds timeout{30000};
  unsigned memory_mib = 16;  // every built-in payload fits in 5 MiB; pinning less starts sooner
  std::string qemu_binary = "qemu-system-x86_64";
  std::vector<std::string> qemu_arguments;
  std::chrono::milliseconds wait{30000};
  bind::ForceFlags force;
  std::string run_as;  // --qemu: USER[:GROUP] that QEMU becomes once set up
  // --qemu's guest: topology, per-device options, firmware, memory, vCPUs.
  bool flat = false;
  std::vector<std::string> device_options;  // BDF:KEY=VALUE[,...]
  std::string firmware;                     // "uefi", "bios" or empty (QEMU's default)
  std::string name;
  std::string hugepages;  // "2M", "1G"; empty: none
  unsigned cpus = 0;      // 0: QEMU's default (or the user's -smp)
  std::string pin;        // vCPU i -> the i-th CPU of this list
  std::string emulator_pin;
  // --payload's reports while the guest runs: statistics at the end, Prometheus metrics.
  bool stats = false;
  std::string metrics_file;
  std::chrono::milliseconds interval{1000};
  bool dirty_log = false;
  std::string dirty_mechanism;  // "ring", "bitmap"; empty: the ring where KVM has it
};

// The group bound for the run: progress lines as each device moves and comes back, flushed
// because a guest may run for long.
bind::SessionOptions session_options(const LaunchArgs& args, std::ostream* progress) {
  bind::SessionOptions options;
  options.force = args.force;
  options.lock_wait = args.wait;
  options.interrupted = [] { return SignalGuard::received(); };
  if (progress) {
    options.on_outcome = [progress](const bind::DeviceOutcome& outcome) {
      print_outcome(*progress, outcome);
      *progress << std::flush;
    };
  }
  return options;
}

std::vector<std::uint8_t> parameters_for(const payloads::LaunchablePayload& payload,
                                         const LaunchArgs& args) {
  if (payload.name != "nvme-identify") return {};
  vfiokit_nvme_params params{};
  params.magic = VFIOKIT_NVME_PARAMS_MAGIC;
  if (args.expected_serial.size() > 20) {
    throw Error("launch", "an NVMe serial has at most 20 characters").kind(ErrorKind::usage);
  }
  std::memcpy(params.serial, args.expected_serial.data(), args.expected_serial.size());
  std::vector<std::uint8_t> bytes(sizeof params);
  std::memcpy(bytes.data(), &params, sizeof params);
  return bytes;
}

void print_payload_report(const LaunchArgs& args, const pci::Bdf& bdf,
                          const vmm::LaunchResult& result) {
  std::cout << "guest: " << args.memory_mib << " MiB of RAM, DMA-mapped at IOVA = guest-physical; "
            << bdf.to_string() << " is guest " << result.guest_bdf << '\n';
  for (const auto& line : result.layout) std::cout << "  " << line << '\n';
  if (result.first_instruction_ms) {
    std::printf("guest's first instruction %.1f ms after vfiokit started",
                *result.first_instruction_ms);
    if (result.first_mailbox_ms)
      std::printf(", first mailbox write %.1f ms", *result.first_mailbox_ms);
    std::printf("\n");
  }
  std::cout << "payload log:\n";
  for (const auto line : split_lines(result.log)) std::cout << "  | " << line << '\n';
  if (result.dirty_log) {
    std::cout << "dirty pages:\n";
    for (const auto& line : vmm::describe_dirty_log(*result.dirty_log)) {
      std::cout << "  " << line << '\n';
    }
  }
  if (args.stats) {
    std::cout << "statistics:\n";
    for (const auto& line : vmm::describe_statistics(result.statistics)) {
      std::cout << "  " << line << '\n';
    }
  }
}

// KVM's statistics for machines: each by its kernel name, with the kernel's raw value (its
// unit is in the name: *_ns are nanoseconds); a histogram as its buckets.
Json kvm_samples_json(const std::vector<kvm::StatSample>& samples) {
  Json out = Json::object();
  for (const auto& sample : samples) {
    out[sample.descriptor.name] =
        sample.values.size() == 1 ? Json(sample.values.front()) : Json(sample.values);
  }
  return out;
}

Json page_runs_json(std::span<const std::uint64_t> pages) {
  Json runs = Json::array();
  for (const auto& run : vmm::page_runs(pages)) {
    runs.push_back({{"address", run.first_page * vmm::kGuestPageSize}, {"pages", run.pages}});
  }
  return runs;
}

Json dirty_log_json(const std::optional<vmm::DirtyLogResult>& log) {
  if (!log) return nullptr;
  Json intervals = Json::array();
  for (const auto& interval : log->intervals) {
    intervals.push_back({{"elapsed_s", interval.elapsed_seconds},
                         {"vcpu_pages", interval.vcpu_pages},
                         {"device_pages", Json(interval.device_pages)}});
  }
  return {{"vcpu",
           {{"mechanism", log->vcpu_mechanism},
            {"pages", log->vcpu_pages.size()},
            {"runs", page_runs_json(log->vcpu_pages)},
            {"ring_full_exits", log->counters.ring_full_exits}}},
          {"device", log->device_pages ? Json{{"mechanism", log->device_mechanism},
                                              {"pages", log->device_pages->size()},
                                              {"runs", page_runs_json(*log->device_pages)}}
                                       : Json{{"missing", log->device_missing}}},
          {"intervals", intervals}};
}

Json statistics_json(const vmm::GuestStatistics& statistics) {
  Json trapped = Json::array();
  for (std::size_t bar = 0; bar < vmm::kBarCount; ++bar) {
    const auto& t = statistics.trapped[bar];
    if (t.reads == 0 && t.writes == 0) continue;
    trapped.push_back({{"bar", bar}, {"reads", t.reads}, {"writes", t.writes}});
  }
  Json vcpus = Json::array();
  for (const auto& vcpu : statistics.vcpus) vcpus.push_back(kvm_samples_json(vcpu));
  return {
      {"elapsed_s", statistics.elapsed_seconds},
      {"dma_mapped_bytes", statistics.dma_mapped_bytes},
      {"device_interrupts", statistics.device_interrupts},
      {"trapped", trapped},
      {"kvm",
       {{"missing", statistics.kvm_missing.empty() ? Json(nullptr) : Json(statistics.kvm_missing)},
        {"vm", kvm_samples_json(statistics.vm)},
        {"vcpus", vcpus}}}};
}

// --metrics-file: the statistics in Prometheus's text format, replaced atomically at every
// report (node_exporter's textfile collector may read it at any moment). A write that fails is
// said once and does not stop the guest.
class MetricsFile {
 public:
  MetricsFile(std::filesystem::path path, const pci::Bdf& bdf, std::string payload)
      : path_(std::move(path)),
        labels_{{"bdf", bdf.to_string()}, {"payload", std::move(payload)}} {}

  void write(const vmm::GuestStatistics& statistics) {
    try {
      write_file_durable(path_, prometheus_text(vmm::metric_families(statistics, labels_)));
    } catch (const Error& e) {
      if (!warned_) log::warn("--metrics-file {}: {}", path_.string(), e.what());
      warned_ = true;
    }
  }

 private:
  std::filesystem::path path_;
  std::vector<std::pair<std::string, std::string>> labels_;
  bool warned_ = false;
};

// Before anything is bound: the metrics file's folder must exist, so a typo is an error now,
// not a warning once the guest runs.
void check_metrics_file(const std::string& path) {
  if (path.empty()) return;
  const std::filesystem::path folder = std::filesystem::absolute(path).parent_path();
  std::error_code ec;
  if (!std::filesystem::is_directory(folder, ec)) {
    throw Error("launch",
                "--metrics-file " + path + ": the folder " + folder.string() + " does not exist")
        .hint(
            "create it, or give a file in an existing folder (node_exporter's "
            "--collector.textfile.directory)")
        .kind(ErrorKind::usage);
  }
  if (std::filesystem::is_directory(path, ec)) {
    throw Error("launch", "--metrics-file " + path + " is a folder")
        .hint("name a file in it, such as " +
              (std::filesystem::path(path) / "vfiokit.prom").string())
        .kind(ErrorKind::usage);
  }
}

// Where a guest that never reported was, and where its interrupt stopped.
Json hang_json(const vmm::HangReport& hang) {
  return {{"cause", vmm::to_string(hang.cause)},
          {"host_raised", hang.host_raised},
          {"injected", hang.injected},
          {"woke", hang.woke},
          {"vcpu",
           {{"halted", hang.vcpu.halted},
            {"interrupts_enabled", hang.vcpu.interrupts_enabled},
            {"rip", json_hex(hang.vcpu.rip)},
            {"lapic", hang.vcpu.lapic ? Json{{"pending", hang.vcpu.lapic->pending},
                                             {"in_service", hang.vcpu.lapic->in_service},
                                             {"priority", hang.vcpu.lapic->processor_priority}}
                                      : Json(nullptr)}}},
          {"text", hang.describe()}};
}

// launch --payload --json: the result, where a hung guest was, what it dropped, and timings.
Json payload_result_json(const pci::Bdf& bdf, const std::string& payload_name,
                         const vmm::LaunchResult& result,
                         const std::vector<pci::Bdf>& moved_devices) {
  Json values = Json::array();
  for (auto v : result.values) values.push_back(v);
  const Json timing{{"first_instruction_ms", Json(result.first_instruction_ms)},
                    {"first_mailbox_ms", Json(result.first_mailbox_ms)},
                    {"first_instruction_monotonic_ns", Json(result.first_instruction_monotonic_ns)},
                    {"first_mailbox_monotonic_ns", Json(result.first_mailbox_monotonic_ns)}};
  Json moved = Json::array();
  for (const auto& b : moved_devices) moved.push_back(b.to_string());
  return Json{{"operation", "launch"},
              {"bdf", bdf.to_string()},
              {"payload", payload_name},
              {"passed", result.passed},
              {"result", result.done_code
                             ? Json(vmm::describe_done_code(*result.done_code, result.done_detail))
                             : Json(nullptr)},
              {"done_code", result.done_code},
              {"done_detail", result.done_detail},
              {"failure", result.failure.empty() ? Json(nullptr) : Json(result.failure)},
              {"hang", result.hang ? hang_json(*result.hang) : Json(nullptr)},
              {"guest_bdf", result.guest_bdf},
              {"layout", result.layout},
              {"values", values},
              {"log", result.log},
              {"dropped",
               {{"log_bytes", result.log_bytes_dropped},
                {"events", result.events_dropped},
                {"values", result.values_dropped}}},
              {"timing", timing},
              {"statistics", statistics_json(result.statistics)},
              {"dirty_log", dirty_log_json(result.dirty_log)},
              {"bound_and_restored", moved}};
}

bind::Plan plan_launch(const HostPaths& paths, const LaunchArgs& args, const pci::Bdf& bdf) {
  const bind::Journal journal(paths.run / "vfiokit");
  const std::vector<pci::Bdf> requested{bdf};
  const auto view = bind::gather_host_view(paths, requested, journal, ::getpid());
  return bind::plan_bind(view, requested, args.force);
}

Json placements_json(const std::vector<vmm::GuestPlacement>& placements) {
  Json out = Json::array();
  for (const auto& p : placements) out.push_back({{"bdf", p.host.to_string()}, {"guest", p.where}});
  return out;
}

// The plan as bind shows it (binding_report), then what would run: `launch --qemu --dry-run`, and
// any launch the plan refuses (exit 3), which then never binds. `command` is null for a payload.
int render_launch_plan(const GlobalOptions& options, const pci::Bdf& bdf, const bind::Plan& plan,
                       const std::optional<vmm::QemuCommand>& command, bool dry_run) {
  if (options.json) {
    print_json(std::cout, Json{{"operation", "launch"},
                               {"bdf", bdf.to_string()},
                               {"dry_run", dry_run},
                               {"plan", plan_json(plan)},
                               {"command", command ? Json(command->arguments) : Json(nullptr)},
                               {"guest_devices",
                                command ? placements_json(command->placements) : Json(nullptr)}});
  } else {
    print_plan_report(std::cout, std::cerr, plan,
                      command ? "plan: bind for the guest, restore when QEMU exits"
                              : "plan: bind for the guest, restore when the payload ends");
    if (command) {
      for (const auto& placement : command->placements) {
        std::cout << "guest: " << placement.host.to_string() << " " << placement.where << '\n';
      }
      std::cout << "command:\n  " << vmm::shell_quote(command->arguments) << '\n';
    }
  }
  return plan.refused() ? exit_status_for(ErrorKind::refused) : 0;
}

int run_payload_launch(const GlobalOptions& options, const LaunchArgs& args) {
  const HostPaths paths = options.paths();
  const pci::Bdf bdf = pci::resolve_device_name(options.paths(), args.bdf);
  const payloads::LaunchablePayload payload = payloads::load_for_launch(args.payload);
  payloads::require_fits(payload, std::size_t{args.memory_mib} << 20);
  const std::vector<std::uint8_t> parameters = parameters_for(payload, args);  // before binding
  check_metrics_file(args.metrics_file);
  if (const bind::Plan plan = plan_launch(paths, args, bdf); plan.refused()) {
    return render_launch_plan(options, bdf, plan, std::nullopt, false);
  }
  std::ostream* progress = options.json ? nullptr : &std::cout;
  if (progress)
    *progress << "launch " << bdf.to_string() << " with payload " << payload.name << '\n';
  const SignalGuard signals;
  bind::BindingSession session(paths, bdf, session_options(args, progress));
  vmm::LaunchResult result;
  {
    vfio::OpenedDevice opened = vfio::open_vfio_device(paths, bdf);
    vmm::LaunchOptions launch;
    launch.memory = std::size_t{args.memory_mib} << 20;
    launch.timeout = args.timeout;
    launch.parameters = parameters;
    launch.intx_only = args.interrupts == "intx";
    launch.start = process_start();
    launch.cancelled = [] { return SignalGuard::received() != 0; };
    launch.report_interval = args.interval;
    if (args.dirty_log) {
      launch.dirty_log.emplace();
      launch.dirty_log->allow_ring = args.dirty_mechanism != "bitmap";
      launch.require_dirty_ring = args.dirty_mechanism == "ring";
    }
    std::optional<MetricsFile> metrics;
    if (!args.metrics_file.empty()) metrics.emplace(args.metrics_file, bdf, payload.name);
    if (metrics || (args.dirty_log && progress)) {
      launch.on_report = [&metrics, progress](const vmm::LaunchReport& report) {
        if (metrics) metrics->write(report.statistics);
        if (report.dirty && progress && !report.final) {
          *progress << "dirty pages at " << vmm::describe_interval(*report.dirty) << '\n'
                    << std::flush;
        }
      };
    }
    result = vmm::launch_payload(paths, opened, payload.image, launch);
  }
  if (!options.json) print_payload_report(args, bdf, result);
  session.restore();
  if (options.json) {
    print_json(std::cout, payload_result_json(bdf, payload.name, result, session.moved()));
  } else {
    std::cout << "devices restored to their original drivers\n"
              << (result.passed ? "result: passed\n" : "result: FAILED: " + result.failure + "\n");
  }
  return result.passed ? 0 : 1;
}

// What the guest needs from the host, found and checked before anything moves: a QEMU that
// dies preallocating hugepages, or finds no OVMF, would only bind and restore for nothing.
struct GuestResources {
  std::optional<vmm::OvmfFirmware> ovmf;
  std::optional<std::uint64_t> hugepage_size;
  vmm::CpuList pin;
  vmm::CpuList emulator_pin;
};

GuestResources check_guest_resources(const HostPaths& paths, const LaunchArgs& args) {
  GuestResources resources;
  if (!args.name.empty()) vmm::validate_guest_name(args.name);
  if (args.firmware == "uefi") resources.ovmf = vmm::require_ovmf(paths);
  if (!args.hugepages.empty()) {
    const std::uint64_t page = vmm::parse_hugepage_size(args.hugepages);
    const auto bytes = vmm::initial_memory_bytes(args.qemu_arguments);
    if (!bytes) {
      throw Error("launch", "--hugepages needs a guest RAM size QEMU accepts (-m SIZE)")
          .kind(ErrorKind::usage);
    }
    vmm::require_hugepages(paths, page, *bytes);
    resources.hugepage_size = page;
  }
  if (!args.pin.empty()) {
    resources.pin = vmm::parse_cpu_list(args.pin, "--pin");
    if (!args.emulator_pin.empty()) {
      resources.emulator_pin = vmm::parse_cpu_list(args.emulator_pin, "--emulator-pin");
    }
    // The vCPU count: --cpus, else QEMU's default of one; with the user's own -smp (a topology
    // such as sockets=1,cores=4,threads=2) one CPU per vCPU of --pin, checked against the vCPUs
    // QEMU reports before anything is pinned.
    unsigned vcpus = args.cpus;
    if (vcpus == 0) {
      vcpus = vmm::option_values(args.qemu_arguments, "-smp").empty()
                  ? 1
                  : static_cast<unsigned>(resources.pin.size());
    }
    vmm::check_cpu_pinning(vcpus, resources.pin, resources.emulator_pin, vmm::online_cpus(paths));
  }
  return resources;
}

// What one QEMU run keeps on the host: a private folder in /run/vfiokit (mkdtemp: 0700, a name
// nobody can predict, so neither another user, who could drive QEMU over the socket, nor a
// second vfiokit in another PID namespace meets it) with the QMP socket and the OVMF variable
// copy of a guest without --name. Removed with what is in it once QEMU is gone: QEMU, run as
// --run-as's user, cannot unlink its socket in root's folder.
class RunFolder {
 public:
  static constexpr std::string_view kQmpSocket = "qmp.sock";
  static constexpr std::string_view kUefiVars = "OVMF_VARS.fd";

  // What a dry run shows: the folder's name is made only when it is created.
  static std::filesystem::path planned(const HostPaths& paths) {
    return paths.run / "vfiokit" / "launch-XXXXXX";
  }
  explicit RunFolder(const HostPaths& paths) {
    const StateDir parent = StateDir::create(paths.run / "vfiokit", 0755);
    std::string name = (parent.path() / "launch-XXXXXX").string();
    if (::mkdtemp(name.data()) == nullptr) {
      throw Error::from_last_errno("launch", "cannot make the run's folder").with("path", name);
    }
    path_ = name;
  }
  RunFolder(const RunFolder&) = delete;
  RunFolder& operator=(const RunFolder&) = delete;
  ~RunFolder() {
    std::error_code error;
    std::filesystem::remove_all(path_, error);
    if (error) log::warn("could not remove {}: {}", path_.string(), error.message());
  }
  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

 private:
  std::filesystem::path path_;
};

// The guest's UEFI variable store: its own under --name, kept between runs; without a name a
// copy for this run only, in the run's folder.
std::filesystem::path uefi_vars_path(const HostPaths& paths, const LaunchArgs& args,
                                     const std::filesystem::path& run_folder) {
  if (!args.name.empty()) return paths.var_lib / "vfiokit/guests" / args.name / "OVMF_VARS.fd";
  return run_folder / RunFolder::kUefiVars;
}

std::filesystem::path prepare_uefi_vars(const HostPaths& paths, const LaunchArgs& args,
                                        const vmm::OvmfFirmware& firmware,
                                        const RunFolder& run_folder) {
  if (!args.name.empty()) return vmm::guest_vars(paths, args.name, firmware).path;
  const auto folder = StateDir::open(run_folder.path());
  if (!folder) throw Error("launch", "the run's folder is gone").with("path", run_folder.path());
  folder->write_file_durable(RunFolder::kUefiVars, read_file(firmware.vars_template), 0600);
  return run_folder.path() / RunFolder::kUefiVars;
}

// QEMU, stopped by -S, gets its vCPU threads pinned over QMP, verified, then `cont` (when
// vfiokit paused it). Throws when QEMU never answers or a thread cannot be pinned as asked.
// QEMU answers only once it has allocated and DMA-mapped all guest RAM: for a large guest that
// takes long, so the wait ends when QEMU exits or a signal came, with a generous backstop.
vmm::PinningReport pin_guest(const HostPaths& paths, ChildProcess& qemu,
                             const vmm::QemuCommand& command, const GuestResources& resources,
                             const std::filesystem::path& qmp_socket) {
  vmm::QmpClient qmp = vmm::QmpClient::connect(
      qmp_socket, std::chrono::steady_clock::now() + std::chrono::minutes(10), [&qemu] {
        return SignalGuard::received() == 0 && !qemu.wait_for(std::chrono::milliseconds(0));
      });
  vmm::LinuxAffinity affinity(paths);
  vmm::PinningReport report = vmm::pin_guest_threads(affinity, qemu.pid(), qmp.query_cpus_fast(),
                                                     resources.pin, resources.emulator_pin);
  if (!report.all_match) {
    std::vector<std::string> off;
    for (const auto& thread : report.threads) {
      if (!thread.matches()) {
        off.push_back(thread.role + " (thread " + std::to_string(thread.thread_id) + ") runs on " +
                      vmm::format_cpu_list(thread.actual) + ", not " +
                      vmm::format_cpu_list(thread.requested));
      }
    }
    throw Error("launch", "the kernel did not pin QEMU's threads as asked: " + join(off, "; "))
        .hint(
            "a cpuset (cgroup) may exclude those CPUs: check cpuset.cpus.effective of "
            "vfiokit's cgroup, or pick CPUs it allows");
  }
  if (command.paused) qmp.execute("cont");
  return report;
}

void print_pinning(std::ostream& out, const vmm::PinningReport& pinning) {
  for (const auto& thread : pinning.threads) {
    out << "pinned: " << thread.role << " (thread " << thread.thread_id << ") on CPUs "
        << vmm::format_cpu_list(thread.actual)
        << (thread.matches() ? ", verified" : ", NOT as asked") << '\n';
  }
  out << std::flush;
}

// Ends the passing on of signals to QEMU however run_qemu is left: its pid may be reused.
struct ForwardingEnds {
  ForwardingEnds() = default;
  ForwardingEnds(const ForwardingEnds&) = delete;
  ForwardingEnds& operator=(const ForwardingEnds&) = delete;
  ~ForwardingEnds() { SignalGuard::forward_to(0); }
};

// Runs QEMU as a child that dies with vfiokit (a QEMU left running would keep the group open,
// and `vfiokit restore` would have to wait for it), passing SIGINT/SIGTERM/SIGHUP on. With
// pinning, its threads are pinned before the guest runs; a pinning that fails stops QEMU
// (SIGTERM) and is thrown after it exited, unless a signal stopped it meanwhile: then the run
// ends as any stopped run does. Its exit status, or 128 + the signal that ended it.
int run_qemu(const HostPaths& paths, const vmm::QemuCommand& command,
             std::optional<std::uint64_t> memlock_limit, const GuestResources& resources,
             const std::filesystem::path& qmp_socket, std::optional<vmm::PinningReport>& pinning,
             std::ostream* progress) {
  ChildOptions child_options;
  child_options.parent_death_signal = SIGTERM;
  child_options.input = ChildInput::inherit;  // -nographic's serial console and monitor
  child_options.memlock_limit = memlock_limit;
  ChildProcess qemu = ChildProcess::spawn(command.arguments, child_options);
  const ForwardingEnds forwarding;
  SignalGuard::forward_to(qemu.pid());
  // A signal that came before the line above has not been passed on yet.
  if (const int signal = SignalGuard::received()) qemu.kill(signal);
  if (!resources.pin.empty() && !SignalGuard::received()) {
    try {
      pinning = pin_guest(paths, qemu, command, resources, qmp_socket);
      if (progress) print_pinning(*progress, *pinning);
    } catch (...) {
      qemu.kill(SIGTERM);
      const ExitStatus status = qemu.wait();
      if (SignalGuard::received() != 0) return status.value();  // QEMU went on the signal
      throw;
    }
  }
  return qemu.wait().value();
}

Json pinning_json(const std::optional<vmm::PinningReport>& pinning) {
  if (!pinning) return nullptr;
  Json threads = Json::array();
  for (const auto& thread : pinning->threads) {
    threads.push_back({{"thread_id", thread.thread_id},
                       {"role", thread.role},
                       {"requested", vmm::format_cpu_list(thread.requested)},
                       {"actual", vmm::format_cpu_list(thread.actual)}});
  }
  return {{"verified", pinning->all_match}, {"threads", threads}};
}

// Before anything moves: a QEMU that cannot start would only bind and restore for nothing.
void require_qemu(const std::string& binary) {
  const char* path = std::getenv("PATH");
  if (find_program(binary, path ? path : "/usr/bin:/bin")) return;
  throw Error("launch", "QEMU '" + binary + "' is not installed or not executable")
      .kind(ErrorKind::usage)
      .hint("install it (apt-get install qemu-system-x86) or name it with --qemu-binary PATH");
}

// The /dev/vfio/N of every group the session bound, lent to the user QEMU becomes: QEMU opens
// them before it drops root, but a group it opens later (hotplug) must be its own.
std::vector<iommu::GroupNodeLease> lend_group_nodes(const HostPaths& paths,
                                                    const bind::BindingSession& session,
                                                    const vmm::RunAs& run_as) {
  std::set<unsigned> groups;
  for (const auto& bdf : session.endpoints()) {
    if (const auto group = pci::read_pci_device(paths, bdf).iommu_group) groups.insert(*group);
  }
  std::vector<iommu::GroupNodeLease> leases;
  for (const unsigned group : groups) {
    leases.emplace_back(iommu::vfio_group_node(paths, group), run_as.uid, run_as.gid);
  }
  return leases;
}

// --device-opt's devices named by address or interface (before anything moves), checked to be
// among the functions passed through.
std::map<pci::Bdf, std::vector<std::string>> resolve_device_options(const HostPaths& paths,
                                                                    const LaunchArgs& args) {
  std::map<pci::Bdf, std::vector<std::string>> options;
  for (const auto& text : args.device_options) {
    const vmm::DeviceOptionText parsed = vmm::parse_device_option(text);
    const pci::Bdf bdf = pci::resolve_device_name(paths, parsed.device);
    auto& list = options[bdf];
    list.insert(list.end(), parsed.options.begin(), parsed.options.end());
  }
  return options;
}

// The guest's QEMU launch for these endpoints (the plan's or the session's).
struct QemuInputs {
  std::map<pci::Bdf, std::vector<std::string>> device_options;
  std::optional<vmm::RunAs> run_as;
  GuestResources resources;
};

vmm::QemuLaunch qemu_launch_for(const HostPaths& paths, const LaunchArgs& args,
                                const std::vector<pci::Bdf>& endpoints, const QemuInputs& inputs,
                                const std::filesystem::path& uefi_vars,
                                const std::filesystem::path& run_folder) {
  const auto& options = inputs.device_options;
  vmm::QemuLaunch launch;
  launch.binary = args.qemu_binary;
  launch.user_arguments = args.qemu_arguments;
  launch.flat = args.flat;
  launch.run_as = inputs.run_as;
  if (args.cpus != 0) launch.cpus = args.cpus;
  if (!args.name.empty()) launch.name = args.name;
  if (inputs.resources.ovmf) launch.uefi = vmm::UefiPflash{inputs.resources.ovmf->code, uefi_vars};
  launch.hugepage_size = inputs.resources.hugepage_size;
  if (!inputs.resources.pin.empty()) launch.qmp_socket = run_folder / RunFolder::kQmpSocket;
  for (const auto& [bdf, list] : options) {
    if (std::find(endpoints.begin(), endpoints.end(), bdf) == endpoints.end()) {
      std::vector<std::string> passed;
      for (const auto& endpoint : endpoints) passed.push_back(endpoint.to_string());
      throw Error("launch",
                  "--device-opt names " + bdf.to_string() + ", which this guest does not get")
          .kind(ErrorKind::usage)
          .hint("the guest gets " + join(passed, ", ") + "; give options for those");
    }
  }
  for (const auto& bdf : endpoints) {
    vmm::QemuDevice device;
    device.host = bdf;
    device.class_code = pci::read_pci_device(paths, bdf, pci::ConfigDepth::header).class_code;
    if (const auto found = options.find(bdf); found != options.end())
      device.options = found->second;
    launch.devices.push_back(std::move(device));
  }
  return launch;
}

int run_qemu_launch(const GlobalOptions& options, const LaunchArgs& args) {
  const HostPaths paths = options.paths();
  const pci::Bdf bdf = pci::resolve_device_name(options.paths(), args.bdf);
  QemuInputs inputs;
  if (!args.run_as.empty()) inputs.run_as = vmm::resolve_run_as(args.run_as);
  if (!args.dry_run) require_qemu(args.qemu_binary);
  inputs.device_options = resolve_device_options(paths, args);
  inputs.resources = check_guest_resources(paths, args);
  const bind::Plan plan = plan_launch(paths, args, bdf);
  const auto planned_folder = RunFolder::planned(paths);
  const vmm::QemuLaunch planned =
      qemu_launch_for(paths, args, plan.endpoints(), inputs,
                      uefi_vars_path(paths, args, planned_folder), planned_folder);
  const vmm::QemuCommand planned_command = vmm::build_qemu_command(planned);
  vmm::check_device_option_files(planned.devices);
  if (args.dry_run || plan.refused()) {
    return render_launch_plan(options, bdf, plan, planned_command, args.dry_run);
  }
  std::optional<std::uint64_t> memlock;
  if (inputs.run_as) {
    memlock = vmm::run_as_memlock_limit(vmm::guest_memory_bytes(args.qemu_arguments).value_or(0));
  }
  std::ostream* progress = options.json ? nullptr : &std::cout;
  // Made before the devices move, removed after they are home (members end in reverse order).
  const RunFolder run_folder(paths);
  std::optional<std::filesystem::path> uefi_vars;
  if (inputs.resources.ovmf) {
    uefi_vars = prepare_uefi_vars(paths, args, *inputs.resources.ovmf, run_folder);
  }
  const SignalGuard signals;
  bind::BindingSession session(paths, bdf, session_options(args, progress));
  const vmm::QemuCommand command = vmm::build_qemu_command(qemu_launch_for(
      paths, args, session.endpoints(), inputs, uefi_vars.value_or(""), run_folder.path()));
  if (const int signal = SignalGuard::received()) {  // while binding: no guest to start
    session.restore();
    throw Error("launch", "stopped by " + signal_name(signal) +
                              " before QEMU started; the devices are back on their drivers");
  }
  if (progress) {
    for (const auto& placement : command.placements) {
      *progress << "guest: " << placement.host.to_string() << " " << placement.where << '\n';
    }
    if (uefi_vars) {
      *progress << "UEFI variables: " << uefi_vars->string()
                << (args.name.empty() ? " (for this run only; --name NAME keeps them)"
                                      : " (kept for the next run)")
                << '\n';
    }
    *progress << "running: " << vmm::shell_quote(command.arguments) << '\n' << std::flush;
  }
  int status = 0;
  std::optional<vmm::PinningReport> pinning;
  {
    // Given back before the session restores the drivers (which removes the nodes).
    const auto leases = inputs.run_as ? lend_group_nodes(paths, session, *inputs.run_as)
                                      : std::vector<iommu::GroupNodeLease>{};
    status = run_qemu(paths, command, memlock, inputs.resources,
                      run_folder.path() / RunFolder::kQmpSocket, pinning, progress);
  }
  session.restore();
  const int forwarded = SignalGuard::received();
  if (options.json) {
    print_json(std::cout,
               Json{{"operation", "launch"},
                    {"bdf", bdf.to_string()},
                    {"dry_run", false},
                    {"command", command.arguments},
                    {"guest_devices", placements_json(command.placements)},
                    {"pinning", pinning_json(pinning)},
                    {"qemu_exit_status", status},
                    {"signal_passed_on", forwarded ? Json(signal_name(forwarded)) : Json(nullptr)},
                    {"restored", true}});
  } else {
    std::cout << "QEMU exited with status " << status;
    if (forwarded) std::cout << " after " << signal_name(forwarded) << ", which vfiokit passed on";
    std::cout << "; devices restored to their original drivers\n";
  }
  return status == 0 ? 0 : 1;
}

}  // namespace

Command add_launch_command(CLI::App& app, GlobalOptions& options) {
  auto args = std::make_shared<LaunchArgs>();
  CLI::App* sub = app.add_subcommand(
      "launch",
      "Run a guest that owns the device: a payload in the built-in VMM (--payload) or a "
      "full OS in QEMU (--qemu -- QEMU-ARGS...). The device's IOMMU group is bound for "
      "the run and restored after it, whatever happens");
  sub->add_option("BDF", args->bdf, "PCI address of the device")->required();
  auto* payload = sub->add_option("--payload", args->payload,
                                  "A payload vfiokit carries (edu-dma, dirty-pages, edu-intx, "
                                  "nvme-identify, faulty, silent) or "
                                  "the path of a flat binary (docs/payloads.md)");
  auto* qemu = sub->add_flag("--qemu", args->qemu, "Run QEMU with the device passed through");
  payload->excludes(qemu);
  sub->add_option("QEMU_ARGS", args->qemu_arguments, "Arguments for QEMU, after --");
  sub->add_flag("--dry-run", args->dry_run,
                "With --qemu: print the plan and the command; change nothing");
  sub->add_option("--qemu-binary", args->qemu_binary, "QEMU to run")->capture_default_str();
  sub->add_option("--run-as", args->run_as,
                  "With --qemu: USER[:GROUP] (or UID:GID) that QEMU becomes once it has set up "
                  "(its -runas); the group's /dev/vfio nodes are lent to it and its locked-memory "
                  "limit covers the guest's RAM. Recommended: a guest that breaks out of QEMU "
                  "is then not root");
  sub->add_flag("--flat", args->flat,
                "With --qemu on q35: no pcie-root-port per device; devices on the root bus");
  sub->add_option("--device-opt", args->device_options,
                  "With --qemu: DEVICE:KEY=VALUE[,KEY=VALUE] added to that function's -device "
                  "vfio-pci (romfile=, rombar=, x-vga=, display=, ...); repeatable")
      ->allow_extra_args(false);  // one value each: what follows is the BDF or QEMU's
  sub->add_option("--firmware", args->firmware,
                  "With --qemu: uefi (OVMF, with the guest's own variable store) or bios "
                  "(QEMU's SeaBIOS)")
      ->check(CLI::IsMember({"uefi", "bios"}));
  // A value always: CLI11 takes a `--` after an option whose value is optional as the end of
  // that option, and QEMU's arguments would then be read as vfiokit's.
  sub->add_option("--hugepages", args->hugepages,
                  "With --qemu: back guest RAM (-m) with preallocated hugepages of this size "
                  "(2M or 1G), checked before anything is bound");
  sub->add_option("--cpus", args->cpus, "With --qemu: the guest's vCPUs (-smp N)")
      ->check(CLI::Range(1u, 1024u));
  auto* pin = sub->add_option("--pin", args->pin,
                              "With --qemu: one host CPU per vCPU (a list such as 2-5; as many as "
                              "--cpus or QEMU's -smp give); vCPU i runs on the i-th, pinned over "
                              "QMP before the guest starts, and verified");
  sub->add_option("--emulator-pin", args->emulator_pin,
                  "With --pin: host CPUs for QEMU's other threads")
      ->needs(pin);
  sub->add_option("--name", args->name,
                  "With --qemu: the guest's name (QEMU's -name; with --firmware uefi, whose "
                  "variable store to use)");
  sub->add_option("--expect-serial", args->expected_serial, "nvme-identify: the serial to expect");
  sub->add_option("--interrupts", args->interrupts,
                  "Payloads: how the device may interrupt the guest: auto (MSI-X, MSI or INTx, "
                  "as the guest enables them) or intx (MSI and MSI-X hidden, the pin only)")
      ->check(CLI::IsMember({"auto", "intx"}))
      ->capture_default_str();
  add_seconds_option(sub, "--timeout", args->timeout, 0.001, 86400,
                     "How long to wait for the payload's result");
  sub->add_option("--memory", args->memory_mib, "Guest RAM in MiB (payloads)")
      ->check(CLI::Range(4u, 1024u))
      ->capture_default_str();
  sub->add_flag("--stats", args->stats,
                "With --payload: print what the guest and the device did at the end (KVM's "
                "counters, interrupts per vector, trapped BAR accesses, DMA-mapped RAM); "
                "--json always carries them");
  sub->add_option("--metrics-file", args->metrics_file,
                  "With --payload: keep the same statistics in this file in Prometheus's text "
                  "format (node_exporter's textfile collector reads it), replaced atomically "
                  "every --interval while the guest runs and once after it stopped");
  auto* dirty_log = sub->add_flag(
      "--dirty-log", args->dirty_log,
      "With --payload: log the guest pages written by the vCPU (KVM's dirty ring, else its "
      "dirty bitmap) and those VFIO reports for the device (type1: every page pinned for DMA), "
      "every --interval and over the whole run");
  sub->add_option("--dirty-mechanism", args->dirty_mechanism,
                  "With --dirty-log: ring (fail where KVM has none) or bitmap (KVM_GET_DIRTY_LOG "
                  "even where the ring exists); default: the ring where KVM has it")
      ->check(CLI::IsMember({"ring", "bitmap"}))
      ->needs(dirty_log);
  auto* interval =
      add_seconds_option(sub, "--interval", args->interval, 0.01, 3600,
                         "How often --dirty-log reports and --metrics-file is rewritten while the "
                         "guest runs");
  add_wait_option(sub, args->wait);
  sub->add_flag("--json", options.json, "Print JSON");
  // Not --force-group-in-use: a group another process holds cannot be opened for the guest.
  add_force_options(sub, args->force,
                    {bind::Check::boot_vga, bind::Check::display, bind::Check::net,
                     bind::Check::block, bind::Check::sriov});
  sub->callback([args, interval] {
    if (args->payload.empty() && !args->qemu) {
      throw CLI::ValidationError("launch", "give --payload NAME|PATH or --qemu");
    }
    if (!args->qemu && !args->qemu_arguments.empty()) {
      throw CLI::ValidationError("launch", "arguments after the BDF are for QEMU: use --qemu");
    }
    if (!args->run_as.empty() && !args->qemu) {
      throw CLI::ValidationError("launch", "--run-as goes with --qemu");
    }
    const bool guest_options =
        args->flat || !args->device_options.empty() || args->cpus != 0 || !args->name.empty();
    if (guest_options && !args->qemu) {
      throw CLI::ValidationError("launch",
                                 "--flat, --device-opt, --cpus and --name go with --qemu");
    }
    if ((args->stats || !args->metrics_file.empty() || args->dirty_log) && args->qemu) {
      throw CLI::ValidationError("launch",
                                 "--stats, --metrics-file and --dirty-log go with --payload");
    }
    if (interval->count() > 0 && !args->dirty_log && args->metrics_file.empty()) {
      throw CLI::ValidationError("launch", "--interval goes with --dirty-log or --metrics-file");
    }
    if (args->interrupts != "auto" && args->qemu) {
      throw CLI::ValidationError("launch", "--interrupts goes with --payload");
    }
    if (args->dry_run && !args->qemu) {
      throw CLI::ValidationError("launch", "--dry-run goes with --qemu");
    }
  });
  return {sub, [&options, args] {
            return args->qemu ? run_qemu_launch(options, *args)
                              : run_payload_launch(options, *args);
          }};
}

}  // namespace vfiokit::cli
