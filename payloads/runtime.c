#include "vfiokit/payloads/runtime.h"

#define LAPIC_BASE 0xfee00000u
#define LAPIC_TPR 0x80u
#define LAPIC_EOI 0xb0u
#define LAPIC_SVR 0xf0u
#define SPURIOUS_VECTOR 0xffu

struct gdt_entry {
  uint16_t limit_low, base_low;
  uint8_t base_mid, access, granularity, base_high;
} __attribute__((packed));

struct idt_entry {
  uint16_t offset_low, selector;
  uint8_t zero, type_attributes;
  uint16_t offset_high;
} __attribute__((packed));

struct table_pointer {
  uint16_t limit;
  uint32_t base;
} __attribute__((packed));

/* Null, flat 4 GiB code (0x08) and data (0x10), as the VMM's initial segment registers say. */
static const struct gdt_entry gdt[3] __attribute__((aligned(8))) = {
    {0, 0, 0, 0, 0, 0},
    {0xffff, 0, 0, 0x9a, 0xcf, 0},
    {0xffff, 0, 0, 0x92, 0xcf, 0},
};
static struct idt_entry idt[256] __attribute__((aligned(8)));
static volatile uint32_t counts[256];
static interrupt_handler user_handler;

/* Entry at the load address: a stack, the tables, then the payload. The multiboot header (with
 * its address fields, so the flat image needs no ELF) lets QEMU boot the same image with
 * `-kernel NAME.bin`; vfiokit's VMM enters at the first byte and jumps over it. */
__asm__(
    ".section .text.entry, \"ax\"\n"
    ".global _start\n"
    "_start:\n"
    "  jmp 2f\n"
    "  .balign 4\n"
    "multiboot_header:\n"
    "  .long 0x1badb002\n"                 /* magic */
    "  .long 0x00010000\n"                 /* flags: the address fields below are valid */
    "  .long -(0x1badb002 + 0x00010000)\n" /* checksum */
    "  .long multiboot_header\n"           /* header_addr */
    "  .long _start\n"                     /* load_addr: the image's first byte */
    "  .long _edata\n"                     /* load_end_addr */
    "  .long _end\n"                       /* bss_end_addr: the loader zeroes up to here */
    "  .long _start\n"                     /* entry_addr */
    "2:\n"
    /* VFIOKIT_MAILBOX_STARTED before anything else (a port above 0xff needs %dx). */
    "  movw $0x505, %dx\n"
    "  outb %al, %dx\n"
    "  movl $"
    "0x90000"
    ", %esp\n"
    "  call runtime_main\n"
    "1: hlt\n"
    "  jmp 1b\n"
    ".previous\n");

/* 256 stubs, 16 bytes apart: push the vector (5-byte push imm32), jump to the common path. */
__asm__(
    ".text\n"
    ".balign 16\n"
    ".global interrupt_stubs\n"
    "interrupt_stubs:\n"
    ".set vector, 0\n"
    ".rept 256\n"
    "  .balign 16\n"
    "  .byte 0x68\n"
    "  .long vector\n"
    "  jmp interrupt_common\n"
    "  .set vector, vector + 1\n"
    ".endr\n"
    "interrupt_common:\n"
    "  pushal\n"
    "  pushl 44(%esp)\n" /* the interrupted EFLAGS: above the registers, vector, EIP and CS */
    "  pushl 36(%esp)\n" /* the vector the stub pushed (32 above the registers, +4 now) */
    "  call dispatch_interrupt\n"
    "  addl $8, %esp\n"
    "  popal\n"
    "  addl $4, %esp\n"
    "  iret\n");

extern char interrupt_stubs[];

void finish(uint32_t code) {
  outl(VFIOKIT_MAILBOX_DONE, code);
  for (;;) __asm__ volatile("cli; hlt");
}

void set_interrupt_handler(interrupt_handler handler) { user_handler = handler; }

uint32_t prepare_msi_vectors(uint32_t device_id, const uint8_t* vectors, uint32_t count) {
  (void)device_id, (void)vectors, (void)count;
  return 0; /* the LAPIC takes the vector the MSI message names */
}

uint32_t interrupt_count(uint32_t vector) { return vector < 256 ? counts[vector] : 0; }

int wait_for_interrupt_count(uint32_t vector, uint32_t count, uint32_t timeout_ticks) {
  start_timer_tick();
  /* Each round is one hlt: any interrupt, or the LAPIC timer tick, wakes it. */
  for (uint32_t tick = 0; tick < timeout_ticks; ++tick) {
    if (counts[vector] >= count) return 1;
    wait_for_interrupt();
  }
  return counts[vector] >= count;
}

void wait_for_interrupt(void) {
  /* sti takes effect after the next instruction, so an interrupt pending now wakes the hlt. */
  __asm__ volatile("sti; hlt; cli" ::: "memory");
}

#define EFLAGS_IF 0x200u

void dispatch_interrupt(uint32_t vector, uint32_t interrupted_eflags);
void dispatch_interrupt(uint32_t vector, uint32_t interrupted_eflags) {
  if (vector < 32) {
    log_hex("exception", vector);
    finish(VFIOKIT_DONE_EXCEPTION | vector);
  }
  /* An external interrupt is taken only with IF set, and every gate here clears IF: one that
   * interrupted code running with IF clear (this handler, or the cli'd code around hlt) was not
   * an interrupt but an emulator delivering an event twice. QEMU 7.2's TCG SVM (the rig's nested
   * KVM) does that: helper_vmrun delivers an EVENTINJ interrupt and also leaves it in
   * exception_index, which the CPU loop delivers again if it exits first (docs/hil.md, "Rig
   * artefact"). Only an `int n` with IF clear could land here otherwise, and no payload does
   * that. It is reported to the VMM, not counted, and has no EOI (the LAPIC has nothing in
   * service for it). */
  if (!(interrupted_eflags & EFLAGS_IF)) {
    log_hex("runtime: ignored a second delivery, with interrupts off, of vector", vector);
    outl(VFIOKIT_MAILBOX_REPEATED, vector);
    return;
  }
  if (vector == SPURIOUS_VECTOR) return; /* no EOI for the spurious vector */
  counts[vector]++;
  if (vector != RUNTIME_TIMER_VECTOR && user_handler) user_handler(vector);
  mmio_write32(LAPIC_BASE + LAPIC_EOI, 0);
}

static void load_tables(void) {
  const struct table_pointer gdtr = {sizeof gdt - 1, (uint32_t)(uintptr_t)gdt};
  __asm__ volatile(
      "lgdt %0\n"
      "ljmp $0x08, $1f\n"
      "1: movw $0x10, %%ax\n"
      "movw %%ax, %%ds\n movw %%ax, %%es\n movw %%ax, %%ss\n movw %%ax, %%fs\n movw %%ax, %%gs\n" ::
          "m"(gdtr)
      : "eax", "memory");
  for (uint32_t v = 0; v < 256; ++v) {
    const uint32_t stub = (uint32_t)(uintptr_t)interrupt_stubs + 16 * v;
    idt[v].offset_low = (uint16_t)stub;
    idt[v].selector = 0x08;
    idt[v].zero = 0;
    idt[v].type_attributes = 0x8e; /* present, ring 0, 32-bit interrupt gate */
    idt[v].offset_high = (uint16_t)(stub >> 16);
  }
  const struct table_pointer idtr = {sizeof idt - 1, (uint32_t)(uintptr_t)idt};
  __asm__ volatile("lidt %0" ::"m"(idtr) : "memory");
}

#define LAPIC_LVT_TIMER 0x320u
#define LAPIC_TIMER_INITIAL 0x380u
#define LAPIC_TIMER_DIVIDE 0x3e0u

static void enable_lapic(void) {
  mmio_write32(LAPIC_BASE + LAPIC_TPR, 0);                        /* accept every priority */
  mmio_write32(LAPIC_BASE + LAPIC_SVR, 0x100u | SPURIOUS_VECTOR); /* software enable */
}

static int timer_started;

void start_timer_tick(void) {
  if (timer_started) return;
  timer_started = 1;
  mmio_write32(LAPIC_BASE + LAPIC_TIMER_DIVIDE, 0xb);                          /* divide by 1 */
  mmio_write32(LAPIC_BASE + LAPIC_LVT_TIMER, 0x20000u | RUNTIME_TIMER_VECTOR); /* periodic */
  mmio_write32(LAPIC_BASE + LAPIC_TIMER_INITIAL, 10000000u); /* ~10 ms at KVM's 1 GHz APIC clock */
}

void runtime_main(void);
void runtime_main(void) {
  load_tables();
  enable_lapic();
  finish(payload_main());
}
