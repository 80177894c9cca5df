#include "tools/vfiokit/manual_text.h"

#include <array>
#include <utility>

namespace vfiokit::cli {
namespace {

constexpr std::string_view kOverview =
    R"md(vfiokit finds PCI devices, checks whether they can be passed through safely, moves them (with
the rest of their IOMMU groups) to vfio-pci and back, keeps them there across reboots, drives
them from user space and runs guests that own them. Each subcommand has its own page:
`vfiokit-bind(1)`, `vfiokit-restore(1)`, ... (`man vfiokit-bind`), and `--help`.

Logs go to stderr and are quiet by default (warnings and errors); `-v` adds info, `-vv` debug.
`-q` leaves errors only: no warnings (such as `waiting for another vfiokit process`) and no
progress on stderr. Results are what was asked for, so `-q` keeps them: tables, reports and
`--json` documents still go to stdout, and refusals and errors to stderr (or stdout with
`--json`); send stdout to /dev/null and read the exit status for silence. `-q` and `-v` together
are a usage error. Log levels are coloured only when stderr is a terminal, and never while
`NO_COLOR` is set to a non-empty value.

bash and zsh complete subcommands, options and BDFs: every PCI function in sysfs, the
journalled ones for `restore`, the persisted ones for `persist --remove`. The scripts are
installed as share/bash-completion/completions/vfiokit and share/zsh/vendor-completions/_vfiokit.)md";

constexpr std::string_view kExitStatus = R"md(| status | meaning |
| --- | --- |
| 0 | done (for `doctor`: nothing failed) |
| 1 | failed; anything already changed has been rolled back, and the error says what happened |
| 2 | usage error: unknown subcommand or option, malformed argument (e.g. a BDF) |
| 3 | refused by a safety check; the output names the check and the `--force-...` that overrides it |
| 129, 130, 143 | `bind`, `unbind`, `restore` or `persist` received SIGHUP, SIGINT or SIGTERM (128 + the signal): it finished or rolled back first, and the report or error says which signal came and where each device is |
| 0, 1 | `device-plugin`, stopped by SIGTERM or SIGINT: 0 when every group it took is home (or kept bound), 1 when a device did not make it home (the journal keeps it: `restore --all`) |

SIGINT, SIGTERM and SIGHUP never stop `bind`, `unbind`, `restore` or `persist` half-way: they
are recorded, and checked between steps. A bind (or a wait for the lock) stops at its next step
and takes every device it touched back to its original driver (a sysfs write under way, such as
an unbind, is waited for, never abandoned); an unbind or a restore finishes; `persist` writes
nothing if the signal came before it started writing, else finishes. Then it exits 128 + the
signal. Output to a pipe whose reader has gone (`vfiokit bind ... | head -1`) fails harmlessly
instead of killing vfiokit.

Errors are printed once, as `vfiokit: error: OPERATION: MESSAGE [context]: strerror (ERRNO)`
followed by `fix: ...` when there is something to do. With `--json` the same facts come as
`{"schema_version": 1, "error": {"kind", "exit_status", "operation", "message", "errno",
"errno_name", "context", "fix", "text"}}` on stdout; every key is always there, and `errno`,
`errno_name` and `fix` are null when absent.

Every `--json` document follows docs/json.md: it starts with `"schema_version"`, keys come in
one stable order, IDs are hex strings zero-padded to their width (`"0x10de"`, class
`"0x010802"`, revision `"0x02"`), an absent value is `null`, and the JSON Schema of each
command's document is in docs/schema/ (installed to /usr/share/vfiokit/schema). Argument mistakes (an unknown option, `--wait soon`) come the same
way, as operation `parse arguments` with the subcommand's `--help` as the fix, and as JSON when
`--json` is anywhere on the command line. Text that is not UTF-8 (a device name, a mount point,
a guest's log) is printed in JSON with each bad byte replaced by U+FFFD, never a reason to fail.
A reader that goes away (`vfiokit list | head -1`) does not kill vfiokit: SIGPIPE is ignored, so
a change in progress still finishes or rolls back.

Wherever a BDF is accepted, a network interface name works too (`vfiokit bind eth1`): it
stands for the PCI function the interface sits on. A virtual interface (a bridge, a bond,
loopback) or one on USB is a usage error that says so. A permission failure (EACCES or EPERM)
as an ordinary user is reported with "run vfiokit as root" first in its fix.

While `bind`, `unbind` and `restore` move devices, a status line on stderr says which step each
device is at (an unbind waits for the driver to let go): only on a terminal, at the default log
level (not with `-v`, whose log lines say the same, nor `-q`), and erased before the report.)md";

constexpr std::string_view kFiles = R"md(| path | what |
| --- | --- |
| `/run/vfiokit/devices/BDF` | the journal: each bound device's original driver and `driver_override`, written before anything moves and read by `unbind` and `restore` |
| `/run/vfiokit/lock` | held by every `bind`, `unbind`, `restore`, `persist` and `launch` while it works (`--wait`) |
| `/etc/udev/rules.d/61-vfiokit-BDF.rules` | written by `persist`: sets `driver_override` to vfio-pci in the device's add event |
| `/etc/modprobe.d/vfiokit.conf` | written by `persist`: `softdep HOSTDRIVER pre: vfio-pci` per persisted host driver |
| `/sys/bus/pci/devices/BDF` | the devices, their drivers, `driver_override` and IOMMU groups |
| `/dev/vfio/GROUP` | a bound group, given to `--owner` |
| `/var/lib/kubelet/device-plugins/kubelet.sock` | kubelet's registration socket, which `device-plugin` registers with (`--plugin-dir`) |
| `/var/lib/kubelet/device-plugins/vfiokit-RESOURCE.sock` | the socket `device-plugin` serves for each resource (`/` and `.` of the resource's name as `-`) |
| `/usr/libexec/vfiokit/vfiokit-device-plugin` | the program `device-plugin` runs: the one that links gRPC |)md";

constexpr std::string_view kEnvironment = R"md(| variable | effect |
| --- | --- |
| `NO_COLOR` | when set to anything but the empty string, no colour even on a terminal (no-color.org) |
| `PATH` | where `launch --qemu` looks for `--qemu-binary` when it is a name without a slash |
| `VFIOKIT_DEBUG_STOP_AT` | testing hook, below |

`VFIOKIT_DEBUG_STOP_AT=STEP[@BDF]` makes bind, unbind and restore stop themselves (SIGSTOP)
before STEP (`journal`, `override`, `unbind`, `probe`, `verify`, `home`), optionally only for
one device. The rig tests use it to `kill -9` a bind at a known point and prove `restore`.)md";

constexpr std::string_view kExamples = R"md(```
vfiokit doctor
vfiokit list
vfiokit check 0000:01:00.0
vfiokit bind --dry-run 0000:01:00.0
vfiokit bind 0000:01:00.0
vfiokit restore --all
```)md";

constexpr std::string_view kDoctor =
    R"md(Checks this host for passthrough readiness and says, for each item that is not right, what to
do. Exit 0 if no check fails (warnings allowed), 1 otherwise.

| check | pass when | otherwise |
| --- | --- | --- |
| iommu | IOMMU units in /sys/class/iommu and devices in IOMMU groups | fail, with the kernel option or firmware setting to change (intel_iommu=on, amd_iommu, VT-d/AMD-Vi in firmware, a virtual IOMMU for VMs) |
| interrupt-remapping | remapped (IR-) interrupt chips in /proc/interrupts | warn if vfio_iommu_type1 allow_unsafe_interrupts=Y, else fail |
| vfio-modules | vfio, vfio_iommu_type1, vfio_pci loaded or built in | warn if loadable (modprobe), fail if the kernel lacks them |
| vfio-container | /dev/vfio/vfio is a character device that opens and answers API version 0 | fail; the fix follows the vfio module's state (`modprobe vfio` only when it can be loaded) |
| kvm | /dev/kvm opens, answers API version 12, and a VM can be created | warn (only guest launch needs it), diagnosed: no vmx/svm flag, no module, permissions and the kvm group, a seccomp filter, a cgroup device policy, another hypervisor holding VT-x/AMD-V |
| kvm-features | KVM_CHECK_EXTENSION answered: lists what this kernel's KVM has and lacks (dirty-ring, dirty-ring-acq-rel, manual-dirty-log-protect, binary-stats, irqfd-resample), each lacking one with vfiokit's fallback | warn only when /dev/kvm could not be asked; a lacking feature is not a problem |
| memlock | CAP_IPC_LOCK, or RLIMIT_MEMLOCK unlimited or at least 1 GiB | warn: every DMA-mapped page is pinned and counted |
| hugepages | a hugepage pool has pages reserved (each size's free and total are listed) | warn (only `launch --qemu --hugepages` needs them), with the sysfs file or sysctl for 2M pages and the boot options for 1G |
| ovmf | the ovmf package's OVMF_CODE_4M.fd + OVMF_VARS_4M.fd (or the 2M pair OVMF_CODE.fd + OVMF_VARS.fd) are there and match | warn: not installed, needed only for `launch --qemu --firmware uefi` (`apt-get install ovmf`); a damaged pair: `apt-get install --reinstall ovmf` |

`--json` prints `{"ready": bool, "kernel": "...", "kvm_features": [{"name", "capability",
"present"}] (null when /dev/kvm could not be asked), "checks": [{"id", "status", "summary",
"fix"}]}`; a check's `fix` is null when there is nothing to do.)md";

constexpr std::string_view kList =
    R"md(Every PCI function, grouped by IOMMU group, each group with its viability ("viable", or "not
viable:" and the members on host drivers that keep it from being so): BDF, vendor:device,
driver (`-` for none), class and name from pci.ids (what pci.ids does not know is named as
lspci names it: "Intel Corporation Device 0d57", "Device 1234:11e8"), and `driver_override`
when set.

Devices are selected as lspci selects them, parsed by libpci's own parsers: `-s
[[domain:]bus:][slot][.func]` and `-d [vendor]:[device][:class[:prog-if]]`, in hex (`-d ::03xx`
compares the base class only); each narrows the selection. `--class` takes base class names
(unclassified, storage, network, display, multimedia, memory, bridge, communication, system,
input, docking, processor, serial-bus, wireless, intelligent, satellite, encryption,
signal-processing, accelerator, instrumentation, coprocessor) or a base class in hex,
comma-separated or repeated. A group's viability is always that of all its members; when some
are not selected, its header says how many. A malformed selection is a usage error (exit 2)
that names it.

`--json` gives `{"groups": [{"group",
"viable", "blockers": [{"bdf", "driver"}], "devices": [...]}], "without_group": [...]}`, each
device the device object of `show --json`, its `host_use` null (not looked at) and its
`iommu_group_devices` the whole group even when the list is filtered.)md";

constexpr std::string_view kShow =
    R"md(One function in full: names and IDs, subsystem, driver and override, IOMMU group and its
members, bridge/multifunction/boot VGA, NUMA node, SR-IOV (PF with VFs, or VF of its PF),
reset methods, BARs (size, 32/64-bit, prefetchable, address), ROM, MSI and MSI-X (vectors,
table and PBA BAR and offset), every capability, and what on the host uses it. `--json` prints
`{"device": {...}}`: IDs as hex strings (`"0x1b36"`, class `"0x010802"`, revision `"0x02"`),
and `sriov`, `msi`, `msix`, `numa_node` and names pci.ids does not know as null when absent.
`reset` (null in `list`, which does not look) has the methods (the kernel's `reset_method` when it lists one,
`from_kernel`; else what config space and the tree offer), whether one resets the function
alone, each of FLR, AF FLR, PM, bus and hot-plug slot reset, and `also_reset`, the other
functions a bus or slot reset hits.)md";

constexpr std::string_view kCheck =
    R"md(Passthrough readiness of one device and its group, each item pass/warn/fail with the reason
and the fix: `iommu`, `group-viable`, `header-type`, `sriov`, `boot-vga`, `reset`,
`interrupt-remapping`, `host-use`, and for display devices `display` (what on the host still
uses it, as bind's display check finds it), `gpu-functions`, `large-bars` (BARs above 4 GiB)
and `rom`. Exit 0 if nothing fails, 1 otherwise.

`reset` says which resets the device really has: the kernel's `reset_method` when it lists one
(it is authoritative: quirks turn FLR or bus resets off), else what config space offers (PCIe
FLR, Advanced Features FLR, PM reset without No_Soft_Reset) and the tree (a secondary bus reset
of the parent bridge, a hot-plug slot). A reset of the function alone passes. A bus or slot
reset also resets every other function below the same bridge; vfio-pci uses it only while all
of them are on vfio-pci, so it passes when they share the device's IOMMU group (bind moves them
along, like a GPU's HDMI audio) and warns, naming them, when they stay on the host. With no
reset that works between guest runs it warns: the guest sees the state the last user left, and
GPUs often fail to initialise on the second boot.

`gpu-functions` looks at the other functions of the GPU's slot: those in its IOMMU group move
with it (pass); a function in another IOMMU group, or one bind would refuse, cannot, and the
item warns naming it and how to pass it through as well.

The `rom` item reads the option ROM as `vfiokit rom` does (through sysfs; it needs root, and is
not read while a VFIO user holds the group) and warns, with `romfile=FILE` as the fix, when the
ROM is not valid or is for another vendor:device; without root it says the contents could not
be read.

`check` fails whatever `bind` would refuse: it asks bind's own plan (without `--force`), and
each refusal is a FAIL under the item that covers it (`host-use` for a network interface or a
disk in use, `group-in-use`, `journal`, ...) with the `--force-...` flag that overrides it,
also when the refusal concerns another member of the group. Without root the kernel shows only
the 64-byte header of config space: `check` and `show` then say that capabilities and reset
support are unknown and root's to read (a WARN item `config-space`), never that the device is
damaged.)md";

constexpr std::string_view kBind =
    R"md(Moves the devices and every other endpoint of their IOMMU groups to vfio-pci (bridges stay on
pcieport). First it plans and checks; a refusal exits 3 with a reason per device and the flag
that overrides it:

| check | refuses when | override |
| --- | --- | --- |
| boot-vga | the device is the boot VGA device (host console) | `--force-boot-vga` |
| display | a display device (class 03) the host still uses: a process holds its DRM nodes (/dev/dri/cardN, renderDN from /sys/bus/pci/devices/BDF/drm; /dev/nvidiaN for NVIDIA's driver), the framebuffer console is bound to its fbdev (/sys/class/vtconsole), or a firmware framebuffer (efifb, simplefb, simpledrm, vesafb, BOOTFB) in /proc/iomem lies in one of its BARs. The reason names each user and the fix (stop the display manager, `echo 0 > /sys/class/vtconsole/vtconN/bind`, boot with `video=efifb:off`). A GPU driver with none of these users is reported, not refused: unbinding an idle driver is what bind does | `--force-display` |
| net | one of its network interfaces is up, carries IPv4/IPv6 routes, or is enslaved | `--force-net` |
| block | one of its disks or partitions is mounted, held (dm, md), swapped on, or open exclusively | `--force-block` |
| group-in-use | another process has the group open through VFIO: /dev/vfio/GROUP, a VFIO device fd it kept after closing the group (`anon_inode:[vfio-device]`, whose device Linux 6.18 and later name in /proc/PID/fdinfo; on older kernels, such as Debian 12's, any such fd counts, since it may be this group's), or a device's cdev /dev/vfio/devices/vfioN. /dev/iommu alone holds no device | `--force-group-in-use` |
| sriov | it is an SR-IOV PF with VFs enabled (unbinding destroys them) | `--force-sriov` |
| iommu, bridge, group-viable | no IOMMU group; a bridge was requested; a bridge in the group sits on a driver VFIO does not accept | none |
| journal | the device's journal entry cannot be used (damaged, named for another device, not vfiokit's own file), so which driver it came from is unknown; the reason says what to do | none |

Then, under the lock in /run/vfiokit (`--wait` seconds, default 30, for another vfiokit to
finish; 0 fails at once; a value that is not a number of seconds from 0 to 86400, such as
`nan` or `1e300`, is a usage error), it journals every device's original driver and override
durably in /run/vfiokit/devices/BDF, loads vfio-pci if it is missing, and per device writes
`driver_override` = vfio-pci, unbinds from the current driver (10 s timeout), writes
`drivers_probe` (retried), verifies the driver link, and keeps the override. It waits for
/dev/vfio/GROUP and gives it to `--owner`. It never uses `new_id`.

A device-tree host (arm64) gives a PCI device its IOMMU group only when a driver probes it, so a
device no driver has taken has no group yet. When an IOMMU is active (/sys/class/iommu is not
empty) bind lets vfio-pci probe such a device, then reads the group it joined: if that group
holds a device this bind does not move (other than a bridge on a driver that keeps the group
viable), the device goes back to no driver and the error names the group's members and the
`vfiokit bind` that moves them together. Without an active IOMMU, or for a groupless device a
driver already holds, the iommu check refuses. If any step fails, every
device already changed is taken back to its original driver and the error names each device
with what happened to it (exit 1). `--dry-run` prints the plan and the checks and changes
nothing.

When the lock stays busy past `--wait`, the error (exit 1) says who holds it, from /proc (the
process whose open lock file carries the flock in /proc/PID/fdinfo) and the pid written in the
lock file: another vfiokit at work (wait, or `--wait`); a process left behind by a vfiokit that
has exited (end it, then `restore --all`); a process blocked in the kernel, state D, such as a
sysfs write stuck in a driver's remove() (only the kernel lets it go: dmesg, /proc/PID/stack,
perhaps a reboot); or nobody visible to this user (`fuser -v /run/vfiokit/lock` as root).

The state in /run/vfiokit is vfiokit's own and trusted only as such: the folder and
`devices/` are made with mode 0755, journal entries 0644 (so `check` and `show` read them
unprivileged) and the lock 0600, exactly, whatever the umask; every file is opened relative to
its folder without following symlinks, and written through a fresh `NAME.tmp` renamed into
place. A state folder or file that is a symlink, has more than one hard link, is owned by
anyone but root (or, for an unprivileged reader such as `check`, that user), or is writable by
group or others is refused (exit 1, nothing changed), naming the path and the fix.

`--json` prints `{"operation", "dry_run", "plan", "result", "vfio_groups", "left", "signal"}`
(`result` and `vfio_groups` null when nothing ran, `left` null except for restore). The plan
has the same shape wherever one is shown (bind, unbind, restore, persist, `launch --qemu
--dry-run`):
`{"devices": [{"bdf", "iommu_group", "requested", "action" (move, already, stay), "driver",
"target_driver", "note"}], "refused": [{"bdf", "check", "reason", "force_flag"}], "forced":
[...]}`; `result` is each device's outcome `{"bdf", "ok", "detail"}` once it ran, and
`signal` the signal that came meanwhile (or null). `unbind` prints the same document, and
`restore` adds `left`.)md";

constexpr std::string_view kUnbind =
    R"md(The reverse, for the devices' whole groups: restore `driver_override` to its original value
(cleared if there was none), unbind from vfio-pci, bind the journalled original driver
(`drivers/NAME/bind`, falling back to `drivers_probe`), verify, drop the journal entry. A device
vfiokit did not bind goes to whatever driver `drivers_probe` finds. Refused (exit 3) while
another process holds the group or one of its devices open through VFIO (the group-in-use check
above), since vfio-pci's remove would wait for it.)md";

constexpr std::string_view kRestore =
    R"md(Give the BDFs to restore, or `--all`.

After a crash or `kill -9` in the middle of a bind, returns every journalled device (or the
ones named) to its original driver and override, from wherever the interruption left it.
`restore --all` with an empty journal says so and exits 0; naming a device that has no entry
fails (exit 1) before anything moves.

One bad entry blocks nothing else: every entry that can be restored is. An entry that is
damaged (truncated, an unknown key, named for another device than the one inside, a symlink)
or that names a device no longer on the host (unplugged, or a virtual function whose physical
function disabled SR-IOV) is left in place and reported under `left in the journal:` with its
file, the problem and the fix (`--json`: `"left": [{"bdf", "path", "problem", "fix"}]`), and
the exit status is then 1. A leftover `BDF.tmp` of an interrupted write is ignored.)md";

constexpr std::string_view kPersist =
    R"md(Four forms: `vfiokit persist BDF...` adds devices, `vfiokit persist --remove BDF...`
removes them, `vfiokit persist --list` shows them, and `vfiokit persist --apply` (what
vfiokit.service runs at boot) binds the persisted devices a host driver took.

Keeps devices (and the rest of their groups) on vfio-pci from boot on: a udev rule
`/etc/udev/rules.d/61-vfiokit-BDF.rules` sets `driver_override` in the PCI add event, before
80-drivers.rules loads the host driver's module, and matches vendor and device so a different
card in the same slot is left alone; `/etc/modprobe.d/vfiokit.conf` holds `softdep HOSTDRIVER
pre: vfio-pci` so vfio-pci is registered before the host driver loads. The same safety checks
as `bind` apply (except group-in-use, so there is no `--force-group-in-use`), and it writes
under the same lock (`--wait`).

Early boot: an initramfs holds its own copy of the udev rules, modprobe.d and modules. dracut
copies only the rules its modules name, and neither generator adds the vfio modules the softdep
needs (Debian's initramfs-tools does copy /etc/udev/rules.d and /etc/modprobe.d). The package's
initramfs-tools hook (/usr/share/initramfs-tools/hooks/vfiokit) and dracut module (90vfiokit)
carry vfiokit's rules, the softdeps and the vfio, vfio_iommu_type1, vfio_pci (and vfio_pci_core)
modules into the initramfs whenever a device is persisted, so the initramfs must be rebuilt
after `persist` and `persist --remove`: both say how for the generator the host has
(`update-initramfs -u -k all` where /etc/initramfs-tools/initramfs.conf exists, else `dracut
--regenerate-all --force` where /etc/dracut.conf does), or that none was found. A host driver
built into the kernel probes the device before udev runs, so no rule can stop it:
`vfiokit.service` (enable it with `systemctl enable vfiokit.service`; it runs only when a device
is persisted) runs `vfiokit persist --apply` early at boot, before the network comes up, as
driverctl's unit does.

`--apply` looks at every persisted device's slot and binds, exactly as `vfiokit bind` would (the
same plan, checks, `--force-REASON` flags, journal and rollback, so `unbind` and `restore` take
them home), those a host driver holds (built into the kernel, or loaded before vfio-pci could
claim it) or that no driver holds. It leaves a device already on a VFIO driver, a slot where
another card (other vendor or device IDs) sits, and an empty slot; each is listed with why.
One refusal refuses the whole plan (exit 3), as in `bind`. It takes no BDFs.

`--dry-run` writes, removes and binds nothing, and says so: the text ends with "dry run:
nothing was written or removed" (`--apply`: "dry run: nothing was changed") and lists what it
would write or change.

`--json` prints `{"operation" (persist, persist-remove, persist-list), "dry_run", "plan"
(persist; null for --remove and --list), "changed" (whether any file was written or removed: false on a dry run), "files"
(written or removed), "would_change" (a dry run's files), "persisted": [{"bdf", "vendor_id", "device_id",
"host_driver", "rule"}], "initramfs" ({"generator", "rebuild_command"}, or null for --list and
where no generator was found), "signal"}`; with `--apply`, `{"operation": "persist-apply",
"dry_run", "devices": [{"bdf", "vendor_id", "device_id", "action" (bind, already, absent, other-card), "reason"}], "plan" (null when
nothing is to be bound), "result" (as bind's; null on a dry run or when nothing ran),
"signal"}`. A refusal exits 3 with the plan's refusals.)md";

constexpr std::string_view kInfo =
    R"md(What VFIO offers for a device already on vfio-pci: reset (VFIO_DEVICE_RESET, and which devices
a bus reset would also reset), each region with its size, flags (read, write, mmap), the areas
that may be mmap()ed when the kernel lists them (sparse mmap) and whether the MSI-X table may be
mapped, each interrupt index (INTx, MSI, MSI-X, ERR, REQ) with its vector count and flags
(eventfd, maskable, automasked, noresize; MSI-X also `dynamic` when vectors can be added while it
is enabled, Linux 6.5's dynamic MSI-X), and the IOMMU: page sizes, usable IOVA ranges, and how
many more DMA mappings the container allows. An index the device does not have is shown as not
available with the reason (ERR exists only for PCI Express devices: edu or anything behind a
conventional PCI bridge has none); in JSON every index has the same keys: when `available` is
false, `count` and the flags are null and `reason` says why. `page_sizes` is a hex mask.)md";

constexpr std::string_view kSelftest =
    R"md(Drives the device from user space and reports each stage as ok, failed or skipped with
details; exit 0 if no stage failed, 1 otherwise.

| stage | what it proves |
| --- | --- |
| config | config space read through VFIO matches sysfs (vendor, device); the capability list parses |
| bar | a register read through the mmap()ed BAR and through pread on the device fd agree (edu: identification 0x010000ed and the liveness register; nvme: the version register) |
| dma | edu: a random 4 KiB pattern goes into the device and back out by DMA at IOVAs the IOMMU translates (each shown next to its host physical page), with an MSI on every completion; nvme: admin queues in DMA memory, controller enable, Identify Controller (data by DMA, completion on MSI-X vector 0; `--expect-serial` checks the serial); other devices: skipped |
| irq-eventfd | every vector of the device's MSI-X (else MSI, else INTx) fired with the kernel's loopback trigger arrives once, on its own eventfd; edu also raises a real MSI |
| irq-kvm | the device's MSI-X (else MSI) vectors, up to 200, wired into a fresh VM running the irq-probe payload (GSI routes committed in one KVM_SET_GSI_ROUTING, one KVM_IRQFD each): device vector n fired with the loopback must reach the guest as vector 0x30 + n exactly once; edu's own MSI and nvme's Identify completion must reach it too; nothing else may arrive. Needs /dev/kvm: on x86_64 one that can run protected-mode guests (the rig's nested KVM); on arm64 one with a vGICv3 and an ITS, where the routes carry the device ID and irq-probe's arm64 build maps each event to an LPI through the ITS |)md";

constexpr std::string_view kLaunch = R"md(### `launch --payload`

Runs a guest payload in vfiokit's own VMM with the device passed through as guest PCI function
00:01.0 (docs/payloads.md says what the guest sees). First the same checks as `bind` (refused:
exit 3), then the whole IOMMU group goes to vfio-pci for the run. The text output shows what
moved, the guest's BAR layout, when the guest ran its first instruction and made its first
mailbox write (milliseconds since vfiokit started), the payload's log, the devices going home,
and `result: passed` or `result: FAILED: why`: the payload's failure code by name, an
exception (`exception 0x0 (divide error)`), `the payload reported no result within N s` (with where the vCPU was: halted waiting for an
interrupt, or running at an address), or
`the guest stopped: ...` (a triple fault, an access nothing handles). Exit 0 only if the payload
passed, 1 otherwise; 2 for an unknown payload or a bad option, before anything moves. A plan
that is refused is printed as `bind` prints it, before anything moves, and exits 3. The
`--json` document starts with `"operation": "launch", "bdf"`, and its `timing` keys are always
there (null when unknown).

Payloads vfiokit carries: `edu-dma`, `edu-intx`, `nvme-identify` (`--expect-serial`),
`faulty`, `silent`; or the path of your own flat binary. `--memory` sets guest RAM (default
16 MiB, all DMA-mapped and so pinned), `--timeout` the wait for the result (default 30 s). The
device interrupts the guest by whatever the guest enables: MSI-X, MSI, or, with neither on, its
INTx pin, which the guest finds in Interrupt Pin and whose IOAPIC input it finds in Interrupt
Line (a level-triggered line, unmasked by the kernel at each end of interrupt);
`--interrupts intx` hides MSI and MSI-X so that the guest must use the pin (`edu-intx` works
either way), and refuses a device without one. SIGINT, SIGTERM or SIGHUP stop the guest and restore
the devices; after `kill -9`, `vfiokit restore --all` does.

Statistics: `--stats` prints, after the payload's log, what the guest and the device did: time
to the guest's first instruction, guest RAM DMA-mapped, interrupts the device raised on the host
per vector (`/proc/interrupts`), trapped accesses per guest BAR, and KVM's own non-zero counters
per VM and per vCPU (exits by reason, halt polling, interrupt injections; from KVM's binary
statistics, Linux 5.14 and later: where the kernel has none the line says so). `--json` always
carries them under `statistics` (KVM's raw values by their kernel names, a histogram as its
buckets). `--metrics-file PATH` keeps them in PATH in Prometheus's text format, replaced
atomically every `--interval` (default 1 s) while the guest runs and once after it stopped
(`vfiokit_guest_running` is then 0): point node_exporter's textfile collector at its folder.
Metrics are labelled `bdf` and `payload`; KVM's become `vfiokit_kvm_vm_NAME` and
`vfiokit_kvm_vcpu_NAME{vcpu="N"}`, nanoseconds as `_seconds`, counters with `_total`
(histograms are left out of the file).

Dirty pages: `--dirty-log` logs which guest pages were written while the guest ran, by its vCPU
and by the device, reports each `--interval` as a line (`dirty pages at 1.00 s: vCPU 12 pages,
device 4096 pages`) and, at the end, the totals with the pages as address ranges (`--json`:
`dirty_log`, the same as runs of pages, and every interval). The vCPU's pages come from KVM's
dirty ring (`KVM_CAP_DIRTY_LOG_RING_ACQ_REL`, else `KVM_CAP_DIRTY_LOG_RING`) where the kernel has
it, else from its dirty bitmap (`KVM_GET_DIRTY_LOG`, with `KVM_CLEAR_DIRTY_LOG` where manual
protect is offered); `--dirty-mechanism ring|bitmap` insists on one. The device's come from VFIO
type1's dirty page log, which cannot see what a device writes and so reports every page pinned
for DMA, all of guest RAM, at every read: an upper bound, never the device's own set
(docs/dirty-tracking.md). The `dirty-pages` payload writes known pages each way.

### `launch --qemu`

Runs QEMU with the device and the rest of its IOMMU group passed through: the checks, the
journalled bind of the whole group, then `QEMU-ARGS...` followed by a `-device vfio-pci` per
endpoint of the group. On q35 (`-M q35`, `pc-q35-*`) each host slot gets a
`pcie-root-port` of its own (`id=vfiokit-rpN`, a chassis number the arguments do not use) with
its functions behind it, function numbers kept, `multifunction=on` on function 0 when there are
several (a GPU and its HDMI audio stay together), as Proxmox's `pcie=1` and libvirt place them:
the guest sees PCI Express devices, which GPU drivers expect. On i440fx (QEMU's default
machine), other machines or with `--flat`, functions of one host slot share one root-bus slot
(`addr=0x10.0,multifunction=on`, `addr=0x10.1`, ...; 0x11 for the next such slot) and a lone
function is left for QEMU to place. A slot without function 0 is renumbered from 0: a guest
looks for functions 1-7 only behind function 0. The plan and the report say where each function
sits in the guest.

A `-device vfio-pci,host=BDF` (or `sysfsdev=`) already in `QEMU-ARGS` is left as written and
not added again; the rest of the group is added. A function of the same host slot that such a
device leaves out is an error naming it (vfiokit cannot place it beside a device it did not
place), and so is a user-written vfio-pci device outside the group being bound.
`--device-opt DEVICE:KEY=VALUE[,KEY=VALUE]` (repeatable; DEVICE an address or interface name)
appends options to that function's `-device` (`romfile=`, `rombar=`, `x-vga=`, `display=`,
...; a comma inside a value is `,,` as in QEMU). They are checked first: `x-vga=on` only on a
VGA controller (class 0300), `rombar` 0 or 1, `romfile=` a file vfiokit can read (`vfiokit rom
BDF --output FILE` saves the device's own; a bare name is QEMU's to find in its data folders), never `host`, `sysfsdev`, `driver`, `bus`, `addr` or
`multifunction` (vfiokit places the device; write your own `-device` to place it yourself).
`--cpus N` adds `-smp N`; `--name NAME` adds `-name guest=NAME,debug-threads=on` (vCPU threads
named "CPU n/KVM"). An option QEMU-ARGS already has (`-smp`, `-name`) is an error, never
given twice.

Firmware, memory and CPUs, each checked before anything is bound. `--firmware uefi` boots
OVMF from Debian's ovmf package (`apt-get install ovmf`; the 4M pair preferred) as a pflash
pair: the code read-only, and the guest's own variable store, created from OVMF's template the
first time under `/var/lib/vfiokit/guests/NAME/OVMF_VARS.fd` (`--name NAME`) and kept, so boot
entries and settings survive between runs; without `--name` a copy in `/run/vfiokit` serves
this run only. `--firmware bios` is QEMU's SeaBIOS, its default. `--hugepages 2M|1G` backs
the guest's RAM (`-m SIZE`) with a preallocated hugetlb memfd (`-object
memory-backend-memfd,...,prealloc=on -machine memory-backend=vfiokit-ram`); too few free
pages of that size is a refusal (exit 3) that says how many are needed and how to reserve them
(`sysctl vm.nr_hugepages=N`, or the boot options `hugepagesz=1G hugepages=N`). `--pin LIST`
pins vCPU i to the i-th CPU of LIST (`2-5,8`: one online CPU per vCPU, as many as `--cpus N`
gives, or one without it, or as many as QEMU-ARGS's own `-smp` topology gives, which QEMU then
confirms); `--emulator-pin LIST` puts QEMU's other threads on LIST. QEMU then starts paused
(`-S`) with a QMP socket vfiokit keeps for the run in a private folder
(`/run/vfiokit/launch-XXXXXX/`, mode 0700, removed after the run with the OVMF variable copy of
a guest without a name); vfiokit finds the vCPU threads (`query-cpus-fast`),
pins them (sched_setaffinity), reads every affinity back, and only then lets the guest run
(`cont`). A pinning the kernel narrowed (a cpuset) stops QEMU and fails. The report lists each
thread, the CPUs asked for and those it runs on (`"pinning"` in JSON, null without `--pin`).

QEMU runs as a child that dies with vfiokit (PR_SET_PDEATHSIG); SIGINT, SIGTERM and SIGHUP are
passed on to it. When it exits, every device goes back to its original driver. Exit 0 if QEMU
exited 0 (as it does on SIGTERM; the report says which signal was passed on), 1 otherwise; 2
if the QEMU binary is not there (checked before anything moves, and not at all for a dry run). `--dry-run` prints the plan as
`bind --dry-run` does (each device, its driver and where it goes, why it moves or stays,
refusals) and the command, and changes nothing; a refusal exits 3. With `--json`:
`{"operation": "launch", "bdf", "dry_run": true, "plan", "command", "guest_devices"}`, the plan
as `bind` shows it and `[{"bdf", "guest"}]` saying where each function sits in the guest. A
launch its plan refuses prints the same document with `"dry_run": false` (and `"command"` and
`"guest_devices"` null for `--payload`) and exits 3; a completed run prints `{"operation":
"launch", "bdf", "dry_run": false, "command", "guest_devices", "pinning", "qemu_exit_status",
"signal_passed_on", "restored"}`.
`launch` offers the `--force-REASON` flags of `bind` except `--force-group-in-use`: a group
another process holds cannot be opened for the guest.

`--run-as USER[:GROUP]` (or `UID:GID`; a user's login group when none is given) is
recommended: vfiokit binds and restores as root, but QEMU becomes that user once it has set
up (vfiokit appends `-runas UID:GID`), so a guest that escapes QEMU is not root. For the run,
the `/dev/vfio/N` node of every bound group is lent to the user (and given back to its owner
before the devices go home), and QEMU's RLIMIT_MEMLOCK is its guest RAM (`-m`, QEMU's 128 MiB
without it) plus 1 GiB, because VFIO pins all guest RAM against that limit once QEMU is no
longer root; libvirt gives the same allowance. A user or group that does not exist, or root,
is a usage error (exit 2) before anything moves.)md";

constexpr std::string_view kDevicePlugin =
    R"md(Serves kubelet's Device Plugin API (v1beta1, gRPC over unix sockets) for the resources of
the JSON config given with `--config` (docs/kubernetes.md): each resource's devices are selected
by vendor:device (`"devices"`, as `lspci -d`), class (`"classes"`, 2, 4 or 6 hex digits) or
address (`"bdfs"`). A function that a resource selects brings in its whole IOMMU group, which is
the unit kubelet allocates: one device per group, its ID the group's first endpoint.

At start it moves each group to vfio-pci as `bind` does (the same plan and checks, journal, lock
and rollback), one group at a time; a group that is refused or fails is reported with its fix
and not advertised. A journal left by a plugin that was killed is reconciled first: a device
whose bind was cut short goes home and is bound afresh, one that is bound is adopted. Then it
serves one socket per resource in `--plugin-dir` and registers each with kubelet, retrying while
kubelet is not there, and registering again after kubelet restarts. ListAndWatch reports each
device Healthy while every member is on the bus, on vfio-pci, its group viable and /dev/vfio/N
there; sysfs is read again on every PCI uevent and every `--health-interval`.
GetPreferredAllocation keeps to one NUMA node where it can; Allocate gives /dev/vfio/vfio and
/dev/vfio/N (rw), `PCI_RESOURCE_<RESOURCE>` (`vfiokit.io/nvme`: `PCI_RESOURCE_VFIOKIT_IO_NVME`,
KubeVirt's name for it) with the addresses of the functions the resource selected, one per
device as KubeVirt expects, and `VFIOKIT_GROUP_MEMBERS_<RESOURCE>` with every member of the
allocated groups (a GPU's audio function too).

It prints one line per event (a group taken or refused, a registration, a health change, kubelet
restarting, each device going home). On SIGTERM or SIGINT it stops serving, then gives every group
it took back to its original driver (unless `--keep-bound` or `"keepBound": true`). `--dry-run`
prints what each resource selects and what is refused, changing nothing; `--json` (only with
`--dry-run`) prints `{"config", "plugin_dir", "keep_bound", "resources": [{"name",
"environment_variable", "socket", "devices": [{"id", "iommu_group", "members", "selected",
"numa_node"}],
"refused": [{"bdf", "problem", "fix"}]}]}`.

The serving is done by a program of its own, /usr/libexec/vfiokit/vfiokit-device-plugin (beside
`vfiokit` in a build tree), which this command runs with the same command line: it is the only
one that links gRPC, so every other command stays a small static start-up. A config that cannot
be read or parsed is a usage error (exit 2) naming the key.)md";

constexpr std::string_view kRom =
    R"md(Reads the device's option ROM (expansion ROM): through VFIO's ROM region when the device is
on vfio-pci, else through sysfs `rom` (enabled for the read and disabled again afterwards, as
the kernel requires; both need root). Then it walks every image, as firmware does: the 0x55 0xAA
signature, the PCI Data Structure ("PCIR") its header points to, the image length, the code type
(x86 legacy BIOS, Open Firmware, PA-RISC, UEFI with its machine type such as x64 or AArch64), the
vendor:device it is for (with the PCI 3.0 device list), and the last-image flag. It prints each
image (offset, size, code type, vendor:device, checksum, last) and every problem.

Only x86 images carry a checksum: their bytes over the Initialization Size (header byte 2, in
512-byte units) add up to 0, or a legacy BIOS skips them. UEFI images have none (the UEFI
specification defines no checksum for them; Secure Boot checks the driver's signature).

A ROM is valid when every image walked is whole and well formed, each is for this device's
vendor:device, the x86 checksums hold and an image has the last-image flag. Exit 0 when it is
valid, 1 when it is not (the problems say why: a bad signature, a PCIR pointer outside the image,
a length of 0 or past the data, a checksum mismatch, an image for another device, no last
image); a device without a ROM BAR is a usage error (exit 2).

`--output FILE` writes the ROM's images (the bytes up to the end of the last image: what sysfs
gives, without the 0xff padding VFIO's region reads as far as the BAR's size) atomically to FILE,
only when the ROM is valid, for QEMU's `-device vfio-pci,host=BDF,romfile=FILE`.

`--json` prints `{"bdf", "vendor_id", "device_id", "source", "bar_size", "read_size", "size",
"valid", "images": [{"offset", "size", "code_type", "code_type_name", "vendor_id",
"device_id", "device_list", "class_code", "pcir_revision", "code_revision", "last", "checksum",
"efi"}], "problems": [{"kind", "offset", "message"}], "output"}`; `checksum` is "ok", "mismatch"
or "not-required", and `efi` (UEFI images only, else null) holds the header's "signature",
"machine_type", "machine", "subsystem", "subsystem_name", "compression_type" and
"image_offset".)md";

constexpr std::array kCommands{
    CommandText{"doctor", kDoctor,
                R"md(```
vfiokit doctor
vfiokit doctor --json | jq '.checks[] | select(.status != "pass")'
```)md",
                "vfiokit-check(1)"},
    CommandText{"list", kList,
                R"md(```
vfiokit list
vfiokit list --class display,multimedia
vfiokit list -d 10de: -s 01:00
vfiokit list --json | jq '.groups[] | select(.viable) | .group'
```)md",
                "vfiokit-show(1), lspci(8)"},
    CommandText{"show", kShow,
                R"md(```
vfiokit show 0000:01:00.0
```)md",
                "vfiokit-list(1), vfiokit-check(1), lspci(8)"},
    CommandText{"check", kCheck,
                R"md(```
vfiokit check 0000:01:00.0
```)md",
                "vfiokit-doctor(1), vfiokit-bind(1)"},
    CommandText{"bind", kBind,
                R"md(```
vfiokit bind --dry-run 0000:01:00.0
vfiokit bind --owner alice 0000:01:00.0
```)md",
                "vfiokit-unbind(1), vfiokit-restore(1), vfiokit-check(1)"},
    CommandText{"unbind", kUnbind,
                R"md(```
vfiokit unbind 0000:01:00.0
```)md",
                "vfiokit-bind(1), vfiokit-restore(1)"},
    CommandText{"restore", kRestore,
                R"md(```
vfiokit restore --all --dry-run
vfiokit restore --all
```)md",
                "vfiokit-bind(1), vfiokit-unbind(1)"},
    CommandText{"persist", kPersist,
                R"md(```
vfiokit persist 0000:01:00.0
vfiokit persist --list
vfiokit persist --remove 0000:01:00.0
```)md",
                "vfiokit-bind(1), udev(7), modprobe.d(5)"},
    CommandText{"info", kInfo,
                R"md(```
vfiokit info 0000:01:00.0
```)md",
                "vfiokit-selftest(1)"},
    CommandText{"selftest", kSelftest,
                R"md(```
vfiokit selftest 0000:00:03.0
vfiokit selftest 0000:00:04.0 --stage dma --expect-serial VFIOKIT0001
```)md",
                "vfiokit-info(1), vfiokit-launch(1)"},
    CommandText{"launch", kLaunch,
                R"md(```
vfiokit launch 0000:00:03.0 --payload edu-dma
vfiokit launch 0000:01:00.0 --qemu --run-as libvirt-qemu -- -M q35 -accel kvm -cpu host -m 8G \
    -drive file=win.qcow2,if=virtio -display none -vga none
vfiokit rom 0000:01:00.0 --output /var/lib/vfiokit/gpu.rom
vfiokit launch 0000:01:00.0 --qemu --firmware uefi --name win --hugepages 1G --cpus 4 \
    --pin 2-5 --emulator-pin 0-1 --device-opt 0000:01:00.0:romfile=/var/lib/vfiokit/gpu.rom \
    --run-as libvirt-qemu -- -M q35 -accel kvm -cpu host -m 8G -drive file=win.qcow2,if=virtio
```)md",
                "vfiokit-bind(1), vfiokit-restore(1), qemu-system-x86_64(1)"},
    CommandText{"device-plugin", kDevicePlugin,
                R"md(```
vfiokit device-plugin --config /etc/vfiokit/config.json --dry-run
vfiokit device-plugin --config /etc/vfiokit/config.json
```)md",
                "vfiokit-bind(1), vfiokit-restore(1), kubelet(8)"},
    CommandText{"rom", kRom,
                R"md(```
vfiokit rom 0000:01:00.0
vfiokit rom 0000:01:00.0 --output gpu.rom
```)md",
                "vfiokit-check(1), vfiokit-launch(1), qemu-system-x86_64(1)"},
};

}  // namespace

const ManualText& manual_text() {
  static const ManualText text{
      kOverview, kExitStatus,
      kFiles,    kEnvironment,
      kExamples, "lspci(8), driverctl(8), udev(7), modprobe.d(5), qemu-system-x86_64(1)",
      kCommands};
  return text;
}

std::string_view option_value_name(std::string_view long_name) {
  static constexpr std::array<std::pair<std::string_view, std::string_view>, 11> names{{
      {"--owner", "USER[:GROUP]"},
      {"--run-as", "USER[:GROUP]"},
      {"--payload", "NAME|PATH"},
      {"--qemu-binary", "PATH"},
      {"--memory", "MIB"},
      {"--stage", "NAME"},
      {"--expect-serial", "SERIAL"},
      {"--host-root", "DIR"},
      {"--output", "FILE"},
      {"--config", "FILE"},
      {"--plugin-dir", "DIR"},
  }};
  for (const auto& [name, value] : names) {
    if (name == long_name) return value;
  }
  return {};
}

}  // namespace vfiokit::cli
