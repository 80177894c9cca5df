/* silent: says it is ready and then never reports a result, so `vfiokit launch` must end it
 * with a timeout. */
#include "vfiokit/payloads/runtime.h"

uint32_t payload_main(void) {
  outl(VFIOKIT_MAILBOX_READY, VFIOKIT_MAILBOX_MAGIC);
  for (;;) wait_for_interrupt();
}
