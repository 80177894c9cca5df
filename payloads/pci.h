/* PCI configuration space for payloads, through configuration mechanism #1 (ports 0xcf8 and
 * 0xcfc), the way firmware and operating systems find their devices. */
#ifndef VFIOKIT_PAYLOADS_PCI_H
#define VFIOKIT_PAYLOADS_PCI_H

#include <stdint.h>

/* A function's address: bus << 8 | device << 3 | function. */
uint8_t pci_read8(uint32_t bdf, uint32_t offset);
uint16_t pci_read16(uint32_t bdf, uint32_t offset);
uint32_t pci_read32(uint32_t bdf, uint32_t offset);
void pci_write16(uint32_t bdf, uint32_t offset, uint16_t value);
void pci_write32(uint32_t bdf, uint32_t offset, uint32_t value);

/* Scans bus 0; returns 1 and sets *bdf for the first function that matches. */
int pci_find_device(uint16_t vendor, uint16_t device, uint32_t* bdf);
int pci_find_class(uint32_t class_code, uint32_t* bdf); /* 24-bit class code */
/* The offset of capability `id`, or 0. */
uint32_t pci_find_capability(uint32_t bdf, uint8_t id);
/* A memory BAR's address (64-bit BARs take the next register as their upper half). */
uint64_t pci_bar_address(uint32_t bdf, uint32_t index);
/* Logs "label 00:01.0\n". */
void pci_log_function(const char* label, uint32_t bdf);
/* Memory space and bus master on: the device decodes its BARs and may start DMA. */
void pci_enable(uint32_t bdf);
/* What a payload that did not find its device reports: VFIOKIT_DONE_NO_DEVICE when nothing is
 * at 00:01.0 (VFIOKIT_GUEST_DEVICE_DEVFN), else `wrong_device`, after the IDs found there on
 * VFIOKIT_MAILBOX_DETAIL. */
uint32_t pci_not_found(uint32_t wrong_device);

#define PCI_CAP_MSI 0x05u
#define PCI_CAP_MSIX 0x11u

#endif
