/* The arm64 payload runtime (runtime.h): EL1 with the MMU off, the exception vectors, the
 * GICv3 and its ITS at kvm/gic.h's addresses, and the MMIO mailbox. The VMM enters at the load
 * address in EL1h with DAIF masked and SP_EL1 at VFIOKIT_STACK_TOP (kvm::enter_aarch64_el1).
 * Register offsets and command encodings: the Arm GICv3/v4 architecture specification (IHI 0069),
 * as KVM's vGICv3 and ITS implement them.
 *
 * Memory the ITS reads (the command queue, the LPI property table) is written here with the MMU
 * off, so as Device memory, straight to RAM, while KVM reads it through the host's cacheable
 * mapping: on a host without FEAT_S2FWB a line of it may still sit in the host's cache from an
 * earlier read, stale. So each write is followed by a clean and invalidate to the point of
 * coherency (dc civac) of its lines, then dsb sy, before the ITS is told (the Arm ARM's rule for
 * data written with the MMU off that a cacheable observer reads next). TCG keeps caches
 * coherent, so the rig cannot show this; real hosts need it. */
#include "vfiokit/payloads/runtime.h"

/* The GIC's frames (kvm/gic.h; QEMU virt's layout). */
#define GICD_BASE 0x08000000u
#define GITS_BASE 0x08080000u
#define GICR_BASE 0x080a0000u /* vCPU 0's RD_base */

#define GICD_CTLR 0x0000u
#define GICD_CTLR_ENABLE_GROUP1 0x2u /* KVM: the one bit that gates every SPI and LPI */
#define GICR_CTLR 0x0000u
#define GICR_CTLR_ENABLE_LPIS 0x1u
#define GICR_WAKER 0x0014u
#define GICR_PROPBASER 0x0070u
#define GICR_PENDBASER 0x0078u
#define GICR_PENDBASER_PTZ (1ull << 62) /* the pending table is zero: nothing to scan */
#define GITS_CTLR 0x0000u
#define GITS_CTLR_ENABLED 0x1u
#define GITS_CBASER 0x0080u
#define GITS_CWRITER 0x0088u
#define GITS_CREADR 0x0090u
#define GITS_BASER(n) (0x0100u + 8u * (n))
#define GITS_VALID (1ull << 63)

/* The tables the GIC reads from guest RAM, zero at start (the VMM's RAM is). KVM requires 64 KiB
 * alignment of the ITS's tables and its command queue; the ITT needs 256 bytes. */
#define LPI_ID_BITS 16u                /* LPIs 8192..65535 */
#define LPI_PROPERTIES 0x400000u       /* a byte per LPI: priority | enable */
#define LPI_PENDING 0x410000u          /* a bit per INTID: 8 KiB */
#define ITS_DEVICE_TABLE 0x420000u     /* the BASER of Type 1: one 64 KiB page */
#define ITS_COLLECTION_TABLE 0x430000u /* the BASER of Type 4: one 64 KiB page */
#define ITS_COMMAND_QUEUE 0x440000u    /* 16 pages of 4 KiB: 2048 commands */
#define ITS_COMMAND_QUEUE_PAGES 16u
#define ITS_ITT 0x450000u    /* the one device's interrupt translation table */
#define ITS_EVENT_ID_BITS 8u /* events 0..255: 2 KiB of ITT, up to VFIOKIT_ARM64_RUNTIME_RAM */
/* Priority 0xa0 (bits 7:2; below PMR's 0xff), bit 1 RES1, enabled (bit 0). */
#define LPI_PRIORITY_ENABLED 0xa3u
#define GITS_BASER_TYPE(value) (((value) >> 56) & 0x7u)
#define GITS_BASER_TYPE_DEVICES 1u
#define GITS_BASER_TYPE_COLLECTIONS 4u
#define GITS_BASER_PAGE_64K (2ull << 8)
#define GITS_CREADR_OFFSET 0xfffe0u /* bits 19:5; bit 0 is Stalled */

#define FIRST_LPI 8192u
#define SPURIOUS_INTID 1023u

static volatile uint32_t counts[256];
static interrupt_handler user_handler;
static uint32_t command_offset;

/* Entry: the mailbox's STARTED, the vector table, then the payload. Byte 8 holds the image magic
 * the VMM checks (mailbox.h). */
__asm__(
    ".section .text.entry, \"ax\"\n"
    ".global _start\n"
    "_start:\n"
    "  b 1f\n"
    "  .balign 8\n"
    "  .quad 0x00003436414b4656\n" /* VFIOKIT_ARM64_IMAGE_MAGIC at byte 8 */
    "1:\n"
    "  ldr x0, =0x09000014\n" /* VFIOKIT_MAILBOX_STARTED */
    "  strb wzr, [x0]\n"
    "  adr x0, exception_vectors\n"
    "  msr vbar_el1, x0\n"
    "  isb\n"
    "  bl runtime_main\n"
    "2: wfi\n"
    "  b 2b\n"
    ".ltorg\n"
    ".previous\n");

/* 16 entries of 0x80 bytes. An IRQ at EL1 on SP_EL1 (offset 0x280) saves the caller-saved
 * registers, dispatches and returns; everything else ends the payload with its syndrome. */
__asm__(
    ".macro other_exception kind\n"
    "  .balign 0x80\n"
    "  mov x0, #\\kind\n"
    "  b exception_taken\n"
    ".endm\n"
    ".text\n"
    ".balign 0x800\n"
    ".global exception_vectors\n"
    "exception_vectors:\n"
    "  other_exception 0\n" /* current EL with SP_EL0: sync, IRQ, FIQ, SError */
    "  other_exception 1\n"
    "  other_exception 2\n"
    "  other_exception 3\n"
    "  other_exception 4\n" /* current EL with SP_ELx: sync */
    "  .balign 0x80\n"      /* current EL with SP_ELx: IRQ */
    "  stp x0, x1, [sp, #-176]!\n"
    "  stp x2, x3, [sp, #16]\n"
    "  stp x4, x5, [sp, #32]\n"
    "  stp x6, x7, [sp, #48]\n"
    "  stp x8, x9, [sp, #64]\n"
    "  stp x10, x11, [sp, #80]\n"
    "  stp x12, x13, [sp, #96]\n"
    "  stp x14, x15, [sp, #112]\n"
    "  stp x16, x17, [sp, #128]\n"
    "  stp x18, x29, [sp, #144]\n"
    "  str x30, [sp, #160]\n"
    "  bl dispatch_irq\n"
    "  b irq_return\n"
    "  other_exception 6\n" /* current EL with SP_ELx: FIQ, SError */
    "  other_exception 7\n"
    "  other_exception 8\n" /* lower EL, AArch64 */
    "  other_exception 9\n"
    "  other_exception 10\n"
    "  other_exception 11\n"
    "  other_exception 12\n" /* lower EL, AArch32 */
    "  other_exception 13\n"
    "  other_exception 14\n"
    "  other_exception 15\n"
    "irq_return:\n"
    "  ldp x2, x3, [sp, #16]\n"
    "  ldp x4, x5, [sp, #32]\n"
    "  ldp x6, x7, [sp, #48]\n"
    "  ldp x8, x9, [sp, #64]\n"
    "  ldp x10, x11, [sp, #80]\n"
    "  ldp x12, x13, [sp, #96]\n"
    "  ldp x14, x15, [sp, #112]\n"
    "  ldp x16, x17, [sp, #128]\n"
    "  ldp x18, x29, [sp, #144]\n"
    "  ldr x30, [sp, #160]\n"
    "  ldp x0, x1, [sp], #176\n"
    "  eret\n"
    "exception_taken:\n"
    "  b exception\n");

static inline uint64_t read_iar1(void) {
  uint64_t value;
  __asm__ volatile("mrs %0, s3_0_c12_c12_0" : "=r"(value)); /* ICC_IAR1_EL1 */
  return value;
}

static inline void write_eoir1(uint64_t intid) {
  __asm__ volatile("msr s3_0_c12_c12_1, %0" ::"r"(intid)); /* ICC_EOIR1_EL1 */
}

void exception(uint64_t kind);
void exception(uint64_t kind) {
  uint64_t syndrome;
  __asm__ volatile("mrs %0, esr_el1" : "=r"(syndrome));
  log_hex("exception entry", (uint32_t)kind);
  outl(VFIOKIT_MAILBOX_DETAIL, (uint32_t)syndrome);
  finish(VFIOKIT_DONE_EXCEPTION | (uint32_t)((syndrome >> 26) & 0x3f)); /* ESR_EL1.EC */
}

void dispatch_irq(void);
void dispatch_irq(void) {
  /* Acknowledging makes the interrupt active; EOI (EOImode 0) drops the priority and
   * deactivates it. INTIDs 1020..1023 are special: nothing to acknowledge. */
  const uint64_t intid = read_iar1() & 0xffffffu;
  if (intid >= 1020 && intid <= SPURIOUS_INTID) return;
  if (intid >= FIRST_LPI && intid - FIRST_LPI < 256) {
    const uint32_t vector = (uint32_t)(intid - FIRST_LPI);
    counts[vector]++;
    if (user_handler) user_handler(vector);
  } else {
    log_hex("unexpected interrupt", (uint32_t)intid);
  }
  write_eoir1(intid);
}

void finish(uint32_t code) {
  outl(VFIOKIT_MAILBOX_DONE, code);
  for (;;) __asm__ volatile("msr daifset, #0xf\n wfi");
}

void set_interrupt_handler(interrupt_handler handler) { user_handler = handler; }

uint32_t interrupt_count(uint32_t vector) { return vector < 256 ? counts[vector] : 0; }

void wait_for_interrupt(void) {
  /* With IRQs masked a pending interrupt still ends wfi; unmasking then takes it, and masking
   * again closes the window before the caller looks at what it changed. */
  __asm__ volatile("wfi\n msr daifclr, #2\n isb\n msr daifset, #2" ::: "memory");
}

/* Cleans and invalidates [address, address + size) to the point of coherency, then waits for it
 * (see the top of this file for why). The line size is CTR_EL0.DminLine's. */
static void clean_invalidate(uintptr_t address, uint32_t size) {
  uint64_t ctr;
  __asm__ volatile("mrs %0, ctr_el0" : "=r"(ctr));
  const uintptr_t line = (uintptr_t)4 << ((ctr >> 16) & 0xf);
  for (uintptr_t at = address & ~(line - 1); at < address + size; at += line) {
    __asm__ volatile("dc civac, %0" ::"r"(at) : "memory");
  }
  __asm__ volatile("dsb sy" ::: "memory");
}

/* One ITS command (4 doublewords) at the queue's write offset; GITS_CWRITER then tells the ITS,
 * which (KVM's) consumes everything up to it before the write returns. Waits for GITS_CREADR all
 * the same, as on hardware. */
static uint32_t its_command(uint64_t dw0, uint64_t dw1, uint64_t dw2) {
  const uintptr_t address = ITS_COMMAND_QUEUE + command_offset;
  volatile uint64_t* slot = (volatile uint64_t*)address;
  slot[0] = dw0;
  slot[1] = dw1;
  slot[2] = dw2;
  slot[3] = 0;
  clean_invalidate(address, 32); /* in memory, and no stale copy, before the doorbell */
  command_offset += 32;
  mmio_write64(GITS_BASE + GITS_CWRITER, command_offset);
  for (uint32_t tries = 0; tries < 1000000; ++tries) {
    if ((mmio_read64(GITS_BASE + GITS_CREADR) & GITS_CREADR_OFFSET) == command_offset) return 0;
  }
  outl(VFIOKIT_MAILBOX_DETAIL, (uint32_t)mmio_read64(GITS_BASE + GITS_CREADR));
  return VFIOKIT_DONE_ITS_STUCK;
}

#define ITS_MAPD 0x08u
#define ITS_MAPC 0x09u
#define ITS_MAPTI 0x0au
#define ITS_INVALL 0x0du
#define ITS_SYNC 0x05u
#define COLLECTION \
  0u /* collection 0, on vCPU 0 (KVM's ITS: GITS_TYPER.PTA = 0, so a vCPU number) */

uint32_t prepare_msi_vectors(uint32_t device_id, const uint8_t* vectors, uint32_t count) {
  if (count > (1u << ITS_EVENT_ID_BITS)) return VFIOKIT_DONE_BAD_PARAMETERS;
  uint32_t refused = 0;
  uint8_t* properties = (uint8_t*)(uintptr_t)LPI_PROPERTIES;
  for (uint32_t i = 0; i < count; ++i) properties[vectors[i]] = LPI_PRIORITY_ENABLED;
  clean_invalidate(LPI_PROPERTIES, 256); /* KVM reads the property byte at MAPTI */
  /* The collection on this CPU, the device with its ITT, then event i -> LPI 8192 + vectors[i]. */
  if ((refused = its_command(ITS_MAPC, 0, GITS_VALID | COLLECTION))) return refused;
  if ((refused = its_command(ITS_MAPD | (uint64_t)device_id << 32, ITS_EVENT_ID_BITS - 1,
                             GITS_VALID | ITS_ITT))) {
    return refused;
  }
  for (uint32_t i = 0; i < count; ++i) {
    const uint64_t lpi = FIRST_LPI + vectors[i];
    if ((refused = its_command(ITS_MAPTI | (uint64_t)device_id << 32, i | lpi << 32, COLLECTION))) {
      return refused;
    }
  }
  if ((refused = its_command(ITS_INVALL, 0, COLLECTION))) return refused;
  return its_command(ITS_SYNC, 0, 0);
}

/* Points the ITS's BASER of `type` at `table` (one 64 KiB page); 0, or the DONE code when the ITS
 * has no such table. KVM's ITS has the device table in BASER0 and the collections in BASER1,
 * with Type and Entry_Size read-only; a hardware-like ITS is looked through all eight. */
static uint32_t set_its_table(uint32_t type, uint64_t table) {
  for (uint32_t n = 0; n < 8; ++n) {
    if (GITS_BASER_TYPE(mmio_read64(GITS_BASE + GITS_BASER(n))) != type) continue;
    mmio_write64(GITS_BASE + GITS_BASER(n), GITS_VALID | GITS_BASER_PAGE_64K | table);
    return 0;
  }
  outl(VFIOKIT_MAILBOX_DETAIL, type);
  return VFIOKIT_DONE_ITS_STUCK;
}

static uint32_t enable_gic(void) {
  mmio_write32(GICD_BASE + GICD_CTLR, GICD_CTLR_ENABLE_GROUP1);
  mmio_write32(GICR_BASE + GICR_WAKER, 0); /* awake (KVM: always) */
  /* LPIs: the property and pending tables, then enable (both registers are fixed after). */
  mmio_write64(GICR_BASE + GICR_PROPBASER, LPI_PROPERTIES | (LPI_ID_BITS - 1));
  mmio_write64(GICR_BASE + GICR_PENDBASER, LPI_PENDING | GICR_PENDBASER_PTZ);
  mmio_write32(GICR_BASE + GICR_CTLR, GICR_CTLR_ENABLE_LPIS);
  /* The ITS: its two tables, the command queue, then enable; KVM refuses to enable it before all
   * three are valid. */
  uint32_t refused = set_its_table(GITS_BASER_TYPE_DEVICES, ITS_DEVICE_TABLE);
  if (!refused) refused = set_its_table(GITS_BASER_TYPE_COLLECTIONS, ITS_COLLECTION_TABLE);
  if (refused) return refused;
  mmio_write64(GITS_BASE + GITS_CBASER,
               GITS_VALID | ITS_COMMAND_QUEUE | (ITS_COMMAND_QUEUE_PAGES - 1));
  mmio_write64(GITS_BASE + GITS_CWRITER, 0);
  mmio_write32(GITS_BASE + GITS_CTLR, GITS_CTLR_ENABLED);
  /* The CPU interface (system registers; SRE is fixed on under a vGICv3): every priority
   * passes, Group 1 on. */
  __asm__ volatile(
      "msr s3_0_c4_c6_0, %0\n"    /* ICC_PMR_EL1 */
      "msr s3_0_c12_c12_3, xzr\n" /* ICC_BPR1_EL1 */
      "msr s3_0_c12_c12_7, %1\n"  /* ICC_IGRPEN1_EL1 */
      "isb" ::"r"(0xffull),
      "r"(1ull));
  return 0;
}

void runtime_main(void);
void runtime_main(void) {
  const uint32_t refused = enable_gic();
  finish(refused ? refused : payload_main());
}
