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

#include <spdlog/spdlog.h>

#include "base/error.h"
#include "base/fs.h"
#include "base/text.h"
#include "bind/execute.h"
#include "bind/lock.h"
#include "bind/persist.h"
#include "bind/plan.h"
#include "tools/vfiokit/commands.h"
#include "tools/vfiokit/device_report.h"

namespace vfiokit::cli {
namespace {
namespace fs = std::filesystem;

struct BindingArgs {
  std::vector<std::string> bdfs;
  bool dry_run = false;
  bool all = false;     // restore --all
  bool remove = false;  // persist --remove
  bool list = false;    // persist --list
  std::string owner;
  double wait_seconds = 30;
  bind::ForceFlags force;
};

void add_force_flags(CLI::App* sub, bind::ForceFlags& force) {
  const char* group = "Overriding safety checks";
  sub->add_flag("--force-boot-vga", force.boot_vga, "Move the boot VGA device anyway")
      ->group(group);
  sub->add_flag("--force-net", force.net,
                "Move a device whose network interfaces are up, "
                "routed or enslaved")
      ->group(group);
  sub->add_flag("--force-block", force.block,
                "Move a device whose disks are mounted, held, "
                "swapped on or open")
      ->group(group);
  sub->add_flag("--force-group-in-use", force.group_in_use,
                "Go on although another process has the group's /dev/vfio node open")
      ->group(group);
  sub->add_flag("--force-sriov", force.sriov,
                "Move an SR-IOV physical function with virtual "
                "functions enabled (they are destroyed)")
      ->group(group);
}

void add_wait_option(CLI::App* sub, BindingArgs& args) {
  sub->add_option("--wait", args.wait_seconds,
                  "Seconds to wait for another vfiokit process to finish (0: fail at once)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
}

std::vector<pci::Bdf> parse_bdfs(const std::vector<std::string>& texts) {
  std::vector<pci::Bdf> bdfs;
  for (const auto& text : texts) bdfs.push_back(pci::parse_bdf_or_throw(text));
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

// VFIOKIT_DEBUG_STOP_AT=STEP[@BDF] stops the process (SIGSTOP) before that step: the hook the
// rig tests use to kill -9 a bind midway and prove `restore`. Documented in docs/cli.md.
bind::ExecuteOptions execute_options(const BindingArgs& args) {
  bind::ExecuteOptions options;
  options.pid = ::getpid();
  if (!args.owner.empty()) options.owner = parse_owner(args.owner);
  const char* stop_at = std::getenv("VFIOKIT_DEBUG_STOP_AT");
  const std::string stop = stop_at ? stop_at : "";
  options.on_step = [stop](std::string_view step, const pci::Bdf& bdf) {
    spdlog::info("{}: {}", bdf.to_string(), step);
    if (stop.empty()) return;
    const std::size_t at = stop.find('@');
    if (stop.substr(0, at) != step) return;
    if (at != std::string::npos && stop.substr(at + 1) != bdf.to_string()) return;
    std::cerr << "vfiokit: stopping before " << step << " of " << bdf.to_string()
              << " (VFIOKIT_DEBUG_STOP_AT)" << std::endl;
    ::raise(SIGSTOP);
  };
  return options;
}

std::chrono::milliseconds wait_for(const BindingArgs& args) {
  return std::chrono::milliseconds(static_cast<long long>(args.wait_seconds * 1000));
}

std::string_view action_word(bind::PlannedAction action) {
  switch (action) {
    case bind::PlannedAction::move:
      return "move";
    case bind::PlannedAction::already:
      return "already";
    case bind::PlannedAction::stay:
      return "stay";
  }
  return "?";
}

Json plan_json(const bind::Plan& plan) {
  auto optional = [](const std::optional<std::string>& value) { return Json(value); };
  Json devices = Json::array();
  for (const auto& d : plan.devices) {
    devices.push_back({{"bdf", d.bdf.to_string()},
                       {"iommu_group", Json(d.group)},
                       {"requested", d.requested},
                       {"action", action_word(d.action)},
                       {"driver", optional(d.current_driver)},
                       {"target_driver", optional(d.target_driver)},
                       {"note", d.note}});
  }
  auto refusals = [](const std::vector<bind::Refusal>& list) {
    Json out = Json::array();
    for (const auto& r : list) {
      out.push_back({{"bdf", r.bdf.to_string()},
                     {"check", r.check},
                     {"reason", r.reason},
                     {"force_flag", r.force_flag.empty() ? Json(nullptr) : Json(r.force_flag)}});
    }
    return out;
  };
  return {{"devices", devices},
          {"refused", refusals(plan.refusals)},
          {"forced", refusals(plan.forced)}};
}

void print_plan(std::ostream& out, const bind::Plan& plan, std::string_view title) {
  out << title << '\n';
  std::size_t width = 0;
  std::vector<std::string> moves;
  for (const auto& d : plan.devices) {
    std::string move = d.current_driver.value_or("(none)");
    if (d.action == bind::PlannedAction::move) {
      move += " -> " + d.target_driver.value_or("(default driver)");
    }
    width = std::max(width, move.size());
    moves.push_back(std::move(move));
  }
  for (std::size_t i = 0; i < plan.devices.size(); ++i) {
    const auto& d = plan.devices[i];
    out << "  " << d.bdf.to_string() << "  " << moves[i]
        << std::string(width - moves[i].size() + 2, ' ') << d.note << '\n';
  }
  for (const auto& r : plan.forced) {
    out << "  warning: " << r.bdf.to_string() << ' ' << r.check << ": " << r.reason
        << " (overridden by " << r.force_flag << ")\n";
  }
}

// Prints the refusals and returns exit status 3, or returns 0 when there are none.
int report_refusals(const bind::Plan& plan, bool json, const Json& document) {
  if (!plan.refused()) return 0;
  if (json) {
    print_json(std::cout, document);
  } else {
    std::cerr << "vfiokit: refused; nothing was changed:\n";
    for (const auto& r : plan.refusals) {
      std::cerr << "  " << r.bdf.to_string() << ' ' << r.check << ": " << r.reason << '\n';
      if (!r.force_flag.empty()) std::cerr << "    override with " << r.force_flag << '\n';
    }
  }
  return exit_status_for(ErrorKind::refused);
}

Json outcomes_json(const bind::ExecuteResult& result) {
  Json list = Json::array();
  for (const auto& o : result.devices) {
    list.push_back({{"bdf", o.bdf.to_string()}, {"ok", o.ok}, {"detail", o.detail}});
  }
  return list;
}

void print_outcomes(std::ostream& out, const bind::ExecuteResult& result) {
  for (const auto& o : result.devices) out << "  " << o.bdf.to_string() << "  " << o.detail << '\n';
}

// The rest of bind, unbind and restore once the plan exists: show it, stop at refusals (exit 3)
// or --dry-run, else execute and show what happened to each device.
int present_and_execute(const GlobalOptions& options, const BindingArgs& args,
                        const std::string& operation, const bind::Plan& plan,
                        const std::string& title,
                        const std::function<bind::ExecuteResult()>& execute) {
  Json document{{"operation", operation}, {"dry_run", args.dry_run}, {"plan", plan_json(plan)}};
  if (!options.json) print_plan(std::cout, plan, title);
  if (int status = report_refusals(plan, options.json, document)) return status;
  if (!args.dry_run) {
    const bind::ExecuteResult result = execute();
    Json nodes = Json::array();
    for (unsigned group : result.groups) nodes.push_back("/dev/vfio/" + std::to_string(group));
    document["result"] = outcomes_json(result);
    document["vfio_groups"] = nodes;
    if (!options.json) {
      std::cout << "done:\n";
      print_outcomes(std::cout, result);
      for (unsigned group : result.groups) std::cout << "  /dev/vfio/" << group << " is ready\n";
    }
  }
  if (options.json) print_json(std::cout, document);
  return 0;
}

int run_bind(const GlobalOptions& options, const BindingArgs& args) {
  const HostPaths paths = options.paths();
  const auto bdfs = parse_bdfs(args.bdfs);
  const fs::path run_dir = paths.run / "vfiokit";
  const bind::ExecuteOptions exec = execute_options(args);
  std::optional<bind::StateLock> lock;
  if (!args.dry_run) lock.emplace(run_dir, wait_for(args));
  bind::Journal journal(run_dir);
  spdlog::debug("gathering host facts");
  const auto view = bind::gather_host_view(paths, bdfs, journal, ::getpid());
  const auto plan = bind::plan_bind(view, bdfs, args.force);
  spdlog::debug("planned {} devices", plan.devices.size());
  return present_and_execute(options, args, "bind", plan, "plan: move to vfio-pci", [&] {
    bind::LiveSysfsOps ops;
    return bind::execute_bind(paths, plan, ops, journal, exec);
  });
}

// unbind and restore: the same homecoming, from a group closure or from the journal.
int run_homecoming(const GlobalOptions& options, const BindingArgs& args, bool from_journal) {
  const HostPaths paths = options.paths();
  const fs::path run_dir = paths.run / "vfiokit";
  const bind::ExecuteOptions exec = execute_options(args);
  std::optional<bind::StateLock> lock;
  if (!args.dry_run) lock.emplace(run_dir, wait_for(args));
  bind::Journal journal(run_dir);
  std::vector<pci::Bdf> bdfs = parse_bdfs(args.bdfs);
  const std::string verb = from_journal ? "restore" : "unbind";
  if (from_journal) {
    std::vector<pci::Bdf> journalled;
    for (const auto& entry : journal.entries()) journalled.push_back(entry.bdf);
    if (args.all) {
      bdfs = journalled;
    } else {
      for (const auto& bdf : bdfs) {
        if (std::find(journalled.begin(), journalled.end(), bdf) == journalled.end()) {
          throw Error("restore", "no journal entry for " + bdf.to_string())
              .with("bdf", bdf.to_string())
              .hint("vfiokit did not bind it; `vfiokit unbind " + bdf.to_string() +
                    "` returns a device on vfio-pci to its default driver");
        }
      }
    }
    if (bdfs.empty()) {
      if (options.json) {
        print_json(std::cout, Json{{"operation", verb}, {"result", Json::array()}});
      } else {
        std::cout << "nothing to restore: the journal in " << run_dir.string() << " is empty\n";
      }
      return 0;
    }
  }
  const auto view = bind::gather_host_view(paths, bdfs, journal, ::getpid());
  const auto plan = from_journal ? bind::plan_restore(view, bdfs, args.force)
                                 : bind::plan_unbind(view, bdfs, args.force);
  return present_and_execute(options, args, verb, plan,
                             "plan: " + verb + " to the original drivers", [&] {
                               bind::LiveSysfsOps ops;
                               return bind::execute_homecoming(paths, plan, ops, journal, exec);
                             });
}

int run_persist(const GlobalOptions& options, const BindingArgs& args) {
  const HostPaths paths = options.paths();
  bind::PersistStore store(paths.etc);
  auto print_entries = [&](const std::vector<bind::PersistEntry>& entries) {
    Json list = Json::array();
    for (const auto& e : entries) {
      list.push_back({{"bdf", e.bdf.to_string()},
                      {"id", pci::id_hex(e.vendor_id) + ":" + pci::id_hex(e.device_id)},
                      {"host_driver", Json(e.host_driver)},
                      {"rule", store.rule_path(e.bdf).string()}});
    }
    return list;
  };
  if (args.list) {
    const auto entries = store.entries();
    if (options.json) {
      print_json(std::cout, Json{{"persisted", print_entries(entries)}});
    } else if (entries.empty()) {
      std::cout << "no devices are persisted to vfio-pci\n";
    } else {
      for (const auto& e : entries) {
        std::cout << "  " << e.bdf.to_string() << "  " << pci::id_hex(e.vendor_id) << ':'
                  << pci::id_hex(e.device_id) << "  instead of " << e.host_driver.value_or("-")
                  << "  (" << store.rule_path(e.bdf).string() << ")\n";
      }
    }
    return 0;
  }
  if (args.bdfs.empty()) {
    throw Error("persist", "no device given")
        .kind(ErrorKind::usage)
        .hint("vfiokit persist BDF..., persist --remove BDF..., or persist --list");
  }
  const auto bdfs = parse_bdfs(args.bdfs);
  std::vector<fs::path> files;
  if (args.remove) {
    if (!args.dry_run) files = store.remove(bdfs);
  } else {
    bind::Journal journal(paths.run / "vfiokit");
    const auto view = bind::gather_host_view(paths, bdfs, journal, ::getpid());
    auto plan = bind::plan_bind(view, bdfs, args.force);
    // Whether the group is open right now says nothing about the next boot.
    std::erase_if(plan.refusals, [](const bind::Refusal& r) { return r.check == "group-in-use"; });
    Json document{{"operation", "persist"}, {"dry_run", args.dry_run}, {"plan", plan_json(plan)}};
    if (int status = report_refusals(plan, options.json, document)) return status;
    std::vector<bind::PersistEntry> entries;
    for (const auto& d : plan.devices) {
      if (d.action == bind::PlannedAction::stay) continue;
      const auto& dev = view.devices.at(d.bdf).device;
      const auto& journalled = view.devices.at(d.bdf).journal;
      std::optional<std::string> host_driver =
          journalled ? journalled->original_driver
                     : (d.action == bind::PlannedAction::move ? d.current_driver : std::nullopt);
      entries.push_back({d.bdf, dev.vendor_id, dev.device_id, host_driver});
    }
    if (!args.dry_run) files = store.add(entries);
    if (!options.json) {
      for (const auto& e : entries) {
        std::cout << "  " << e.bdf.to_string() << "  persisted to vfio-pci"
                  << (e.host_driver ? " (instead of " + *e.host_driver + ")" : "") << '\n';
      }
      std::cout << "takes effect at the next boot; `vfiokit bind` moves devices now. If a host "
                   "driver loads from the initramfs, run update-initramfs -u.\n";
    }
  }
  if (options.json) {
    Json written = Json::array();
    for (const auto& f : files) written.push_back(f.string());
    print_json(std::cout, Json{{"operation", args.remove ? "persist-remove" : "persist"},
                               {"dry_run", args.dry_run},
                               {"files", written},
                               {"persisted", print_entries(store.entries())}});
  } else {
    for (const auto& f : files) std::cout << "  wrote " << f.string() << '\n';
  }
  return 0;
}

}  // namespace

Command add_bind_command(CLI::App& app, GlobalOptions& options) {
  auto args = std::make_shared<BindingArgs>();
  CLI::App* sub = app.add_subcommand(
      "bind",
      "Move devices, with their whole IOMMU groups, to vfio-pci: checks, a journal, "
      "rollback on failure. Exit 3 if a safety check refuses");
  sub->add_option("BDF", args->bdfs, "PCI addresses, e.g. 0000:01:00.0")->required();
  sub->add_flag("--dry-run", args->dry_run, "Print the plan and the checks; change nothing");
  sub->add_flag("--json", options.json, "Print JSON");
  sub->add_option("--owner", args->owner,
                  "Give /dev/vfio/GROUP to USER[:GROUP] so that user can open it");
  add_wait_option(sub, *args);
  add_force_flags(sub, args->force);
  return {sub, [&options, args] { return run_bind(options, *args); }};
}

Command add_unbind_command(CLI::App& app, GlobalOptions& options) {
  auto args = std::make_shared<BindingArgs>();
  CLI::App* sub = app.add_subcommand(
      "unbind",
      "Return devices (and the rest of their IOMMU groups) from vfio-pci to their "
      "original drivers, or to the default driver if vfiokit did not bind them");
  sub->add_option("BDF", args->bdfs, "PCI addresses")->required();
  sub->add_flag("--dry-run", args->dry_run, "Print the plan; change nothing");
  sub->add_flag("--json", options.json, "Print JSON");
  add_wait_option(sub, *args);
  sub->add_flag("--force-group-in-use", args->force.group_in_use,
                "Go on although another process has the group's /dev/vfio node open");
  return {sub, [&options, args] { return run_homecoming(options, *args, false); }};
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
  add_wait_option(sub, *args);
  sub->add_flag("--force-group-in-use", args->force.group_in_use,
                "Go on although another process has the group's /dev/vfio node open");
  sub->callback([args] {
    if (args->bdfs.empty() && !args->all) {
      throw CLI::ValidationError("restore", "give the BDFs to restore, or --all");
    }
  });
  return {sub, [&options, args] { return run_homecoming(options, *args, true); }};
}

Command add_persist_command(CLI::App& app, GlobalOptions& options) {
  auto args = std::make_shared<BindingArgs>();
  CLI::App* sub = app.add_subcommand(
      "persist",
      "Keep devices (with their IOMMU groups) on vfio-pci from boot on: a udev rule "
      "that sets driver_override in the add event, and a modprobe softdep");
  sub->add_option("BDF", args->bdfs, "PCI addresses");
  sub->add_flag("--remove", args->remove, "Remove the devices' persistence instead");
  sub->add_flag("--list", args->list, "List persisted devices");
  sub->add_flag("--dry-run", args->dry_run, "Print what would be written; write nothing");
  sub->add_flag("--json", options.json, "Print JSON");
  add_force_flags(sub, args->force);
  return {sub, [&options, args] { return run_persist(options, *args); }};
}

}  // namespace vfiokit::cli
