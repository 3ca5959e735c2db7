/* The internal view of <ringserve/protocol.h>: the same, nothing more.
 * (The built-in protocols are in protocols/, named by protocols/table.c;
 * core/ finds them with rs_protocol_find.) */
#include "ringserve/protocol.h"
