#include <iostream>

#include "tools/vfiokit/commands.h"
#include "tools/vfiokit/doctor.h"
#include "tools/vfiokit/report.h"

namespace vfiokit::cli {
namespace {

// Each KVM feature with its capability and whether this kernel has it; null when /dev/kvm could
// not be asked.
Json kvm_features_json(const DoctorFacts& facts) {
  if (!facts.kvm_features) return nullptr;
  Json features = Json::array();
  for (const auto& feature : kvm::report_kvm_features(*facts.kvm_features)) {
    features.push_back(
        {{"name", feature.name}, {"capability", feature.capability}, {"present", feature.present}});
  }
  return features;
}

}  // namespace

Command add_doctor_command(CLI::App& app, GlobalOptions& options) {
  CLI::App* sub = app.add_subcommand(
      "doctor",
      "Check this host for passthrough readiness: IOMMU, interrupt remapping, VFIO "
      "modules, /dev/vfio/vfio, /dev/kvm, memlock; for guests, hugepages and OVMF. Exit 0 if "
      "nothing fails, 1 otherwise");
  sub->add_flag("--json", options.json, "Print the checks as JSON");
  return {sub, [&options] {
            const DoctorFacts facts = gather_doctor_facts(options.paths());
            const std::vector<CheckResult> checks = assess_doctor_facts(facts);
            const bool ready = all_passed(checks);
            if (options.json) {
              print_json(std::cout, Json{{"ready", ready},
                                         {"kernel", facts.kernel_release},
                                         {"kvm_features", kvm_features_json(facts)},
                                         {"checks", to_json(checks)}});
            } else {
              std::cout << "vfiokit doctor: passthrough readiness of this host (kernel "
                        << facts.kernel_release << ")\n";
              print_checks(std::cout, checks);
              std::cout << (ready ? "ready: nothing failed\n"
                                  : "not ready: fix the FAIL items above\n");
            }
            return ready ? 0 : 1;
          }};
}

}  // namespace vfiokit::cli
