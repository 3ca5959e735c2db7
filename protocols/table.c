/* The built-in protocols by name: --protocol=NAME. A protocol of a
 * program's own needs no entry here: it goes in rs_config.proto. */
#include <stddef.h>
#include <string.h>

#include "protocols.h"

const struct rs_protocol *rs_protocol_find(const char *name)
{
    static const struct rs_protocol *const all[] = {&rs_proto_echo, &rs_proto_discard,
                                                    &rs_proto_chargen, &rs_proto_proxy,
                                                    &rs_proto_http};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        if (strcmp(all[i]->name, name) == 0)
            return all[i];
    return NULL;
}
