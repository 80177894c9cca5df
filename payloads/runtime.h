/* The freestanding runtime every vfiokit guest payload links with. No libc. The payload provides
 * payload_main(); its return value is reported on VFIOKIT_MAILBOX_DONE.
 *   x86 (runtime.c): 32-bit protected mode, a flat GDT, an IDT whose 256 gates all reach one
 *     dispatcher, the local APIC, and the port-I/O mailbox.
 *   arm64 (runtime_arm64.c): EL1 with the MMU off, an exception vector table, the GICv3 (its
 *     distributor, this CPU's redistributor with LPIs, the CPU interface) and its ITS, and the
 *     mailbox over MMIO (mailbox.h). Only irq-probe is built for it. */
#ifndef VFIOKIT_PAYLOADS_RUNTIME_H
#define VFIOKIT_PAYLOADS_RUNTIME_H

#include <stdint.h>

#include "vfiokit/payloads/mailbox.h"

#if defined(__aarch64__)
/* Device memory with the MMU off: every access one plain load or store, which gives KVM the
 * syndrome (ISV) it needs to emulate it; the compiler might otherwise pick a pair or writeback
 * form, which KVM cannot. */
static inline void mmio_write8(uintptr_t address, uint8_t value) {
  __asm__ volatile("strb %w0, [%1]" ::"r"(value), "r"(address) : "memory");
}
static inline void mmio_write32(uintptr_t address, uint32_t value) {
  __asm__ volatile("str %w0, [%1]" ::"r"(value), "r"(address) : "memory");
}
static inline void mmio_write64(uintptr_t address, uint64_t value) {
  __asm__ volatile("str %x0, [%1]" ::"r"(value), "r"(address) : "memory");
}
static inline uint32_t mmio_read32(uintptr_t address) {
  uint32_t value;
  __asm__ volatile("ldr %w0, [%1]" : "=r"(value) : "r"(address) : "memory");
  return value;
}
static inline uint64_t mmio_read64(uintptr_t address) {
  uint64_t value;
  __asm__ volatile("ldr %x0, [%1]" : "=r"(value) : "r"(address) : "memory");
  return value;
}
static inline uintptr_t mailbox_address(uint16_t port) {
  return VFIOKIT_MAILBOX_MMIO_BASE + (uintptr_t)(port - VFIOKIT_MAILBOX_FIRST) * 4u;
}
static inline void outb(uint16_t port, uint8_t value) { mmio_write8(mailbox_address(port), value); }
static inline void outl(uint16_t port, uint32_t value) {
  mmio_write32(mailbox_address(port), value);
}
#else
static inline void outb(uint16_t port, uint8_t value) {
  __asm__ volatile("outb %0, %1" ::"a"(value), "Nd"(port));
}
static inline void outl(uint16_t port, uint32_t value) {
  __asm__ volatile("outl %0, %1" ::"a"(value), "Nd"(port));
}
static inline uint32_t inl(uint16_t port) {
  uint32_t value;
  __asm__ volatile("inl %1, %0" : "=a"(value) : "Nd"(port));
  return value;
}
static inline uint32_t mmio_read32(uintptr_t address) { return *(volatile uint32_t*)address; }
static inline void mmio_write32(uintptr_t address, uint32_t value) {
  *(volatile uint32_t*)address = value;
}
#endif

/* Makes a device's MSI event i arrive as vectors[i] (0 <= i < count). x86: nothing to do, the
 * VMM's MSI message names the vector. arm64: the ITS maps (device_id, i) to LPI 8192 +
 * vectors[i] on this CPU. Returns 0, or a VFIOKIT_DONE_* code when the interrupt controller
 * refused. */
uint32_t prepare_msi_vectors(uint32_t device_id, const uint8_t* vectors, uint32_t count);

/* Writes a log line through VFIOKIT_MAILBOX_LOG. */
void log_text(const char* text);
void log_hex(const char* label, uint32_t value); /* "label 0x1234\n" */
/* Reports `code` on VFIOKIT_MAILBOX_DONE and stops the CPU for good. */
__attribute__((noreturn)) void finish(uint32_t code);

/* Called for every interrupt from vector 32 up (after the runtime's own bookkeeping, before
 * the EOI). Exceptions (0..31) end the payload with VFIOKIT_DONE_EXCEPTION | vector. */
typedef void (*interrupt_handler)(uint32_t vector);
void set_interrupt_handler(interrupt_handler handler);
/* How many times `vector` has arrived. */
uint32_t interrupt_count(uint32_t vector);

/* Halts until the next interrupt, with no window in which one could be missed (x86: sti; hlt;
 * arm64: wfi with IRQs masked, which a pending interrupt still wakes, then unmask). */
void wait_for_interrupt(void);
#if !defined(__aarch64__) /* the arm64 runtime has no timer tick yet */
/* Starts the LAPIC's periodic timer (vector
 * 0x20, about every 10 ms), so that waits for a device can time out instead of halting forever. Off
 * until a payload asks: a payload that counts interrupts (irq-probe) sees only the ones it is sent.
 */
void start_timer_tick(void);
/* Halts until `vector` has arrived `count` times in all, or `timeout_ticks` wake-ups passed.
 * Starts the timer tick. Returns 1 when the count was reached. */
int wait_for_interrupt_count(uint32_t vector, uint32_t count, uint32_t timeout_ticks);
#endif

/* The runtime's timer vector; payloads choose their device vectors from 0x30 up. */
#define RUNTIME_TIMER_VECTOR 0x20u

void* memset(void* destination, int value, uint32_t size);
void* memcpy(void* destination, const void* source, uint32_t size);

/* Provided by the payload. */
uint32_t payload_main(void);

#endif
