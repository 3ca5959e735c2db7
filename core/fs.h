/* The internal view of <ringserve/fs.h>: the same, nothing more. */
#include "ringserve/fs.h"
