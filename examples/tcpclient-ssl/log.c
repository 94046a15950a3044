/* log.c -- tcpclient's messages, with this program's name (the messages
 * themselves: examples/common/log.c). */
#include "tcpclient-ssl.h"

const char log_progname[] = PROGNAME;

/* tcpclient -q prints nothing at all, its fatal errors included. */
const int log_fatal_quiet = 1;
