/* dirty-pages: a known set of guest pages written by the vCPU and another written by the device,
 * for `vfiokit launch --dirty-log`. The CPU writes a pattern into each page of
 * VFIOKIT_DIRTY_CPU_PAGES (in VFIOKIT_DIRTY_CPU_WINDOW); then edu copies the first of them by DMA,
 * through its buffer, into each page of VFIOKIT_DIRTY_DEVICE_PAGES (in
 * VFIOKIT_DIRTY_DEVICE_WINDOW). The CPU never touches the device's pages, not even to read them:
 * x86 KVM maps a page writable on its first access, a read too, and logs it dirty then. So each
 * copy is checked by having edu copy it back into the CPU's last page, which the CPU compares and
 * clears (a page it writes anyway). DMA completion is polled (edu clears its command's start
 * bit), with the timer tick bounding every wait. */
#include "vfiokit/payloads/pci.h"
#include "vfiokit/payloads/runtime.h"

#define EDU_VENDOR 0x1234u
#define EDU_DEVICE 0x11e8u
#define EDU_IDENTIFICATION 0x010000edu
#define EDU_BUFFER 0x40000u
#define EDU_DMA_START 0x1u
#define EDU_DMA_FROM_DEVICE 0x2u
#define PAGE 4096u
#define HALF 2048u /* QEMU 7.2's edu aborts on a transfer that ends at its buffer's last byte */
#define TIMEOUT_TICKS 500u

static uintptr_t bar;

static void write64(uint32_t offset, uint64_t value) {
  mmio_write32(bar + offset, (uint32_t)value);
  mmio_write32(bar + offset + 4, (uint32_t)(value >> 32));
}

static int transfer(uint32_t source, uint32_t destination, uint32_t command) {
  write64(0x80, source);
  write64(0x88, destination);
  write64(0x90, HALF);
  __asm__ volatile("sfence" ::: "memory"); /* the pattern is in memory before the device goes */
  write64(0x98, EDU_DMA_START | command);
  for (uint32_t ticks = 0; mmio_read32(bar + 0x98) & EDU_DMA_START; ++ticks) {
    if (ticks == TIMEOUT_TICKS) return 0;
    wait_for_interrupt();
  }
  __asm__ volatile("lfence" ::: "memory");
  return 1;
}

static uint8_t pattern(uint32_t page, uint32_t byte) { return (uint8_t)(byte * 7 + page * 31 + 1); }

uint32_t payload_main(void) {
  start_timer_tick();
  uint32_t bdf;
  if (!pci_find_device(EDU_VENDOR, EDU_DEVICE, &bdf)) return pci_not_found(VFIOKIT_DONE_NOT_EDU);
  bar = (uintptr_t)pci_bar_address(bdf, 0);
  pci_enable(bdf);
  if (mmio_read32(bar) != EDU_IDENTIFICATION) return VFIOKIT_DONE_MISMATCH;

  /* The first CPU page is the pattern's source, the last one where copies come back. */
  uint32_t first = VFIOKIT_DIRTY_WINDOW_PAGES, last = 0;
  for (uint32_t page = 0; page < VFIOKIT_DIRTY_WINDOW_PAGES; ++page) {
    if (!(VFIOKIT_DIRTY_CPU_PAGES & (1u << page))) continue;
    if (first == VFIOKIT_DIRTY_WINDOW_PAGES) first = page;
    last = page;
    uint8_t* bytes = (uint8_t*)(VFIOKIT_DIRTY_CPU_WINDOW + page * PAGE);
    for (uint32_t i = 0; i < PAGE; ++i) bytes[i] = pattern(first, i);
    outl(VFIOKIT_MAILBOX_VALUE, VFIOKIT_DIRTY_CPU_WINDOW + page * PAGE);
  }
  log_text("dirty-pages: the CPU wrote its pages\n");
  const uint32_t source = VFIOKIT_DIRTY_CPU_WINDOW + first * PAGE;
  const uint32_t check = VFIOKIT_DIRTY_CPU_WINDOW + last * PAGE;
  for (uint32_t page = 0; page < VFIOKIT_DIRTY_WINDOW_PAGES; ++page) {
    if (!(VFIOKIT_DIRTY_DEVICE_PAGES & (1u << page))) continue;
    const uint32_t destination = VFIOKIT_DIRTY_DEVICE_WINDOW + page * PAGE;
    for (uint32_t half = 0; half < PAGE; half += HALF) {
      if (!transfer(source + half, EDU_BUFFER, 0)) return VFIOKIT_DONE_TIMEOUT;
      if (!transfer(EDU_BUFFER, destination + half, EDU_DMA_FROM_DEVICE)) {
        return VFIOKIT_DONE_TIMEOUT;
      }
    }
    uint8_t* bytes = (uint8_t*)check;
    memset(bytes, 0, PAGE);
    for (uint32_t half = 0; half < PAGE; half += HALF) {
      if (!transfer(destination + half, EDU_BUFFER, 0)) return VFIOKIT_DONE_TIMEOUT;
      if (!transfer(EDU_BUFFER, check + half, EDU_DMA_FROM_DEVICE)) return VFIOKIT_DONE_TIMEOUT;
    }
    for (uint32_t i = 0; i < PAGE; ++i) {
      if (bytes[i] != pattern(first, i)) {
        log_hex("dirty-pages: the device's copy differs in page", destination);
        return VFIOKIT_DONE_MISMATCH;
      }
    }
    outl(VFIOKIT_MAILBOX_VALUE, destination);
  }
  log_text("dirty-pages: edu wrote its pages by DMA, identical\n");
  return VFIOKIT_DONE_PASSED;
}
