#!/bin/bash
# The exact instructions iommu/dma_sync.{h,cpp} emit, read from the built objects' disassembly
# (docs/dma.md, "Ordering" and "Why these instructions"): each barrier and each cache sync of
# ARCH is pinned, so a changed instruction, shareability domain, point of coherency or a lost
# loop fails here. The same checks then run on copies of the disassembly with one instruction
# changed each, which must fail: a check that cannot fail is caught too.
#   check.sh ARCH OBJDUMP IOMMU_LIBRARY PROBE_OBJECT      (ARCH: x86_64 or aarch64)
set -euo pipefail
arch=${1:?usage: check.sh ARCH OBJDUMP IOMMU_LIBRARY PROBE_OBJECT}
objdump=${2:?}
library=${3:?}
probe=${4:?}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# One instruction a line, "ADDRESS MNEMONIC OPERANDS", each function after a "== NAME" line;
# branch targets keep their address, comments (# ..., // ...) and padding nops go.
disassemble() {
	"$objdump" -d --no-show-raw-insn -C "$@" | awk '
		/^[0-9a-f]+ <.*>:$/ { name = $0; sub(/^[0-9a-f]+ </, "", name); sub(/>:$/, "", name)
		                      print "== " name; next }
		/^ +[0-9a-f]+:\t/ {
			line = $0; sub(/^ +/, "", line)
			address = line; sub(/:.*/, "", address)
			text = line; sub(/^[0-9a-f]+:\t/, "", text)
			sub(/[ \t]+(\/\/|# |<).*$/, "", text); gsub(/\t/, " ", text); gsub(/  +/, " ", text)
			sub(/ +$/, "", text)
			if (text ~ /^(nop|xchg %ax,%ax|data16|cs nopw|nopw|nopl)/) next
			print address " " text
		}'
}

# body FILE NAME: the instructions of the function whose name starts with NAME.
body() {
	awk -v name="$2" '/^== / { on = index(substr($0, 4), name) == 1; next } on' "$1"
}

failures=0
fail() {
	echo "  FAIL: $*"
	failures=$((failures + 1))
}

# expect_only FILE FUNCTION INSTRUCTION...: the function is exactly these instructions.
expect_only() {
	local file=$1 function=$2
	shift 2
	local got want
	got=$(body "$file" "$function" | cut -d' ' -f2- | grep -v '^endbr64$' | paste -sd ';')
	want=$(printf '%s\n' "$@" | paste -sd ';')
	[[ $got == "$want" ]] || fail "$function: [$got], want [$want]"
}

# expect_order FILE FUNCTION REGEX...: instructions matching each REGEX, in this order.
expect_order() {
	local file=$1 function=$2
	shift 2
	local instructions previous=0 line regex
	instructions=$(body "$file" "$function" | cut -d' ' -f2-)
	for regex in "$@"; do
		line=$(awk -v from="$previous" -v re="$regex" 'NR > from && $0 ~ re { print NR; exit }' \
			<<<"$instructions")
		if [[ -z $line ]]; then
			fail "$function: no /$regex/ after instruction $previous in [$(paste -sd ';' <<<"$instructions")]"
			return
		fi
		previous=$line
	done
}

# expect_none FILE FUNCTION REGEX: no instruction of the function matches.
expect_none() {
	local found
	found=$(body "$1" "$2" | cut -d' ' -f2- | grep -E "$3" || true)
	[[ -z $found ]] || fail "$2: has $(paste -sd ';' <<<"$found"), which must not be there"
}

# expect_loop FILE FUNCTION REGEX: exactly one instruction matches, and a later branch goes back
# to it or before it: it runs once per cache line, not once.
expect_loop() {
	local matches address
	matches=$(body "$1" "$2" | awk -v re="$3" '{ text = $0; sub(/^[0-9a-f]+ /, "", text) }
		text ~ re { print $1 }')
	if [[ $(wc -w <<<"$matches") != 1 ]]; then
		fail "$2: /$3/ $(wc -w <<<"$matches") times, want once, in a loop"
		return
	fi
	address=$matches
	body "$1" "$2" | awk -v at="$address" '
		function before(a, b) { return length(a) != length(b) ? length(a) < length(b) : a < b }
		before(at, $1) && $2 ~ /^(b|b\..*|cbn?z|tbn?z)$/ && !before(at, $NF) { found = 1 }
		END { exit !found }' ||
		fail "$2: /$3/ at $address is not in a loop (no branch back to it)"
}

check_aarch64() {  # check_aarch64 FILE
	local file=$1
	# The line size: CTR_EL0.DminLine, bits 19:16, log2 of 4-byte words.
	local dminline='^mrs x[0-9]+, ctr_el0$' field='^ubfx [wx][0-9]+, [wx][0-9]+, #16, #4$'
	# Before the device reads: clean to the Point of Coherency, line by line, then complete.
	expect_order "$file" 'vfiokit::iommu::sync_for_device(' "$dminline" "$field" \
		'^dc cvac, x[0-9]+$' '^dsb sy$' '^ret$'
	expect_loop "$file" 'vfiokit::iommu::sync_for_device(' '^dc cvac, x[0-9]+$'
	expect_none "$file" 'vfiokit::iommu::sync_for_device(' '^(dc (civac|ivac|cvau|cvap)|dmb)'
	# After the device wrote: clean+invalidate to the Point of Coherency, then complete.
	expect_order "$file" 'vfiokit::iommu::sync_for_cpu(' "$dminline" "$field" \
		'^dc civac, x[0-9]+$' '^dsb sy$' '^ret$'
	expect_loop "$file" 'vfiokit::iommu::sync_for_cpu(' '^dc civac, x[0-9]+$'
	expect_none "$file" 'vfiokit::iommu::sync_for_cpu(' '^(dc (cvac|ivac|cvau|cvap)|dmb)'
	# The barriers: Outer Shareable, stores only / loads only.
	expect_only "$file" vfiokit_probe_dma_write_barrier 'dmb oshst' 'ret'
	expect_only "$file" vfiokit_probe_dma_read_barrier 'dmb oshld' 'ret'
	# The doorbell: the sync (ending in dsb sy), then dmb oshst, then the 32-bit MMIO store.
	expect_order "$file" vfiokit_probe_ring_doorbell '^bl ' '^dmb oshst$' '^str w[0-9]+, \[x[0-9]+\]$'
	expect_none "$file" vfiokit_probe_ring_doorbell '^dmb (ish|nsh|sy|st)'
	# The completion: the flag, dmb oshld, then the sync and the data.
	expect_order "$file" vfiokit_probe_read_completion '^ldr w' '^dmb oshld$' '^bl ' '^ldrb '
}

check_x86_64() {  # check_x86_64 FILE
	local file=$1
	# DMA through the IOMMU snoops the caches: no flush, no fence, nothing but the return.
	expect_only "$file" 'vfiokit::iommu::sync_for_device(' 'ret'
	expect_only "$file" 'vfiokit::iommu::sync_for_cpu(' 'ret'
	expect_only "$file" vfiokit_probe_dma_write_barrier 'sfence' 'ret'
	expect_only "$file" vfiokit_probe_dma_read_barrier 'lfence' 'ret'
	expect_order "$file" vfiokit_probe_ring_doorbell '^call ' '^sfence$' '^mov %[a-z0-9]+,\(%[a-z0-9]+\)$'
	expect_none "$file" vfiokit_probe_ring_doorbell '^(mfence|clflush|clflushopt|clwb)'
	expect_order "$file" vfiokit_probe_read_completion '^mov \(%' '^lfence$' '^call '
}

# Only dma_sync.cpp's object of the library: the rest is large and not looked at.
if [[ $library == *.a ]]; then
	library=$(realpath "$library")
	(cd "$work" && ar x "$library" dma_sync.cpp.o)
	library=$work/dma_sync.cpp.o
fi
disassemble "$library" "$probe" >"$work/disassembly"
echo "${arch}: $(grep -c '^== ' "$work/disassembly") functions disassembled"
"check_${arch//-/_}" "$work/disassembly"
[[ $failures == 0 ]] || { echo "FAILED: $failures check(s)"; exit 1; }
echo "${arch}: every barrier and cache sync is the instruction docs/dma.md says"

# Each check must be able to fail: one wrong instruction at a time, each must be caught.
if [[ $arch == aarch64 ]]; then
	mutations=('s/dmb oshst/dmb ishst/' 's/dmb oshld/dmb ishld/' 's/dc cvac/dc cvau/'
		's/dc civac/dc ivac/' 's/dsb sy/dmb sy/' 's/#16, #4/#0, #4/' 's/^\([0-9a-f]*\) b\.hi .*/\1 nop/')
else
	mutations=('s/sfence/mfence/' 's/lfence/mfence/' 's/^\([0-9a-f]*\) ret$/\1 clflush (%rdi)\n&/')
fi
for mutation in "${mutations[@]}"; do
	sed "$mutation" "$work/disassembly" >"$work/mutated"
	cmp -s "$work/disassembly" "$work/mutated" && { echo "mutation '$mutation' changed nothing"; exit 1; }
	failures=0
	"check_${arch}" "$work/mutated" >/dev/null
	if [[ $failures == 0 ]]; then
		echo "FAILED: the disassembly with '$mutation' passed the checks"
		exit 1
	fi
done
echo "${arch}: ${#mutations[@]} one-instruction mutations, each caught"
