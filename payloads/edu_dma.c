/* edu-dma: finds QEMU's edu device on the guest's PCI bus, enables its MSI, has it copy a
 * 4 KiB pattern from guest RAM into its buffer and back out to another place in guest RAM
 * (each transfer ending with an MSI), and compares. The DMA addresses are guest-physical: the
 * VMM maps guest RAM in the IOMMU at IOVA = guest-physical address. */
#include "vfiokit/payloads/pci.h"
#include "vfiokit/payloads/runtime.h"

#define EDU_VENDOR 0x1234u
#define EDU_DEVICE 0x11e8u
#define EDU_IDENTIFICATION 0x010000edu
#define EDU_BUFFER 0x40000u
#define EDU_DMA_START 0x1u
#define EDU_DMA_FROM_DEVICE 0x2u
#define EDU_DMA_IRQ 0x4u
#define EDU_DMA_INTERRUPT 0x100u
#define EDU_VECTOR 0x40u
#define SOURCE 0x200000u
#define DESTINATION 0x300000u
#define HALF 2048u /* QEMU 7.2's edu aborts on a transfer that ends at its buffer's last byte */

static uintptr_t bar;

static void write64(uint32_t offset, uint64_t value) {
  mmio_write32(bar + offset, (uint32_t)value);
  mmio_write32(bar + offset + 4, (uint32_t)(value >> 32));
}

static int transfer(uint32_t source, uint32_t destination, uint32_t command, uint32_t arrival) {
  write64(0x80, source);
  write64(0x88, destination);
  write64(0x90, HALF);
  __asm__ volatile("sfence" ::: "memory"); /* the pattern is in memory before the device goes */
  write64(0x98, EDU_DMA_START | EDU_DMA_IRQ | command);
  if (!wait_for_interrupt_count(EDU_VECTOR, arrival, 500)) return 0;
  mmio_write32(bar + 0x64, EDU_DMA_INTERRUPT); /* acknowledge */
  __asm__ volatile("lfence" ::: "memory");
  return 1;
}

uint32_t payload_main(void) {
  start_timer_tick(); /* every wait below can time out */
  uint32_t bdf;
  if (!pci_find_device(EDU_VENDOR, EDU_DEVICE, &bdf)) return pci_not_found(VFIOKIT_DONE_NOT_EDU);
  pci_log_function("edu-dma: edu at guest", bdf);
  bar = (uintptr_t)pci_bar_address(bdf, 0);
  log_hex("edu-dma: BAR0 at", (uint32_t)bar);
  pci_enable(bdf);
  if (mmio_read32(bar) != EDU_IDENTIFICATION) {
    log_hex("edu-dma: identification reads", mmio_read32(bar));
    return VFIOKIT_DONE_MISMATCH;
  }
  const uint32_t msi = pci_find_capability(bdf, PCI_CAP_MSI);
  if (!msi) return VFIOKIT_DONE_NO_CAPABILITY;
  const int is64 = (pci_read16(bdf, msi + 2) & 0x80) != 0;
  pci_write32(bdf, msi + 4, 0xfee00000u); /* to APIC 0 */
  if (is64) pci_write32(bdf, msi + 8, 0);
  pci_write16(bdf, msi + (is64 ? 12 : 8), EDU_VECTOR);
  pci_write16(bdf, msi + 2, (uint16_t)(pci_read16(bdf, msi + 2) | 1)); /* MSI enable */
  log_text("edu-dma: MSI enabled, vector 0x40\n");

  uint8_t* source = (uint8_t*)SOURCE;
  uint8_t* destination = (uint8_t*)DESTINATION;
  for (uint32_t i = 0; i < 4096; ++i) {
    source[i] = (uint8_t)(i * 7 + 13);
    destination[i] = 0;
  }
  uint32_t arrival = 0;
  for (uint32_t half = 0; half < 4096; half += HALF) {
    if (!transfer(SOURCE + half, EDU_BUFFER, 0, ++arrival)) return VFIOKIT_DONE_TIMEOUT;
    if (!transfer(EDU_BUFFER, DESTINATION + half, EDU_DMA_FROM_DEVICE, ++arrival)) {
      return VFIOKIT_DONE_TIMEOUT;
    }
  }
  for (uint32_t i = 0; i < 4096; ++i) {
    if (destination[i] != source[i]) {
      log_hex("edu-dma: first difference at byte", i);
      return VFIOKIT_DONE_MISMATCH;
    }
  }
  outl(VFIOKIT_MAILBOX_VALUE, arrival); /* how many MSIs the DMAs raised */
  log_text("edu-dma: 4 KiB went into edu and back by DMA, identical; 4 MSIs taken\n");
  return VFIOKIT_DONE_PASSED;
}
