/* irq-probe: reports every interrupt it receives, vector and running count, on
 * VFIOKIT_MAILBOX_VECTOR, and tells the VMM once it has seen each expected vector
 * (VFIOKIT_MAILBOX_VALUE = IRQ_PROBE_ALL_SEEN). It never finishes by itself: the VMM stops it.
 * Parameters: struct vfiokit_irq_params at VFIOKIT_PARAMS_ADDRESS. Built for x86 and arm64
 * (where the ITS maps the device's events to LPIs first: prepare_msi_vectors). */
#include "vfiokit/payloads/runtime.h"

#define IRQ_PROBE_ALL_SEEN 0xa11u

static uint8_t expected[256];
static volatile uint32_t expected_left;

static void on_interrupt(uint32_t vector) {
  const uint32_t count = interrupt_count(vector);
  outl(VFIOKIT_MAILBOX_VECTOR, vector | count << 8);
  if (expected[vector] && count == 1) expected_left--;
}

uint32_t payload_main(void) {
  const struct vfiokit_irq_params* params = (const void*)VFIOKIT_PARAMS_ADDRESS;
  if (params->magic != VFIOKIT_IRQ_PARAMS_MAGIC || params->count > sizeof params->vectors) {
    log_text("irq-probe: bad parameters\n");
    return VFIOKIT_DONE_BAD_PARAMETERS;
  }
  for (uint32_t i = 0; i < params->count; ++i) {
    const uint8_t vector = params->vectors[i];
    if (vector < 32) return VFIOKIT_DONE_BAD_PARAMETERS;
    if (!expected[vector]) expected_left++;
    expected[vector] = 1;
  }
  const uint32_t refused = prepare_msi_vectors(params->device_id, params->vectors, params->count);
  if (refused) return refused;
  set_interrupt_handler(on_interrupt);
  log_hex("irq-probe: expecting vectors", expected_left);
  outl(VFIOKIT_MAILBOX_READY, VFIOKIT_MAILBOX_MAGIC);
  int announced = 0;
  for (;;) {
    wait_for_interrupt();
    if (!announced && expected_left == 0) {
      outl(VFIOKIT_MAILBOX_VALUE, IRQ_PROBE_ALL_SEEN);
      announced = 1;
    }
  }
}
