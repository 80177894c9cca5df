// `vfiokit launch BDF --payload NAME|PATH` (the built-in VMM) and `vfiokit launch BDF --qemu --
// QEMU-ARGS...` (a full OS guest): the device's group on vfio-pci for the run, and back after.
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <iostream>
#include <memory>

#include "base/error.h"
#include "base/fs.h"
#include "base/process.h"
#include "base/text.h"
#include "bind/binding_session.h"
#include "payloads/mailbox.h"
#include "payloads/payloads.h"
#include "tools/vfiokit/binding_report.h"
#include "tools/vfiokit/cli.h"
#include "tools/vfiokit/commands.h"
#include "tools/vfiokit/device_report.h"
#include "vfio/open.h"
#include "vmm/launch.h"
#include "vmm/qemu_command.h"

namespace vfiokit::cli {
namespace {

struct LaunchArgs {
  std::string bdf;
  std::string payload;
  bool qemu = false;
  bool dry_run = false;
  std::string expected_serial;
  double timeout_seconds = 30;
  unsigned memory_mib = 16;  // every built-in payload fits in 5 MiB; pinning less starts sooner
  std::string qemu_binary = "qemu-system-x86_64";
  std::vector<std::string> qemu_arguments;
  double wait_seconds = 30;
  bind::ForceFlags force;
};

std::atomic<bool> g_interrupted{false};
std::atomic<int> g_signal{0};  // the last signal received, for the report
std::atomic<pid_t> g_child{0};

// SIGINT/SIGTERM/SIGHUP while a guest runs: a payload run stops and restores; a QEMU child gets
// the signal passed on, and the devices are restored when it has gone.
void on_signal(int signal) {
  g_interrupted = true;
  g_signal = signal;
  if (const pid_t child = g_child.load(); child > 0) ::kill(child, signal);
}

constexpr int kForwardedSignals[] = {SIGINT, SIGTERM, SIGHUP};

struct SignalGuard {
  SignalGuard() {
    struct sigaction action {};
    action.sa_handler = on_signal;
    sigemptyset(&action.sa_mask);
    for (std::size_t i = 0; i < std::size(kForwardedSignals); ++i) {
      ::sigaction(kForwardedSignals[i], &action, &saved[i]);
    }
  }
  ~SignalGuard() {
    for (std::size_t i = 0; i < std::size(kForwardedSignals); ++i) {
      ::sigaction(kForwardedSignals[i], &saved[i], nullptr);
    }
  }
  SignalGuard(const SignalGuard&) = delete;
  SignalGuard& operator=(const SignalGuard&) = delete;
  struct sigaction saved[std::size(kForwardedSignals)]{};
};

std::chrono::milliseconds milliseconds(double seconds) {
  return std::chrono::milliseconds(static_cast<long long>(seconds * 1000));
}

// The group bound for the run: progress lines as each device moves and comes back, flushed
// because a guest may run for long.
bind::SessionOptions session_options(const LaunchArgs& args, std::ostream* progress) {
  bind::SessionOptions options;
  options.force = args.force;
  options.lock_wait = wait_duration(args.wait_seconds);
  if (progress) {
    options.on_outcome = [progress](const bind::DeviceOutcome& outcome) {
      print_outcome(*progress, outcome);
      *progress << std::flush;
    };
  }
  return options;
}

struct ResolvedPayload {
  std::string name;
  std::vector<std::uint8_t> image;
};

ResolvedPayload resolve_payload(const std::string& name_or_path) {
  if (name_or_path == "irq-probe") {
    throw Error("launch",
                "irq-probe is the guest of `vfiokit selftest --stage irq-kvm`, which "
                "tells it which vectors to expect; it cannot run on its own")
        .kind(ErrorKind::usage)
        .hint("run `vfiokit selftest BDF --stage irq-kvm`");
  }
  if (const auto payload = payloads::find(name_or_path)) {
    return {std::string(payload->name), {payload->image.begin(), payload->image.end()}};
  }
  if (name_or_path.find('/') != std::string::npos || std::filesystem::exists(name_or_path)) {
    if (!std::filesystem::is_regular_file(name_or_path)) {
      throw Error("launch", "payload file '" + name_or_path + "' does not exist")
          .kind(ErrorKind::usage)
          .hint("give a flat binary built as docs/payloads.md describes");
    }
    return {name_or_path, read_bytes(name_or_path, std::size_t{8} << 20)};
  }
  std::vector<std::string> names;
  for (const auto& p : payloads::all()) {
    if (p.name != "irq-probe") names.emplace_back(p.name);
  }
  throw Error("launch", "no payload '" + name_or_path + "'")
      .kind(ErrorKind::usage)
      .hint("vfiokit carries " + join(names, ", ") +
            "; or give the path of your own flat binary "
            "(docs/payloads.md)");
}

std::vector<std::uint8_t> parameters_for(const ResolvedPayload& payload, const LaunchArgs& args) {
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
}

int run_payload_launch(const GlobalOptions& options, const LaunchArgs& args) {
  const HostPaths paths = options.paths();
  const pci::Bdf bdf = pci::parse_bdf_or_throw(args.bdf);
  const ResolvedPayload payload = resolve_payload(args.payload);
  const std::vector<std::uint8_t> parameters = parameters_for(payload, args);  // before binding
  std::ostream* progress = options.json ? nullptr : &std::cout;
  if (progress)
    *progress << "launch " << bdf.to_string() << " with payload " << payload.name << '\n';
  SignalGuard signals;
  g_interrupted = false;
  bind::BindingSession session(paths, bdf, session_options(args, progress));
  vmm::LaunchResult result;
  {
    vfio::OpenedDevice opened = vfio::open_vfio_device(paths, bdf);
    vmm::LaunchOptions launch;
    launch.memory = std::size_t{args.memory_mib} << 20;
    launch.timeout = milliseconds(args.timeout_seconds);
    launch.parameters = parameters;
    launch.start = process_start();
    launch.cancel = &g_interrupted;
    result = vmm::launch_payload(paths, opened, payload.image, launch);
  }
  if (!options.json) print_payload_report(args, bdf, result);
  session.restore();
  if (options.json) {
    Json values = Json::array();
    for (auto v : result.values) values.push_back(v);
    Json timing = Json::object();
    if (result.first_instruction_ms) timing["first_instruction_ms"] = *result.first_instruction_ms;
    if (result.first_mailbox_ms) timing["first_mailbox_ms"] = *result.first_mailbox_ms;
    if (result.first_instruction_monotonic_ns)
      timing["first_instruction_monotonic_ns"] = *result.first_instruction_monotonic_ns;
    if (result.first_mailbox_monotonic_ns)
      timing["first_mailbox_monotonic_ns"] = *result.first_mailbox_monotonic_ns;
    Json moved = Json::array();
    for (const auto& b : session.moved()) moved.push_back(b.to_string());
    print_json(std::cout,
               Json{{"bdf", bdf.to_string()},
                    {"payload", payload.name},
                    {"passed", result.passed},
                    {"result", result.done_code ? Json(vmm::describe_done_code(*result.done_code))
                                                : Json(nullptr)},
                    {"done_code", Json(result.done_code)},
                    {"failure", result.failure.empty() ? Json(nullptr) : Json(result.failure)},
                    {"guest_bdf", result.guest_bdf},
                    {"layout", result.layout},
                    {"values", values},
                    {"log", result.log},
                    {"timing", timing},
                    {"bound_and_restored", moved}});
  } else {
    std::cout << "devices restored to their original drivers\n"
              << (result.passed ? "result: passed\n" : "result: FAILED: " + result.failure + "\n");
  }
  return result.passed ? 0 : 1;
}

// Runs QEMU as a child that dies with vfiokit (PR_SET_PDEATHSIG), passing signals on.
int run_qemu(const std::vector<std::string>& command) {
  const pid_t parent = ::getpid();
  const pid_t child = ::fork();
  if (child < 0) {
    const int err = errno;
    throw Error::from_errno(err, "fork QEMU");
  }
  if (child == 0) {
    // If vfiokit is killed, QEMU must go too: otherwise it keeps the group open and `vfiokit
    // restore` would have to wait for it.
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(127);
    std::vector<char*> argv;
    for (const auto& a : command) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execvp(argv[0], argv.data());
    std::fprintf(stderr, "vfiokit: cannot run %s: %s\n", argv[0], std::strerror(errno));
    ::_exit(127);
  }
  g_child = child;
  // A signal that came between fork() and the line above has not been passed on yet.
  if (g_interrupted) ::kill(child, g_signal.load());
  int status = 0;
  pid_t waited;
  while ((waited = ::waitpid(child, &status, 0)) < 0 && errno == EINTR) {
  }
  const int err = errno;
  g_child = 0;
  if (waited < 0) throw Error::from_errno(err, "wait for QEMU").with("pid", std::to_string(child));
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// Before anything moves: a QEMU that cannot start would only bind and restore for nothing.
void require_qemu(const std::string& binary) {
  const char* path = std::getenv("PATH");
  if (find_program(binary, path ? path : "/usr/bin:/bin")) return;
  throw Error("launch", "QEMU '" + binary + "' is not installed or not executable")
      .kind(ErrorKind::usage)
      .hint("install it (apt-get install qemu-system-x86) or name it with --qemu-binary PATH");
}

int run_qemu_launch(const GlobalOptions& options, const LaunchArgs& args) {
  const HostPaths paths = options.paths();
  const pci::Bdf bdf = pci::parse_bdf_or_throw(args.bdf);
  require_qemu(args.qemu_binary);
  if (args.dry_run) {
    const bind::Journal journal(paths.run / "vfiokit");
    const std::vector<pci::Bdf> requested{bdf};
    const auto view = bind::gather_host_view(paths, requested, journal, ::getpid());
    const auto plan = bind::plan_bind(view, requested, args.force);
    const auto command = vmm::qemu_command(args.qemu_binary, args.qemu_arguments, plan.endpoints());
    if (options.json) {
      print_json(std::cout, Json{{"operation", "launch"},
                                 {"dry_run", true},
                                 {"plan", plan_json(plan)},
                                 {"command", command}});
    } else {
      print_plan(std::cout, plan, "plan: bind for the guest, restore when QEMU exits");
      if (plan.refused()) print_refusals(std::cerr, plan);
      std::cout << "command:\n  " << vmm::shell_quote(command) << '\n';
    }
    return plan.refused() ? exit_status_for(ErrorKind::refused) : 0;
  }
  std::ostream* progress = options.json ? nullptr : &std::cout;
  SignalGuard signals;
  g_interrupted = false;
  g_signal = 0;
  bind::BindingSession session(paths, bdf, session_options(args, progress));
  const auto command =
      vmm::qemu_command(args.qemu_binary, args.qemu_arguments, session.endpoints());
  if (g_interrupted) {  // stopped while binding (or waiting for the lock): no guest to start
    session.restore();
    throw Error("launch", std::string("stopped by SIG") + sigabbrev_np(g_signal.load()) +
                              " before QEMU started; the devices are back on their drivers");
  }
  if (progress) *progress << "running: " << vmm::shell_quote(command) << '\n' << std::flush;
  const int status = run_qemu(command);
  session.restore();
  if (options.json) {
    const int forwarded = g_signal.load();
    print_json(std::cout,
               Json{{"command", command},
                    {"qemu_exit_status", status},
                    {"signal_passed_on", forwarded ? Json(sigabbrev_np(forwarded)) : Json(nullptr)},
                    {"restored", true}});
  } else {
    std::cout << "QEMU exited with status " << status;
    if (const int forwarded = g_signal.load())
      std::cout << " after SIG" << sigabbrev_np(forwarded) << ", which vfiokit passed on";
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
  auto* payload =
      sub->add_option("--payload", args->payload,
                      "A payload vfiokit carries (edu-dma, nvme-identify, faulty, silent) or "
                      "the path of a flat binary (docs/payloads.md)");
  auto* qemu = sub->add_flag("--qemu", args->qemu, "Run QEMU with the device passed through");
  payload->excludes(qemu);
  sub->add_option("QEMU_ARGS", args->qemu_arguments, "Arguments for QEMU, after --");
  sub->add_flag("--dry-run", args->dry_run,
                "With --qemu: print the plan and the command; change nothing");
  sub->add_option("--qemu-binary", args->qemu_binary, "QEMU to run")->capture_default_str();
  sub->add_option("--expect-serial", args->expected_serial, "nvme-identify: the serial to expect");
  sub->add_option("--timeout", args->timeout_seconds, "Seconds to wait for the payload's result")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  sub->add_option("--memory", args->memory_mib, "Guest RAM in MiB (payloads)")
      ->check(CLI::Range(4u, 1024u))
      ->capture_default_str();
  add_wait_option(sub, args->wait_seconds);
  sub->add_flag("--json", options.json, "Print JSON");
  // Not --force-group-in-use: a group another process holds cannot be opened for the guest.
  add_force_options(
      sub, args->force,
      {bind::Check::boot_vga, bind::Check::net, bind::Check::block, bind::Check::sriov});
  sub->callback([args] {
    if (args->payload.empty() && !args->qemu) {
      throw CLI::ValidationError("launch", "give --payload NAME|PATH or --qemu");
    }
    if (!args->qemu && !args->qemu_arguments.empty()) {
      throw CLI::ValidationError("launch", "arguments after the BDF are for QEMU: use --qemu");
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
