/* The internal view of <ringserve/server.h>: the same, nothing more. */
#include "ringserve/server.h"
