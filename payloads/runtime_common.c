/* What the x86 and arm64 payload runtimes share: no libc, so memset and memcpy (the compiler may
 * call them for struct copies and clears), and the log over the mailbox, whose port writes
 * (outb) each architecture's runtime.h turns into port I/O or an MMIO store. */
#include "vfiokit/payloads/runtime.h"

void* memset(void* destination, int value, uint32_t size) {
  uint8_t* d = destination;
  while (size--) *d++ = (uint8_t)value;
  return destination;
}

void* memcpy(void* destination, const void* source, uint32_t size) {
  uint8_t* d = destination;
  const uint8_t* s = source;
  while (size--) *d++ = *s++;
  return destination;
}

void log_text(const char* text) {
  while (*text) outb(VFIOKIT_MAILBOX_LOG, (uint8_t)*text++);
}

void log_hex(const char* label, uint32_t value) {
  static const char digits[] = "0123456789abcdef";
  char text[11] = "0x";
  for (int i = 0; i < 8; ++i) text[2 + i] = digits[(value >> (28 - 4 * i)) & 0xf];
  text[10] = 0;
  log_text(label);
  log_text(" ");
  log_text(text);
  log_text("\n");
}
