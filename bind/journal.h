// The binding journal: before vfiokit writes anything to sysfs, it records every device's
// original driver and driver_override durably under /run/vfiokit/devices/, one file per device.
// `unbind` and `restore` read it back; after a crash or kill -9 mid-bind it is how every
// device finds its way home. /run is a tmpfs, so the journal ends with the boot, as the
// bindings themselves do.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "vfiokit/base/fs.h"
#include "vfiokit/pci/bdf.h"

namespace vfiokit::bind {

// Kernel driver names (and driver_override values): no spaces, no control characters, no '/',
// at most NAME_MAX. Anything else read back from a journal or a persist rule is damage, not data:
// it would otherwise reach a sysfs write or split a modprobe.d line into other words.
bool is_driver_name(std::string_view value);

enum class JournalState {
  binding,  // writes may be under way; the device may be anywhere between its two drivers
  bound,    // the bind finished; the device is on the target driver
};

struct JournalEntry {
  pci::Bdf bdf;
  unsigned group = 0;
  std::optional<std::string> original_driver;    // nullopt: it had none
  std::optional<std::string> original_override;  // nullopt: driver_override was unset
  std::string target_driver = "vfio-pci";
  JournalState state = JournalState::binding;
  int pid = 0;  // the vfiokit process that wrote it

  bool operator==(const JournalEntry&) const = default;
};

// "vfiokit-journal 1" then "key value" lines; "-" stands for an unset value.
std::string format_journal_entry(const JournalEntry& entry);
// Throws Error (operation "parse journal") on anything else: unknown version or key, missing
// or repeated keys, values that are not driver names, a malformed BDF.
JournalEntry parse_journal_entry(std::string_view text);

std::string_view to_string(JournalState state) noexcept;

// A file in the journal `restore` cannot use, and what to do about it.
struct JournalProblem {
  std::filesystem::path path;
  std::optional<pci::Bdf> bdf;  // the device its file name names, when it names one
  std::string problem;          // "damaged: key 'pid' is missing", "... is not on this host"
  std::string fix;
};

// Every entry of the journal that can be used, and every file that cannot.
struct JournalScan {
  std::vector<JournalEntry> entries;  // readable, and named for the device inside
  std::vector<JournalProblem> problems;
};

// The folders and entries are vfiokit's own state (base/fs.h StateDir): a folder or entry that
// is a symlink, or that someone other than root (or this user) owns or may write, is refused.
class Journal {
 public:
  // `run_dir` is normally /run/vfiokit; entries live in run_dir/devices/.
  explicit Journal(std::filesystem::path run_dir);

  void record(const JournalEntry& entry);  // durable: fsync + rename + fsync of the folder
  // Throws Error (naming the file, with the fix) for an entry that is damaged or names another
  // device inside.
  std::optional<JournalEntry> find(const pci::Bdf& bdf) const;
  // One damaged file does not hide the others. Throws only for the folder itself (untrusted).
  JournalScan scan() const;
  std::vector<JournalEntry> entries() const;  // every entry; the first damaged one throws
  void remove(const pci::Bdf& bdf);
  [[nodiscard]] std::filesystem::path entry_path(const pci::Bdf& bdf) const;

 private:
  std::optional<StateDir> open_folder() const;  // nullopt while there is none
  std::filesystem::path run_dir_;
};

}  // namespace vfiokit::bind
