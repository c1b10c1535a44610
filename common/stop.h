/* A stop flag that SIGINT and SIGTERM set: how a command asks the work in
 * hand (training, a worker's job, a local run) to end cleanly. */
#ifndef TFQ_COMMON_STOP_H
#define TFQ_COMMON_STOP_H

#include <signal.h>

/* Installs handlers of SIGINT and SIGTERM that set the process's one stop
 * flag to 1, and returns that flag (0 until a signal comes).  Calling it
 * again installs nothing new and returns the same flag. */
volatile sig_atomic_t *stop_on_signals(void);

#endif
