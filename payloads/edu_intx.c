/* edu-intx: proves INTx through the VMM: finds QEMU's edu with MSI off (or hidden by
 * `launch --interrupts intx`), reads its Interrupt Pin and Line, points the IOAPIC input the
 * Line names at a vector (level-triggered, active low, as for any PCI line), and has edu raise
 * its interrupt ROUNDS times. Each must arrive exactly once: the handler acknowledges edu (the
 * line goes down) and the runtime's EOI reaches the IOAPIC, whose resample unmasks the line on
 * the host; a line left asserted would arrive again, one never unmasked would not arrive at the
 * next round. Then with Interrupt Disable set in the command register a raised interrupt must
 * not arrive (the device still shows Interrupt Status), and must arrive once the bit is clear.
 * Reports the Line (the GSI) and the interrupts taken as VALUEs. */
#include "vfiokit/payloads/pci.h"
#include "vfiokit/payloads/runtime.h"

#define EDU_VENDOR 0x1234u
#define EDU_DEVICE 0x11e8u
#define EDU_IDENTIFICATION 0x010000edu
#define EDU_INTR_STATUS 0x24u
#define EDU_INTR_RAISE 0x60u
#define EDU_INTR_ACK 0x64u
#define EDU_VECTOR 0x50u
#define ROUNDS 4u
#define DISABLED_STATUS 0x80u
#define PCI_COMMAND_INTX_DISABLE 0x400u
#define PCI_STATUS_INTERRUPT 0x08u
#define IOAPIC_BASE 0xfec00000u
#define IOAPIC_PINS 24u

static uintptr_t bar;
static volatile uint32_t taken;
static volatile uint32_t status_seen[ROUNDS + 2];

static void on_interrupt(uint32_t vector) {
  if (vector != EDU_VECTOR) return;
  const uint32_t status = mmio_read32(bar + EDU_INTR_STATUS);
  if (taken < ROUNDS + 2) status_seen[taken] = status;
  taken++;
  mmio_write32(bar + EDU_INTR_ACK, status); /* edu lowers INTx once no status bit is left */
}

static void ioapic_write(uint32_t reg, uint32_t value) {
  mmio_write32(IOAPIC_BASE, reg);          /* IOREGSEL */
  mmio_write32(IOAPIC_BASE + 0x10, value); /* IOWIN */
}

static int interrupt_pending_in_status(uint32_t bdf) {
  return (pci_read16(bdf, 6) & PCI_STATUS_INTERRUPT) != 0;
}

/* Waits `ticks` timer ticks; returns 1 if edu's vector arrived more than `expected` times. */
static int more_than(uint32_t expected, uint32_t ticks) {
  return wait_for_interrupt_count(EDU_VECTOR, expected + 1, ticks);
}

uint32_t payload_main(void) {
  start_timer_tick(); /* every wait below can time out */
  uint32_t bdf;
  if (!pci_find_device(EDU_VENDOR, EDU_DEVICE, &bdf)) return pci_not_found(VFIOKIT_DONE_NOT_EDU);
  pci_log_function("edu-intx: edu at guest", bdf);
  bar = (uintptr_t)pci_bar_address(bdf, 0);
  pci_enable(bdf);
  if (mmio_read32(bar) != EDU_IDENTIFICATION) {
    log_hex("edu-intx: identification reads", mmio_read32(bar));
    return VFIOKIT_DONE_MISMATCH;
  }
  const uint32_t msi = pci_find_capability(bdf, PCI_CAP_MSI);
  if (!msi) {
    log_text("edu-intx: MSI capability hidden\n");
  } else if (pci_read16(bdf, msi + 2) & 1u) {
    log_text("edu-intx: MSI is on: edu would not use its pin\n");
    return VFIOKIT_DONE_BAD_PARAMETERS;
  } else {
    log_text("edu-intx: MSI capability present, left off\n");
  }
  const uint8_t pin = pci_read8(bdf, 0x3d);
  const uint8_t line = pci_read8(bdf, 0x3c);
  log_hex("edu-intx: Interrupt Pin", pin);
  log_hex("edu-intx: Interrupt Line", line);
  if (pin == 0 || line >= IOAPIC_PINS) return VFIOKIT_DONE_NO_INTX;
  set_interrupt_handler(on_interrupt);
  /* Whatever an earlier guest left raised goes first: the line starts low. */
  mmio_write32(bar + EDU_INTR_ACK, mmio_read32(bar + EDU_INTR_STATUS));
  ioapic_write(0x11u + 2u * line, 0); /* destination: APIC ID 0 */
  /* Fixed delivery, physical destination, active low, level-triggered, unmasked. */
  ioapic_write(0x10u + 2u * line, EDU_VECTOR | 1u << 13 | 1u << 15);

  if (more_than(0, 5)) {
    log_text("edu-intx: an interrupt arrived before edu raised one\n");
    return VFIOKIT_DONE_MISMATCH;
  }
  for (uint32_t round = 1; round <= ROUNDS; ++round) {
    mmio_write32(bar + EDU_INTR_RAISE, round);
    if (!wait_for_interrupt_count(EDU_VECTOR, round, 300)) {
      log_hex("edu-intx: no interrupt in round", round);
      return VFIOKIT_DONE_TIMEOUT;
    }
    if (status_seen[round - 1] != round) {
      log_hex("edu-intx: the handler found status", status_seen[round - 1]);
      return VFIOKIT_DONE_MISMATCH;
    }
    /* Acknowledged and ended: the line is down, so it must not come again. */
    if (more_than(round, 5)) {
      log_hex("edu-intx: the interrupt came again after ACK and EOI in round", round);
      return VFIOKIT_DONE_MISMATCH;
    }
    if (mmio_read32(bar + EDU_INTR_STATUS) != 0 || interrupt_pending_in_status(bdf)) {
      log_hex("edu-intx: the line is still up after ACK in round", round);
      return VFIOKIT_DONE_DEVICE_ERROR;
    }
  }
  log_hex("edu-intx: each raise arrived once, rounds", ROUNDS);

  const uint16_t command = pci_read16(bdf, 4);
  pci_write16(bdf, 4, (uint16_t)(command | PCI_COMMAND_INTX_DISABLE));
  mmio_write32(bar + EDU_INTR_RAISE, DISABLED_STATUS);
  if (more_than(ROUNDS, 20)) {
    log_text("edu-intx: an interrupt arrived with Interrupt Disable set\n");
    return VFIOKIT_DONE_MISMATCH;
  }
  if (!interrupt_pending_in_status(bdf)) {
    log_text("edu-intx: edu does not show its raised interrupt in the status register\n");
    return VFIOKIT_DONE_DEVICE_ERROR;
  }
  pci_write16(bdf, 4, (uint16_t)(command & ~PCI_COMMAND_INTX_DISABLE));
  if (!wait_for_interrupt_count(EDU_VECTOR, ROUNDS + 1, 300)) {
    log_text("edu-intx: the interrupt held back by Interrupt Disable never came\n");
    return VFIOKIT_DONE_TIMEOUT;
  }
  if (status_seen[ROUNDS] != DISABLED_STATUS || more_than(ROUNDS + 1, 5)) {
    log_text("edu-intx: the held-back interrupt came wrong or twice\n");
    return VFIOKIT_DONE_MISMATCH;
  }
  log_text("edu-intx: Interrupt Disable held the interrupt back; clearing it delivered it once\n");
  outl(VFIOKIT_MAILBOX_VALUE, line);  /* the GSI */
  outl(VFIOKIT_MAILBOX_VALUE, taken); /* ROUNDS + 1 */
  return VFIOKIT_DONE_PASSED;
}
