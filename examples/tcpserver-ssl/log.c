/* log.c -- tcpserver's messages, with this program's name (the messages
 * themselves: examples/common/log.c). */
#include "tcpserver-ssl.h"

const char log_progname[] = PROGNAME;

/* Like tcpserver, a fatal error is printed even with -q. */
const int log_fatal_quiet = 0;
