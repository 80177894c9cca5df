/* faulty: divides by zero, so the runtime reports an exception. It exists to prove that a
 * payload that faults ends `vfiokit launch` with a clear error. */
#include "payloads/runtime.h"

uint32_t payload_main(void) {
  log_text("faulty: about to divide by zero\n");
  volatile uint32_t zero = 0;
  return 1u / zero;
}
