#include "vfiokit/payloads/pci.h"

#include "vfiokit/payloads/runtime.h"

#define CONFIG_ADDRESS 0xcf8u
#define CONFIG_DATA 0xcfcu

static inline uint8_t inb(uint16_t port) {
  uint8_t value;
  __asm__ volatile("inb %1, %0" : "=a"(value) : "Nd"(port));
  return value;
}
static inline uint16_t inw(uint16_t port) {
  uint16_t value;
  __asm__ volatile("inw %1, %0" : "=a"(value) : "Nd"(port));
  return value;
}
static inline void outw(uint16_t port, uint16_t value) {
  __asm__ volatile("outw %0, %1" ::"a"(value), "Nd"(port));
}

static void select(uint32_t bdf, uint32_t offset) {
  outl(CONFIG_ADDRESS, 0x80000000u | bdf << 8 | (offset & 0xfcu));
}

uint8_t pci_read8(uint32_t bdf, uint32_t offset) {
  select(bdf, offset);
  return inb((uint16_t)(CONFIG_DATA + (offset & 3)));
}
uint16_t pci_read16(uint32_t bdf, uint32_t offset) {
  select(bdf, offset);
  return inw((uint16_t)(CONFIG_DATA + (offset & 2)));
}
uint32_t pci_read32(uint32_t bdf, uint32_t offset) {
  select(bdf, offset);
  return inl(CONFIG_DATA);
}
void pci_write16(uint32_t bdf, uint32_t offset, uint16_t value) {
  select(bdf, offset);
  outw((uint16_t)(CONFIG_DATA + (offset & 2)), value);
}
void pci_write32(uint32_t bdf, uint32_t offset, uint32_t value) {
  select(bdf, offset);
  outl(CONFIG_DATA, value);
}

static int scan(int (*match)(uint32_t bdf, uint32_t a, uint32_t b), uint32_t a, uint32_t b,
                uint32_t* found) {
  for (uint32_t device = 0; device < 32; ++device) {
    for (uint32_t function = 0; function < 8; ++function) {
      const uint32_t bdf = device << 3 | function;
      if (pci_read16(bdf, 0) == 0xffff) {
        if (function == 0) break; /* no device in this slot */
        continue;
      }
      if (match(bdf, a, b)) {
        *found = bdf;
        return 1;
      }
    }
  }
  return 0;
}

static int match_ids(uint32_t bdf, uint32_t vendor, uint32_t device) {
  return pci_read16(bdf, 0) == vendor && pci_read16(bdf, 2) == device;
}
static int match_class(uint32_t bdf, uint32_t class_code, uint32_t unused) {
  (void)unused;
  return (pci_read32(bdf, 8) >> 8) == class_code;
}

int pci_find_device(uint16_t vendor, uint16_t device, uint32_t* bdf) {
  return scan(match_ids, vendor, device, bdf);
}
int pci_find_class(uint32_t class_code, uint32_t* bdf) {
  return scan(match_class, class_code, 0, bdf);
}

uint32_t pci_find_capability(uint32_t bdf, uint8_t id) {
  if (!(pci_read16(bdf, 6) & 0x10)) return 0;
  uint32_t offset = pci_read8(bdf, 0x34) & 0xfcu;
  for (int hops = 0; offset && hops < 48; ++hops) {
    if (pci_read8(bdf, offset) == id) return offset;
    offset = pci_read8(bdf, offset + 1) & 0xfcu;
  }
  return 0;
}

uint64_t pci_bar_address(uint32_t bdf, uint32_t index) {
  const uint32_t low = pci_read32(bdf, 0x10 + 4 * index);
  uint64_t address = low & ~0xfu;
  if ((low & 0x6u) == 0x4u) address |= (uint64_t)pci_read32(bdf, 0x14 + 4 * index) << 32;
  return address;
}

void pci_enable(uint32_t bdf) { pci_write16(bdf, 4, (uint16_t)(pci_read16(bdf, 4) | 0x6)); }

uint32_t pci_not_found(uint32_t wrong_device) {
  const uint32_t ids = pci_read32(VFIOKIT_GUEST_DEVICE_DEVFN, 0);
  if ((ids & 0xffffu) == 0xffffu) return VFIOKIT_DONE_NO_DEVICE;
  pci_log_function("pci: no device this payload drives; another is at guest",
                   VFIOKIT_GUEST_DEVICE_DEVFN);
  outl(VFIOKIT_MAILBOX_DETAIL, ids);
  return wrong_device;
}

void pci_log_function(const char* label, uint32_t bdf) {
  static const char digits[] = "0123456789abcdef";
  const uint32_t bus = (bdf >> 8) & 0xffu, device = (bdf >> 3) & 0x1fu;
  const char text[] = {' ', digits[bus >> 4],    digits[bus & 0xf],
                       ':', digits[device >> 4], digits[device & 0xf],
                       '.', digits[bdf & 7u],    '\n',
                       0};
  log_text(label);
  log_text(text);
}
