/* The freestanding runtime every vfiokit guest payload links with: 32-bit protected mode, a flat
 * GDT, an IDT whose 256 gates all reach one dispatcher, the local APIC, and the port-I/O
 * mailbox. No libc. The payload provides payload_main(); its return value is reported on
 * VFIOKIT_MAILBOX_DONE. */
#ifndef VFIOKIT_PAYLOADS_RUNTIME_H
#define VFIOKIT_PAYLOADS_RUNTIME_H

#include <stdint.h>

#include "vfiokit/payloads/mailbox.h"

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

/* Halts until the next interrupt, with no window in which one could be missed (sti; hlt). */
void wait_for_interrupt(void);
/* Starts the LAPIC's periodic timer (vector 0x20, about every 10 ms), so that waits for a
 * device can time out instead of halting forever. Off until a payload asks: a payload that
 * counts interrupts (irq-probe) sees only the ones it is sent. */
void start_timer_tick(void);
/* Halts until `vector` has arrived `count` times in all, or `timeout_ticks` wake-ups passed.
 * Starts the timer tick. Returns 1 when the count was reached. */
int wait_for_interrupt_count(uint32_t vector, uint32_t count, uint32_t timeout_ticks);

/* The runtime's timer vector; payloads choose their device vectors from 0x30 up. */
#define RUNTIME_TIMER_VECTOR 0x20u

void* memset(void* destination, int value, uint32_t size);
void* memcpy(void* destination, const void* source, uint32_t size);

/* Provided by the payload. */
uint32_t payload_main(void);

#endif
