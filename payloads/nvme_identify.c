/* nvme-identify: finds an NVMe controller on the guest's PCI bus, programs MSI-X table entry 0
 * and enables MSI-X, sets up the admin queues in guest RAM, runs Identify Controller, takes the
 * completion's MSI-X interrupt, and checks the serial against its parameters. */
#include "vfiokit/payloads/pci.h"
#include "vfiokit/payloads/runtime.h"

#define NVME_CLASS 0x010802u
#define NVME_VECTOR 0x41u
#define SQ 0x400000u
#define CQ 0x401000u
#define DATA 0x402000u
#define ENTRIES 16u

static uintptr_t bar;

/* Polls CSTS.RDY once per timer tick (10 ms), for 5 s; a timeout says what CSTS held. */
static int wait_ready(int ready) {
  uint32_t status = 0;
  for (int tick = 0; tick < 500; ++tick) {
    status = mmio_read32(bar + 0x1c);
    if (status & 0x2) break; /* fatal */
    if ((int)(status & 1) == ready) return 1;
    wait_for_interrupt();
  }
  log_hex(ready ? "nvme-identify: controller never ready, CSTS"
                : "nvme-identify: controller never stopped, CSTS",
          status);
  return 0;
}

uint32_t payload_main(void) {
  start_timer_tick(); /* every wait below can time out */
  const struct vfiokit_nvme_params* params = (const void*)VFIOKIT_PARAMS_ADDRESS;
  uint32_t bdf;
  if (!pci_find_class(NVME_CLASS, &bdf)) return pci_not_found(VFIOKIT_DONE_NOT_NVME);
  pci_log_function("nvme-identify: NVMe at guest", bdf);
  bar = (uintptr_t)pci_bar_address(bdf, 0);
  log_hex("nvme-identify: BAR0 at", (uint32_t)bar);
  pci_enable(bdf);

  const uint32_t msix = pci_find_capability(bdf, PCI_CAP_MSIX);
  if (!msix) return VFIOKIT_DONE_NO_CAPABILITY;
  const uint32_t table = pci_read32(bdf, msix + 4);
  const uintptr_t entry = (uintptr_t)pci_bar_address(bdf, table & 7) + (table & ~7u);
  mmio_write32(entry + 0, 0xfee00000u); /* to APIC 0 */
  mmio_write32(entry + 4, 0);
  mmio_write32(entry + 8, NVME_VECTOR);
  mmio_write32(entry + 12, 0);        /* unmask */
  pci_write16(bdf, msix + 2, 0x8000); /* MSI-X enable, function not masked */
  log_text("nvme-identify: MSI-X entry 0 -> vector 0x41, enabled\n");

  const uint32_t cap_high = mmio_read32(bar + 4);
  const uint32_t stride = 4u << (cap_high & 0xf);
  mmio_write32(bar + 0x14, 0); /* CC.EN = 0 */
  if (!wait_ready(0)) return VFIOKIT_DONE_TIMEOUT;
  memset((void*)SQ, 0, 3 * 4096);
  mmio_write32(bar + 0x24, (ENTRIES - 1) << 16 | (ENTRIES - 1));
  mmio_write32(bar + 0x28, SQ);
  mmio_write32(bar + 0x2c, 0);
  mmio_write32(bar + 0x30, CQ);
  mmio_write32(bar + 0x34, 0);
  mmio_write32(bar + 0x14, 4u << 20 | 6u << 16 | 1u); /* 16 B CQ and 64 B SQ entries, enable */
  if (!wait_ready(1)) return VFIOKIT_DONE_TIMEOUT;

  volatile uint32_t* sqe = (volatile uint32_t*)SQ;
  sqe[0] = 0x06u | 1u << 16; /* Identify, command id 1 */
  sqe[6] = DATA;             /* PRP1 */
  sqe[10] = 1;               /* CNS 1: controller */
  __asm__ volatile("sfence" ::: "memory");
  mmio_write32(bar + 0x1000, 1); /* SQ 0 tail doorbell */
  if (!wait_for_interrupt_count(NVME_VECTOR, 1, 500)) {
    /* Did the controller complete the command (the interrupt was lost) or not run it at all? */
    log_hex("nvme-identify: no completion interrupt; completion entry dword 3",
            ((volatile uint32_t*)CQ)[3]);
    return VFIOKIT_DONE_TIMEOUT;
  }
  __asm__ volatile("lfence" ::: "memory");
  const uint32_t dw3 = ((volatile uint32_t*)CQ)[3];
  mmio_write32(bar + 0x1000 + stride, 1); /* CQ 0 head doorbell */
  if ((dw3 & 0xffff) != 1 || !(dw3 & 0x10000)) return VFIOKIT_DONE_DEVICE_ERROR;
  if (dw3 >> 17) {
    log_hex("nvme-identify: status", dw3 >> 17);
    return VFIOKIT_DONE_DEVICE_ERROR;
  }
  char serial[21];
  memcpy(serial, (const void*)(DATA + 4), 20);
  serial[20] = 0;
  for (int i = 19; i >= 0 && (serial[i] == ' ' || serial[i] == 0); --i) serial[i] = 0;
  log_text("nvme-identify: serial '");
  log_text(serial);
  log_text("'\n");
  if (serial[0] == 0) return VFIOKIT_DONE_WRONG_SERIAL;
  if (params->magic == VFIOKIT_NVME_PARAMS_MAGIC && params->serial[0]) {
    for (int i = 0; i < 21; ++i) {
      if (serial[i] != params->serial[i]) return VFIOKIT_DONE_WRONG_SERIAL;
      if (!serial[i]) break;
    }
  }
  mmio_write32(bar + 0x14, 0); /* stop the controller before the VMM goes away */
  log_text("nvme-identify: Identify Controller by DMA into guest RAM, completion on MSI-X\n");
  return VFIOKIT_DONE_PASSED;
}
