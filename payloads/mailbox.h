/* The port-I/O mailbox between a guest payload and the VMM that runs it, shared by the payloads
 * (freestanding C) and vfiokit (C++). Every message is one `out` instruction; the VMM sees it as
 * a KVM_EXIT_IO. Documented for payload authors in docs/payloads.md. */
#ifndef VFIOKIT_PAYLOADS_MAILBOX_H
#define VFIOKIT_PAYLOADS_MAILBOX_H

/* out32: the payload is up (VFIOKIT_MAILBOX_MAGIC) and waiting. */
#define VFIOKIT_MAILBOX_READY 0x500
/* out32: an interrupt arrived: vector | (how many times it has arrived so far) << 8. On arm64
 * the "vector" V is LPI 8192 + V (the payload maps device events to those LPIs). */
#define VFIOKIT_MAILBOX_VECTOR 0x501
/* out32: the payload is finished: 0 passed, anything else a failure code. */
#define VFIOKIT_MAILBOX_DONE 0x502
/* out8: one character of a log line; '\n' ends the line. */
#define VFIOKIT_MAILBOX_LOG 0x503
/* out32: a value the payload wants the VMM to print or check (its meaning is the payload's). */
#define VFIOKIT_MAILBOX_VALUE 0x504
/* out8: the runtime's first instructions, before anything else runs; marks the moment the
 * guest started executing (launch timing). */
#define VFIOKIT_MAILBOX_STARTED 0x505
/* out32: a word that qualifies the DONE code that follows (which one says what it means). */
#define VFIOKIT_MAILBOX_DETAIL 0x506
/* out32: the x86 runtime ignored a delivery of this vector that came while interrupts were off,
 * which no real interrupt does: an emulator delivering an injected interrupt twice (docs/hil.md,
 * "Rig artefact"). The VMM counts these (PayloadGuest::repeated_deliveries) instead of queueing
 * them. */
#define VFIOKIT_MAILBOX_REPEATED 0x507
#define VFIOKIT_MAILBOX_FIRST 0x500
#define VFIOKIT_MAILBOX_LAST 0x50f

/* arm64 has no port I/O: an arm64 payload writes port P's value to guest-physical
 * VFIOKIT_MAILBOX_MMIO_BASE + (P - VFIOKIT_MAILBOX_FIRST) * 4, with one plain store of the
 * port's width (a KVM_EXIT_MMIO: nothing is mapped there). */
#define VFIOKIT_MAILBOX_MMIO_BASE 0x09000000u
#define VFIOKIT_MAILBOX_MMIO_SIZE ((VFIOKIT_MAILBOX_LAST - VFIOKIT_MAILBOX_FIRST + 1) * 4)
/* An arm64 payload image carries this at byte 8 (after its first branch), so the VMM never runs
 * an x86 image on an arm64 vCPU. "VFKA64" and two NULs, read as a little-endian u64. */
#define VFIOKIT_ARM64_IMAGE_MAGIC 0x00003436414b4656ull
#define VFIOKIT_ARM64_IMAGE_MAGIC_OFFSET 8u

#define VFIOKIT_MAILBOX_MAGIC 0x564b4d31u /* "VKM1" */

/* DONE codes a payload's runtime uses; vfiokit's payloads use 0x0100 up, yours 0x0200 up. */
#define VFIOKIT_DONE_PASSED 0u
#define VFIOKIT_DONE_EXCEPTION \
  0xe000u /* | the vector (x86), | ESR_EL1's class (arm64, DETAIL: ESR) */
#define VFIOKIT_DONE_BAD_PARAMETERS 0x00ffu

/* Guest-physical layout shared by the VMM and the payloads. */
#define VFIOKIT_PARAMS_ADDRESS 0x1000u    /* a page the VMM fills before the first instruction */
#define VFIOKIT_PAYLOAD_ADDRESS 0x100000u /* where the flat image is loaded and entered */
#define VFIOKIT_STACK_TOP 0x90000u
/* Where the VMM puts the passed-through device on the guest's bus: 00:01.0 (devfn). */
#define VFIOKIT_GUEST_DEVICE_DEVFN 0x08u

/* The irq-probe payload's parameters: which vectors to expect, each once. */
#define VFIOKIT_IRQ_PARAMS_MAGIC 0x51524956u /* "VIRQ" */
struct vfiokit_irq_params {
  unsigned int magic;
  unsigned int count;         /* how many of vectors[] are used */
  unsigned char vectors[224]; /* 32..255; device vector i arrives as vectors[i] */
  /* arm64: the ITS DeviceID the VMM's MSI routes carry (the requester ID), whose event i the
   * payload maps to vectors[i]. Unused on x86, where the MSI names the vector itself. */
  unsigned int device_id;
};

/* nvme-identify's parameters: the serial Identify Controller must report ("" accepts any
 * printable serial). */
#define VFIOKIT_NVME_PARAMS_MAGIC 0x454d564eu /* "NVME" */
struct vfiokit_nvme_params {
  unsigned int magic;
  char serial[24]; /* NUL-terminated, at most 20 characters */
};

/* dirty-pages: the guest pages it writes with the CPU and those it has edu write by DMA, each a
 * 16-page window and a mask of the pages in it (bit N: the window's page N). Nothing else the
 * payload does touches either window, so a dirty log over them must show exactly these. */
#define VFIOKIT_DIRTY_CPU_WINDOW 0x800000u
#define VFIOKIT_DIRTY_CPU_PAGES 0x818bu /* pages 0, 1, 3, 7, 8, 15 */
#define VFIOKIT_DIRTY_DEVICE_WINDOW 0xa00000u
#define VFIOKIT_DIRTY_DEVICE_PAGES 0x0025u /* pages 0, 2, 5 */
#define VFIOKIT_DIRTY_WINDOW_PAGES 16u

/* DONE codes of the passthrough payloads. */
#define VFIOKIT_DONE_NO_DEVICE 0x0101u     /* the device is not on the guest's PCI bus */
#define VFIOKIT_DONE_NO_CAPABILITY 0x0102u /* it lacks the MSI or MSI-X capability */
#define VFIOKIT_DONE_TIMEOUT 0x0103u       /* the device did not answer in time */
#define VFIOKIT_DONE_MISMATCH 0x0104u      /* data came back different */
#define VFIOKIT_DONE_DEVICE_ERROR 0x0105u  /* the device reported an error */
#define VFIOKIT_DONE_WRONG_SERIAL 0x0106u  /* Identify reported another serial */
/* 00:01.0 holds a device this payload does not drive; DETAIL is its vendor | device << 16. */
#define VFIOKIT_DONE_NOT_EDU 0x0107u  /* edu-dma, edu-intx: not QEMU's edu (1234:11e8) */
#define VFIOKIT_DONE_NOT_NVME 0x0108u /* nvme-identify: not an NVMe controller (class 01:08:02) */
#define VFIOKIT_DONE_NO_INTX 0x0109u  /* edu-intx: no INTx pin, or a line no IOAPIC input has */
/* arm64 runtime: the ITS did not take a command (DETAIL: the low half of GITS_CREADR), or has
 * no table of a type it needs (DETAIL: the GITS_BASER Type, 1 devices or 4 collections). */
#define VFIOKIT_DONE_ITS_STUCK 0x010au
/* The guest RAM the arm64 runtime needs: its GIC tables lie from 4 MiB to the end of the ITT
 * at 0x450000 (2 KiB); PayloadGuest refuses less. */
#define VFIOKIT_ARM64_RUNTIME_RAM 0x460000u

#endif
