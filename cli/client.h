/* The connection to the coordinator moved to common/client.h, which the
 * worker shares; this name stays only for the files that still include it
 * by it (cmd_report.c). */
#include "common/client.h"
