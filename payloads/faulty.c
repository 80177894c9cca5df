/* faulty: divides by zero, so the runtime reports an exception. It exists to prove that a
 * payload that faults ends `vfiokit launch` with a clear error. */
#include "vfiokit/payloads/runtime.h"

uint32_t payload_main(void) {
  log_text("faulty: about to divide by zero\n");
  /* In assembly: in C, 1u / x is undefined for 0 and compilers turn it into x == 1. */
  uint32_t quotient, remainder = 0;
  __asm__ volatile("divl %2" : "=a"(quotient), "+d"(remainder) : "r"(0u), "a"(1u));
  return quotient;
}
