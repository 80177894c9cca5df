// `vfiokit bind`, `unbind`, `restore` and `persist`: moving devices between host drivers and
// vfio-pci, with checks first, the journal, rollback, and one process at a time.
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <functional>
#include <iostream>
#include <memory>

#include "tools/vfiokit/binding_report.h"
#include "tools/vfiokit/commands.h"
#include "tools/vfiokit/device_report.h"
#include "tools/vfiokit/report.h"
#include "vfiokit/base/error.h"
#include "vfiokit/base/fs.h"
#include "vfiokit/base/log.h"
#include "vfiokit/base/progress.h"
#include "vfiokit/base/signals.h"
#include "vfiokit/base/text.h"
#include "vfiokit/bind/execute.h"
#include "vfiokit/bind/lock.h"
#include "vfiokit/bind/persist.h"
#include "vfiokit/bind/plan.h"
#include "vfiokit/pci/select.h"

namespace vfiokit::cli {
namespace {
namespace fs = std::filesystem;

struct BindingArgs {
  std::vector<std::string> bdfs;
  bool dry_run = false;
  bool all = false;     // restore --all
  bool remove = false;  // persist --remove
  bool list = false;    // persist --list
  bool apply = false;   // persist --apply
  std::string owner;
  std::chrono::milliseconds wait{30000};
  bind::ForceFlags force;
};

// PCI addresses or network interface names, as given.
std::vector<pci::Bdf> parse_bdfs(const HostPaths& paths, const std::vector<std::string>& texts) {
  std::vector<pci::Bdf> bdfs;
  for (const auto& text : texts) bdfs.push_back(pci::resolve_device_name(paths, text));
  return bdfs;
}

// "USER[:GROUP]", names or numbers; the user's primary group when GROUP is left out.
bind::Owner parse_owner(const std::string& text) {
  const std::size_t colon = text.find(':');
  const std::string user = text.substr(0, colon);
  const std::string group = colon == std::string::npos ? "" : text.substr(colon + 1);
  bind::Owner owner;
  if (const passwd* pw = ::getpwnam(user.c_str())) {
    owner = {pw->pw_uid, pw->pw_gid};
  } else if (auto uid = parse_uint(user); uid && *uid < 0xffffffffu) {
    owner = {static_cast<uid_t>(*uid), static_cast<gid_t>(*uid)};
  } else {
    throw Error("parse --owner", "no user '" + user + "'")
        .kind(ErrorKind::usage)
        .hint("write --owner USER or USER:GROUP with an existing user and group");
  }
  if (!group.empty()) {
    if (const struct group* gr = ::getgrnam(group.c_str())) {
      owner.gid = gr->gr_gid;
    } else if (auto gid = parse_uint(group); gid && *gid < 0xffffffffu) {
      owner.gid = static_cast<gid_t>(*gid);
    } else {
      throw Error("parse --owner", "no group '" + group + "'")
          .kind(ErrorKind::usage)
          .hint("write --owner USER or USER:GROUP with an existing user and group");
    }
  }
  return owner;
}

// What each of the executor's steps is doing, for the progress line.
std::string_view step_description(std::string_view step) noexcept {
  if (step == "journal") return "recording its home in the journal";
  if (step == "override") return "setting driver_override";
  if (step == "unbind") return "unbinding (waiting for the driver to let go)";
  if (step == "probe") return "probing the new driver";
  if (step == "verify") return "checking which driver took it";
  if (step == "home") return "returning it to its driver";
  return step;
}

// VFIOKIT_DEBUG_STOP_AT=STEP[@BDF] stops the process (SIGSTOP) before that step: the hook the
// rig tests use to kill -9 a bind midway and prove `restore`. Documented in docs/cli.md.
// `progress` shows each step on a terminal; it must outlive the execution.
bind::ExecuteOptions execute_options(const BindingArgs& args, ProgressLine& progress) {
  bind::ExecuteOptions options;
  options.pid = ::getpid();
  options.interrupted = SignalGuard::received;
  if (!args.owner.empty()) options.owner = parse_owner(args.owner);
  const char* stop_at = std::getenv("VFIOKIT_DEBUG_STOP_AT");
  const std::string stop = stop_at ? stop_at : "";
  options.on_step = [stop, &progress](std::string_view step, const pci::Bdf& bdf) {
    log::info("{}: {}", bdf.to_string(), step);
    progress.show(bdf.to_string() + ": " + std::string(step_description(step)));
    if (stop.empty()) return;
    const std::size_t at = stop.find('@');
    if (stop.substr(0, at) != step) return;
    if (at != std::string::npos && stop.substr(at + 1) != bdf.to_string()) return;
    progress.clear();
    std::cerr << "vfiokit: stopping before " << step << " of " << bdf.to_string()
              << " (VFIOKIT_DEBUG_STOP_AT)" << std::endl;
    ::raise(SIGSTOP);
  };
  return options;
}

// A signal ends the wait for another vfiokit: nothing has changed yet.
bind::LockOptions lock_options(const BindingArgs& args) {
  return {args.wait, "/proc", SignalGuard::received};
}

// bind, unbind, restore and persist run with SIGINT, SIGTERM and SIGHUP recorded (and SIGPIPE
// ignored): a bind stops at its next step and takes home what it touched, a homecoming or a
// persist finishes, and the exit status is then 128 + the signal, with the report or the error
// saying which signal came and where each device is.
int run_guarded(const GlobalOptions& options, const std::function<int()>& command) {
  const SignalGuard signals;
  int status = 0;
  try {
    status = command();
  } catch (Error& e) {
    const int signal = SignalGuard::received();
    if (signal == 0) throw;
    if (e.context_value("signal").empty()) e.with("signal", signal_name(signal));
    print_error(e, options.json);
    std::cout.flush();
    return 128 + signal;
  }
  // While SIGPIPE is still ignored: a reader that is gone makes this fail, not kill.
  std::cout.flush();
  const int signal = SignalGuard::received();
  return signal != 0 ? 128 + signal : status;
}

// The line a report ends with when a signal came while the command ran.
void print_signal_note(std::ostream& out, int signal) {
  if (signal == 0) return;
  out << signal_name(signal)
      << " came while vfiokit ran; it finished first, so everything is as shown above\n";
}

Json signal_json(int signal) { return signal != 0 ? Json(signal_name(signal)) : Json(nullptr); }

// What bind, unbind or restore planned and did; rendered once, as text or JSON.
struct BindingReport {
  std::string operation;  // "bind", "unbind", "restore"
  bool dry_run = false;
  bind::Plan plan;
  std::optional<bind::ExecuteResult> result;  // when it ran
  std::vector<bind::JournalProblem> left;     // restore: entries it could not use
  int signal = 0;                             // SIGINT, SIGTERM or SIGHUP that came meanwhile
};

std::string plan_title(const std::string& operation) {
  return operation == "bind" ? "plan: move to vfio-pci"
                             : "plan: " + operation + " to the original drivers";
}

Json problems_json(const std::vector<bind::JournalProblem>& problems) {
  Json list = Json::array();
  for (const auto& p : problems) {
    list.push_back({{"bdf", p.bdf ? Json(p.bdf->to_string()) : Json(nullptr)},
                    {"path", p.path.string()},
                    {"problem", p.problem},
                    {"fix", p.fix}});
  }
  return list;
}

void print_problems(std::ostream& out, const std::vector<bind::JournalProblem>& problems) {
  if (problems.empty()) return;
  out << "left in the journal:\n";
  for (const auto& p : problems) {
    out << "  " << p.path.string() << ": " << p.problem << '\n';
    out << "    fix: " << p.fix << '\n';
  }
}

// Returns the exit status: 3 when the plan was refused, 1 when journal entries were left, else 0.
int render(const GlobalOptions& options, const BindingReport& report) {
  if (options.json) {
    // Every key in every case: null where it does not apply (nothing ran; not a restore).
    Json document{{"operation", report.operation},
                  {"dry_run", report.dry_run},
                  {"plan", plan_json(report.plan)},
                  {"result", nullptr},
                  {"vfio_groups", nullptr},
                  {"left", nullptr},
                  {"signal", signal_json(report.signal)}};
    if (report.result) {
      Json nodes = Json::array();
      for (unsigned group : report.result->groups) {
        nodes.push_back("/dev/vfio/" + std::to_string(group));
      }
      document["result"] = outcomes_json(report.result->devices);
      document["vfio_groups"] = nodes;
    }
    if (report.operation == "restore") document["left"] = problems_json(report.left);
    print_json(std::cout, document);
  } else {
    print_plan_report(std::cout, std::cerr, report.plan, plan_title(report.operation));
    if (report.result) {
      std::cout << "done:\n";
      for (const auto& outcome : report.result->devices) print_outcome(std::cout, outcome);
      for (unsigned group : report.result->groups) {
        std::cout << "  /dev/vfio/" << group << " is ready\n";
      }
    }
    print_problems(std::cout, report.left);
    print_signal_note(std::cout, report.signal);
  }
  if (report.plan.refused()) return exit_status_for(ErrorKind::refused);
  return report.left.empty() ? 0 : exit_status_for(ErrorKind::failed);
}

int run_bind(const GlobalOptions& options, const BindingArgs& args) {
  const HostPaths paths = options.paths();
  const auto bdfs = parse_bdfs(options.paths(), args.bdfs);
  const fs::path run_dir = paths.run / "vfiokit";
  ProgressLine progress;
  const bind::ExecuteOptions exec = execute_options(args, progress);
  std::optional<bind::StateLock> lock;
  if (!args.dry_run) lock.emplace(run_dir, lock_options(args));
  bind::Journal journal(run_dir);
  log::debug("gathering host facts");
  const auto view = bind::gather_host_view(paths, bdfs, journal, ::getpid());
  BindingReport report{"bind", args.dry_run, bind::plan_bind(view, bdfs, args.force), {}, {}};
  log::debug("planned {} devices", report.plan.devices.size());
  if (!report.plan.refused() && !args.dry_run) {
    bind::LiveSysfsOps ops;
    report.result = bind::execute_bind(paths, report.plan, ops, journal, exec);
  }
  progress.clear();
  report.signal = SignalGuard::received();
  return render(options, report);
}

// unbind and restore once planned: every device home (each is attempted even if one fails).
void go_home(const HostPaths& paths, const BindingArgs& args, bind::Journal& journal,
             BindingReport& report) {
  if (report.plan.refused() || args.dry_run) return;
  bind::LiveSysfsOps ops;
  ProgressLine progress;  // erased when this returns or throws, before anything is printed
  try {
    report.result =
        bind::execute_homecoming(paths, report.plan, ops, journal, execute_options(args, progress));
  } catch (Error& e) {
    for (const auto& p : report.left) e.with(p.path.string(), "left: " + p.problem);
    throw;
  }
}

int run_unbind(const GlobalOptions& options, const BindingArgs& args) {
  const HostPaths paths = options.paths();
  const auto bdfs = parse_bdfs(options.paths(), args.bdfs);
  const fs::path run_dir = paths.run / "vfiokit";
  std::optional<bind::StateLock> lock;
  if (!args.dry_run) lock.emplace(run_dir, lock_options(args));
  bind::Journal journal(run_dir);
  const auto view = bind::gather_host_view(paths, bdfs, journal, ::getpid());
  BindingReport report{"unbind", args.dry_run, bind::plan_unbind(view, bdfs, args.force), {}, {}};
  go_home(paths, args, journal, report);
  report.signal = SignalGuard::received();
  return render(options, report);
}

// Every journalled device that can go home does; a damaged entry, or one for a device that is
// gone, is reported with what to do, and the exit status is then 1.
int run_restore(const GlobalOptions& options, const BindingArgs& args) {
  const HostPaths paths = options.paths();
  const fs::path run_dir = paths.run / "vfiokit";
  std::optional<bind::StateLock> lock;
  if (!args.dry_run) lock.emplace(run_dir, lock_options(args));
  bind::Journal journal(run_dir);
  const std::vector<pci::Bdf> named =
      args.all ? std::vector<pci::Bdf>{} : parse_bdfs(options.paths(), args.bdfs);
  bind::RestoreSelection selection = bind::select_for_restore(paths, journal, named);
  BindingReport report{"restore", args.dry_run, {}, {}, std::move(selection.left)};
  if (selection.devices.empty() && report.left.empty()) {
    if (!options.json) {
      std::cout << "nothing to restore: the journal in " << run_dir.string() << " is empty\n";
      return 0;
    }
    if (!args.dry_run) report.result.emplace();  // it ran, and had nothing to do
    report.signal = SignalGuard::received();
    return render(options, report);
  }
  if (!selection.devices.empty()) {
    const auto view = bind::gather_host_view(paths, selection.devices, journal, ::getpid());
    report.plan = bind::plan_restore(view, selection.devices, args.force);
    go_home(paths, args, journal, report);
  }
  report.signal = SignalGuard::received();
  return render(options, report);
}

// What persist planned and wrote, or what is persisted (--list); rendered once.
struct PersistReport {
  std::string operation;  // "persist", "persist-remove", "persist-list"
  bool dry_run = false;
  std::optional<bind::Plan> plan;                     // persist: the checks
  std::vector<bind::PersistEntry> added;              // persist: what it writes
  std::vector<fs::path> files;                        // written or removed
  std::vector<fs::path> would_change;                 // --dry-run: what it would write or remove
  std::vector<bind::PersistEntry> persisted;          // everything persisted afterwards
  std::optional<bind::InitramfsGenerator> initramfs;  // the host's, to rebuild after a change
  int signal = 0;  // SIGINT, SIGTERM or SIGHUP that came meanwhile
};

Json paths_json(const std::vector<fs::path>& paths) {
  Json list = Json::array();
  for (const auto& path : paths) list.push_back(path.string());
  return list;
}

// The initramfs keeps a copy of the rules (boot/): a change reaches early boot only once it is
// rebuilt.
void print_initramfs_note(std::ostream& out, const PersistReport& report) {
  if (report.files.empty()) return;
  const bool removed = report.operation == "persist-remove";
  if (!report.initramfs) {
    out << (removed ? "" : "takes effect at the next boot; `vfiokit bind` moves devices now. ")
        << "No initramfs generator found (initramfs-tools or dracut): if your initramfs loads "
           "the host driver, rebuild it.\n";
    return;
  }
  if (removed) {
    out << "the initramfs still holds the removed rules until it is rebuilt: run `"
        << report.initramfs->command << "`\n";
  } else {
    out << "takes effect at the next boot; `vfiokit bind` moves devices now. Rebuild the "
           "initramfs so that it carries the rules ("
        << report.initramfs->name << "): run `" << report.initramfs->command << "`\n";
  }
}

int render(const GlobalOptions& options, const PersistReport& report,
           const bind::PersistStore& store) {
  const bool refused = report.plan && report.plan->refused();
  const int status = refused ? exit_status_for(ErrorKind::refused) : 0;
  auto entry_json = [&](const bind::PersistEntry& e) {
    return Json{{"bdf", e.bdf.to_string()},
                {"vendor_id", json_hex(e.vendor_id, 4)},
                {"device_id", json_hex(e.device_id, 4)},
                {"host_driver", Json(e.host_driver)},
                {"rule", store.rule_path(e.bdf).string()}};
  };
  if (options.json) {
    Json document{{"operation", report.operation},
                  {"dry_run", report.dry_run},
                  {"plan", report.plan ? plan_json(*report.plan) : Json(nullptr)}};
    document["changed"] = !report.files.empty();
    document["files"] = paths_json(report.files);
    document["would_change"] = paths_json(report.would_change);
    Json persisted = Json::array();
    for (const auto& e : report.persisted) persisted.push_back(entry_json(e));
    document["persisted"] = persisted;
    // null for --list, which changes nothing to rebuild, and where no generator was found.
    document["initramfs"] = report.initramfs && report.operation != "persist-list"
                                ? Json{{"generator", report.initramfs->name},
                                       {"rebuild_command", report.initramfs->command}}
                                : Json(nullptr);
    document["signal"] = signal_json(report.signal);
    print_json(std::cout, document);
    return status;
  }
  if (refused) {
    print_refusals(std::cerr, *report.plan);
    return status;
  }
  if (report.operation == "persist-list") {
    if (report.persisted.empty()) std::cout << "no devices are persisted to vfio-pci\n";
    for (const auto& e : report.persisted) {
      std::cout << "  " << e.bdf.to_string() << "  " << pci::id_hex(e.vendor_id) << ':'
                << pci::id_hex(e.device_id) << "  instead of " << e.host_driver.value_or("-")
                << "  (" << store.rule_path(e.bdf).string() << ")\n";
    }
    return status;
  }
  const char* verb = report.dry_run ? "would be persisted" : "persisted";
  for (const auto& e : report.added) {
    std::cout << "  " << e.bdf.to_string() << "  " << verb << " to vfio-pci"
              << (e.host_driver ? " (instead of " + *e.host_driver + ")" : "") << '\n';
  }
  const char* done = report.operation == "persist-remove" ? "changed" : "wrote";
  for (const auto& f : report.files) std::cout << "  " << done << " " << f.string() << '\n';
  for (const auto& f : report.would_change) {
    std::cout << "  would " << (report.operation == "persist-remove" ? "change" : "write") << " "
              << f.string() << '\n';
  }
  if (report.dry_run) {
    std::cout << "dry run: nothing was written or removed\n";
  } else if (report.files.empty()) {
    std::cout << "nothing changed: none of these devices is persisted\n";
  }
  print_initramfs_note(std::cout, report);
  print_signal_note(std::cout, report.signal);
  return status;
}

// A signal before persist writes anything stops it there; once it writes, it finishes.
void stop_if_interrupted() {
  if (const int signal = SignalGuard::received()) {
    throw Error("persist", "stopped by " + signal_name(signal) + " before writing anything")
        .with("signal", signal_name(signal));
  }
}

// What `persist --apply` found and did; rendered once.
struct ApplyReport {
  bool dry_run = false;
  std::vector<bind::BootDecision> decisions;
  std::optional<bind::Plan> plan;  // when a device was to be bound
  std::optional<bind::ExecuteResult> result;
  int signal = 0;
};

int render(const GlobalOptions& options, const ApplyReport& report) {
  const bool refused = report.plan && report.plan->refused();
  if (options.json) {
    Json devices = Json::array();
    for (const auto& d : report.decisions) {
      devices.push_back({{"bdf", d.entry.bdf.to_string()},
                         {"vendor_id", json_hex(d.entry.vendor_id, 4)},
                         {"device_id", json_hex(d.entry.device_id, 4)},
                         {"action", std::string(bind::to_string(d.action))},
                         {"reason", d.reason}});
    }
    Json document{
        {"operation", "persist-apply"},
        {"dry_run", report.dry_run},
        {"devices", devices},
        {"plan", report.plan ? plan_json(*report.plan) : Json(nullptr)},
        {"result", report.result ? outcomes_json(report.result->devices) : Json(nullptr)}};
    document["signal"] = signal_json(report.signal);
    print_json(std::cout, document);
  } else {
    if (report.decisions.empty()) std::cout << "no devices are persisted to vfio-pci\n";
    for (const auto& d : report.decisions) {
      std::cout << "  " << d.entry.bdf.to_string() << "  " << bind::to_string(d.action) << ": "
                << d.reason << '\n';
    }
    if (report.plan)
      print_plan_report(std::cout, std::cerr, *report.plan, "plan: move to vfio-pci");
    if (report.result) {
      std::cout << "done:\n";
      for (const auto& outcome : report.result->devices) print_outcome(std::cout, outcome);
    }
    if (report.dry_run) std::cout << "dry run: nothing was changed\n";
    print_signal_note(std::cout, report.signal);
  }
  return refused ? exit_status_for(ErrorKind::refused) : 0;
}

// vfiokit.service at boot: the persisted devices a host driver holds anyway (built in, or
// loaded from an initramfs without vfiokit's rules) move to vfio-pci exactly as `bind` moves
// them: the same plan, checks, journal and rollback.
int run_persist_apply(const GlobalOptions& options, const BindingArgs& args) {
  if (!args.bdfs.empty() || args.remove || args.list) {
    throw Error("persist", "--apply takes every persisted device, and nothing else")
        .kind(ErrorKind::usage)
        .hint("vfiokit persist --apply [--dry-run]");
  }
  const HostPaths paths = options.paths();
  const bind::PersistStore store(paths.etc);
  const fs::path run_dir = paths.run / "vfiokit";
  std::optional<bind::StateLock> lock;
  if (!args.dry_run) lock.emplace(run_dir, lock_options(args));
  bind::Journal journal(run_dir);
  ApplyReport report;
  report.dry_run = args.dry_run;
  const auto persisted = store.entries();
  report.decisions = bind::decide_boot_apply(persisted, bind::read_slots(paths, persisted));
  std::vector<pci::Bdf> to_bind;
  for (const auto& d : report.decisions) {
    if (d.action == bind::BootAction::bind) to_bind.push_back(d.entry.bdf);
  }
  if (!to_bind.empty()) {
    const auto view = bind::gather_host_view(paths, to_bind, journal, ::getpid());
    report.plan = bind::plan_bind(view, to_bind, args.force);
    if (!report.plan->refused() && !args.dry_run) {
      bind::LiveSysfsOps ops;
      ProgressLine progress;  // erased before the report
      report.result =
          bind::execute_bind(paths, *report.plan, ops, journal, execute_options(args, progress));
    }
  }
  report.signal = SignalGuard::received();
  return render(options, report);
}

int run_persist(const GlobalOptions& options, const BindingArgs& args) {
  if (args.apply) return run_persist_apply(options, args);
  const HostPaths paths = options.paths();
  bind::PersistStore store(paths.etc);
  PersistReport report;
  report.dry_run = args.dry_run;
  if (args.list) {
    report.operation = "persist-list";
    report.persisted = store.entries();
    return render(options, report, store);
  }
  if (args.bdfs.empty()) {
    throw Error("persist", "no device given")
        .kind(ErrorKind::usage)
        .hint("vfiokit persist BDF..., persist --remove BDF..., persist --list, or --apply");
  }
  const auto bdfs = parse_bdfs(options.paths(), args.bdfs);
  report.initramfs = bind::detect_initramfs_generator(paths.etc);
  // Two persists at once would each rewrite the softdep file from what they read.
  std::optional<bind::StateLock> lock;
  if (!args.dry_run) lock.emplace(paths.run / "vfiokit", lock_options(args));
  if (args.remove) {
    report.operation = "persist-remove";
    stop_if_interrupted();
    if (args.dry_run) {
      report.would_change = store.files_for_remove(bdfs);
    } else {
      report.files = store.remove(bdfs);
    }
  } else {
    report.operation = "persist";
    const bind::Journal journal(paths.run / "vfiokit");
    const auto view = bind::gather_host_view(paths, bdfs, journal, ::getpid());
    bind::PersistPlan planned = bind::plan_persist(view, bdfs, args.force);
    report.plan = std::move(planned.plan);
    report.added = std::move(planned.entries);
    stop_if_interrupted();
    if (!report.plan->refused()) {
      if (args.dry_run) {
        report.would_change = store.files_for_add(report.added);
      } else {
        report.files = store.add(report.added);
      }
    }
  }
  report.persisted = store.entries();
  report.signal = SignalGuard::received();
  return render(options, report, store);
}

}  // namespace

Command add_bind_command(CLI::App& app, GlobalOptions& options) {
  auto args = std::make_shared<BindingArgs>();
  CLI::App* sub = app.add_subcommand(
      "bind",
      "Move devices, with their whole IOMMU groups, to vfio-pci: checks, a journal, "
      "rollback on failure. Exit 3 if a safety check refuses");
  sub->add_option("BDF", args->bdfs, "PCI addresses (e.g. 0000:01:00.0) or network interface names")
      ->required();
  sub->add_flag("--dry-run", args->dry_run, "Print the plan and the checks; change nothing");
  sub->add_flag("--json", options.json, "Print JSON");
  sub->add_option("--owner", args->owner,
                  "Give /dev/vfio/GROUP to USER[:GROUP] so that user can open it");
  add_wait_option(sub, args->wait);
  add_force_options(sub, args->force,
                    {bind::Check::boot_vga, bind::Check::display, bind::Check::net,
                     bind::Check::block, bind::Check::group_in_use, bind::Check::sriov});
  return {sub, [&options, args] {
            return run_guarded(options, [&] { return run_bind(options, *args); });
          }};
}

Command add_unbind_command(CLI::App& app, GlobalOptions& options) {
  auto args = std::make_shared<BindingArgs>();
  CLI::App* sub = app.add_subcommand(
      "unbind",
      "Return devices (and the rest of their IOMMU groups) from vfio-pci to their "
      "original drivers, or to the default driver if vfiokit did not bind them");
  sub->add_option("BDF", args->bdfs, "PCI addresses or network interface names")->required();
  sub->add_flag("--dry-run", args->dry_run, "Print the plan; change nothing");
  sub->add_flag("--json", options.json, "Print JSON");
  add_wait_option(sub, args->wait);
  add_force_options(sub, args->force, {bind::Check::group_in_use});
  return {sub, [&options, args] {
            return run_guarded(options, [&] { return run_unbind(options, *args); });
          }};
}

Command add_restore_command(CLI::App& app, GlobalOptions& options) {
  auto args = std::make_shared<BindingArgs>();
  CLI::App* sub = app.add_subcommand(
      "restore",
      "Return journalled devices to their original drivers, wherever an interrupted "
      "vfiokit left them (after a crash or kill -9)");
  auto* bdfs = sub->add_option("BDF", args->bdfs, "PCI addresses of journalled devices");
  auto* all = sub->add_flag("--all", args->all, "Every device in the journal");
  bdfs->excludes(all);
  sub->add_flag("--dry-run", args->dry_run, "Print the plan; change nothing");
  sub->add_flag("--json", options.json, "Print JSON");
  add_wait_option(sub, args->wait);
  add_force_options(sub, args->force, {bind::Check::group_in_use});
  sub->callback([args] {
    if (args->bdfs.empty() && !args->all) {
      throw CLI::ValidationError("restore", "give the BDFs to restore, or --all");
    }
  });
  return {sub, [&options, args] {
            return run_guarded(options, [&] { return run_restore(options, *args); });
          }};
}

Command add_persist_command(CLI::App& app, GlobalOptions& options) {
  auto args = std::make_shared<BindingArgs>();
  CLI::App* sub = app.add_subcommand(
      "persist",
      "Keep devices (with their IOMMU groups) on vfio-pci from boot on: a udev rule "
      "that sets driver_override in the add event, and a modprobe softdep");
  sub->add_option("BDF", args->bdfs, "PCI addresses or network interface names");
  sub->add_flag("--remove", args->remove, "Remove the devices' persistence instead");
  sub->add_flag("--list", args->list, "List persisted devices");
  sub->add_flag("--apply", args->apply,
                "Bind the persisted devices a host driver holds now (built in, or loaded "
                "early), as bind does; vfiokit.service runs this at boot");
  sub->add_flag("--dry-run", args->dry_run, "Print what would be written or bound; change nothing");
  sub->add_flag("--json", options.json, "Print JSON");
  add_wait_option(sub, args->wait);
  add_force_options(sub, args->force,
                    {bind::Check::boot_vga, bind::Check::display, bind::Check::net,
                     bind::Check::block, bind::Check::sriov});
  return {sub, [&options, args] {
            return run_guarded(options, [&] { return run_persist(options, *args); });
          }};
}

}  // namespace vfiokit::cli
