/* qexit: end the QEMU guest through the isa-debug-exit device.
 *
 * Built static by scripts/vm-test and put into the guest's initramfs.
 * Usage: qexit CODE   (CODE 0..127)
 *
 * QEMU is started with `-device isa-debug-exit,iobase=0xf4,iosize=0x04`;
 * writing V to port 0xf4 makes QEMU exit with status (V << 1) | 1.  So
 * CODE 0 gives QEMU status 1 (the "pass" value vm-test looks for) and
 * CODE n > 0 gives 2n+1.  Codes outside 0..127 would wrap around to an odd
 * status that could alias a pass, so they are refused here (and clamped by
 * the init script before they get here).
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/io.h>

enum { kDebugExitPort = 0xf4 };

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: qexit CODE (0..127)\n");
    return 2;
  }
  char *end = NULL;
  long code = strtol(argv[1], &end, 10);
  if (end == argv[1] || *end != '\0' || code < 0 || code > 127) {
    fprintf(stderr, "qexit: bad code '%s'\n", argv[1]);
    return 2;
  }
  if (ioperm(kDebugExitPort, 4, 1) != 0) {
    perror("qexit: ioperm");
    return 1;
  }
  outl((unsigned int)code, kDebugExitPort);
  /* Only reached when the device is missing. */
  fprintf(stderr, "qexit: isa-debug-exit did not stop the VM\n");
  return 1;
}
