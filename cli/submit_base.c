#include "submit_base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/client.h"
#include "common/jobspec.h"
#include "weights.h"

/* e's message after "WHAT" and the task's letter: "base.A: ...". */
static int prefixed(tfq_error *e, int rc, const char *what, int t)
{
    char msg[TFQ_ERROR_MSG_BYTES];
    snprintf(msg, sizeof msg, "%s", e->msg);
    return tfq_error_set(e, rc, "%s%c: %s", what, 'A' + t, msg);
}

/* The inputs and classes of the net of task t (0 A, 1 B) of g's split. */
static int task_shape(const gridspec *g, int t, netspec_shape *in,
                      int *classes, tfq_error *e)
{
    jobspec s;
    jobspec_default_train(&s);
    snprintf(s.dataset, sizeof s.dataset, "%s", g->dataset);
    const grid_split *sp = &g->splits[0];
    s.nclasses = t == 0 ? sp->na : sp->nb;
    memcpy(s.classes, t == 0 ? sp->a : sp->b, sizeof(int) * (size_t)s.nclasses);
    if (jobspec_net_input(&s, in, classes) != 0)
        return tfq_error_set(e, TFQ_EINVAL, "base: no input shape is known "
                             "for data set '%s'", g->dataset);
    return 0;
}

int submit_base_prepare(gridspec *g, const char *text, submit_base *b,
                        tfq_error *e)
{
    memset(b, 0, sizeof *b);
    if (!g->has_base)
        return 0;
    netspec spec;
    tfq_error ne = {0};
    if (netspec_resolve(g->net, 1.0, &spec, &ne) != 0)
        return tfq_error_set(e, TFQ_EINVAL, "net: %s", ne.msg);
    for (int t = 0; t < 2; t++) {
        if (g->base_file[t][0] == '\0')
            continue;
        netspec_shape in;
        int classes, rc;
        uint8_t digest[HASH_BYTES];
        if ((rc = task_shape(g, t, &in, &classes, e)) != 0 ||
            (rc = weights_load_as_ckpt(g->base_file[t], &spec, in, classes,
                                       &b->ckpt[t], &b->bytes[t], e)) != 0)
            return prefixed(e, rc, "base.", t);
        hash_sha256(b->ckpt[t], b->bytes[t], digest);
        hash_hex(digest, b->sha[t]);
        memcpy(g->base_sha[t], b->sha[t], HASH_HEX_BYTES);
        g->base_file[t][0] = '\0';
    }
    return gridspec_base_resolved(text, g, &b->text, e);
}

int submit_upload_base(client *c, const submit_base *b, tfq_error *e)
{
    for (int t = 0; t < 2; t++) {
        if (b->ckpt[t] == NULL)
            continue;
        int present = 0;
        int rc = client_blob_has(c, "ckpt", b->sha[t], &present, e);
        if (rc == 0 && !present)
            rc = client_blob_put(c, "ckpt", b->sha[t], b->ckpt[t],
                                 b->bytes[t], e);
        if (rc != 0)
            return prefixed(e, rc, "uploading base.", t);
        printf("base %c: checkpoint %.12s, %zu bytes, %s\n", 'A' + t,
               b->sha[t], b->bytes[t],
               present ? "already stored" : "uploaded");
    }
    return 0;
}

void submit_base_release(submit_base *b)
{
    for (int t = 0; t < 2; t++)
        free(b->ckpt[t]);
    free(b->text);
    memset(b, 0, sizeof *b);
}
