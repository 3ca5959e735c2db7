/* The backends a process knows: the built-in ones (backend_table.c), then
 * those a program registered. core/ picks from this list by what each
 * backend says about itself (its name as the user typed it, available()),
 * never by a name of its own choosing. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "backend.h"

static const struct rs_backend_ops *registered[RS_MAX_BACKENDS];
static size_t nregistered;

static size_t nbuiltin(void)
{
    size_t n = 0;
    while (rs_builtin_backends[n])
        n++;
    return n;
}

const struct rs_backend_ops *rs_backend_at(size_t i)
{
    size_t nb = nbuiltin();
    if (i < nb)
        return rs_builtin_backends[i];
    return i - nb < nregistered ? registered[i - nb] : NULL;
}

const struct rs_backend_ops *rs_backend_named(const char *name)
{
    const struct rs_backend_ops *b;
    for (size_t i = 0; (b = rs_backend_at(i)) != NULL; i++)
        if (strcmp(b->name, name) == 0)
            return b;
    return NULL;
}

const struct rs_backend_option *
rs_backend_option_named(const char *name, const struct rs_backend_ops **owner)
{
    const struct rs_backend_ops *b;
    for (size_t i = 0; (b = rs_backend_at(i)) != NULL; i++)
        for (const struct rs_backend_option *o = b->options; o && o->name; o++)
            if (strcmp(o->name, name) == 0) {
                if (owner)
                    *owner = b;
                return o;
            }
    return NULL;
}

const struct rs_backend_ops *rs_backend_choose(const char *name, char *why, size_t whylen)
{
    /* By what each backend says about itself (available), never by a
     * name beyond the one asked for. why keeps the first refusal, for the
     * start-up line: "uring cannot run here (reason); using epoll". */
    why[0] = '\0';
    bool any = strcmp(name, "auto") == 0;
    const struct rs_backend_ops *b;
    for (size_t i = 0; (b = rs_backend_at(i)) != NULL; i++) {
        if (!any && strcmp(b->name, name) != 0)
            continue;
        char reason[200] = "";
        if (!b->available || b->available(reason, sizeof(reason)))
            return b;
        if (!why[0])
            snprintf(why, whylen, "%s cannot run here (%s)", b->name, reason);
        if (!any)
            return NULL;
    }
    if (!any && !why[0])
        snprintf(why, whylen, "no backend is called %s", name);
    return NULL;
}

int rs_backend_register(const struct rs_backend_ops *ops)
{
    if (!ops || !ops->name || !ops->name[0] || strcmp(ops->name, "auto") == 0)
        return -EINVAL;
    if (rs_backend_named(ops->name))
        return -EEXIST;
    for (const struct rs_backend_option *o = ops->options; o && o->name; o++)
        if (rs_backend_option_named(o->name, NULL))
            return -EEXIST;
    if (nbuiltin() + nregistered >= RS_MAX_BACKENDS)
        return -ENOSPC;
    registered[nregistered++] = ops;
    return 0;
}
