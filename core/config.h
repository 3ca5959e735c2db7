/* The internal view of <ringserve/config.h>: the same, nothing more. */
#include "ringserve/config.h"
