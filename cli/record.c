#include "record.h"

#include <math.h>
#include <string.h>

#include "report_json.h"
#include "table.h"

void record_init(record *r)
{
    memset(r, 0, sizeof *r);
}

/* The next field, named name; NULL when the record is full. */
static record_field *add(record *r, const char *name)
{
    if (r->n == RECORD_MAX_FIELDS)
        return NULL;
    record_field *f = &r->f[r->n++];
    f->name = name;
    f->json = NULL;
    f->is_str = 0;
    f->value[0] = f->text[0] = '\0';
    return f;
}

void record_num(record *r, const char *name, const char *fmt, double v)
{
    record_field *f = add(r, name);
    if (f == NULL)
        return;
    if (isfinite(v)) {
        snprintf(f->value, sizeof f->value, fmt, v);
        memcpy(f->text, f->value, sizeof f->text);
    } else {
        snprintf(f->value, sizeof f->value, "null");
    }
}

void record_int(record *r, const char *name, long long v)
{
    record_field *f = add(r, name);
    if (f == NULL)
        return;
    snprintf(f->value, sizeof f->value, "%lld", v);
    memcpy(f->text, f->value, sizeof f->text);
}

void record_str(record *r, const char *name, const char *v)
{
    record_field *f = add(r, name);
    if (f == NULL)
        return;
    snprintf(f->text, sizeof f->text, "%s", v);
    f->is_str = 1;
}

void record_json(record *r, const char *name, const char *json)
{
    record_field *f = add(r, name);
    if (f != NULL)
        f->json = json;
}

void record_write_json(const record *r, FILE *out)
{
    fputc('{', out);
    for (int i = 0; i < r->n; i++) {
        fprintf(out, "%s\"%s\": ", i ? ", " : "", r->f[i].name);
        if (r->f[i].is_str)
            report_json_string(out, r->f[i].text);
        else
            fputs(r->f[i].json != NULL ? r->f[i].json : r->f[i].value, out);
    }
    fputs("}\n", out);
}

void record_write_csv(const record *r, int header, FILE *out)
{
    int first = 1;
    for (int i = 0; i < r->n; i++) {
        if (r->f[i].json != NULL)
            continue;
        fputs(first ? "" : ",", out);
        first = 0;
        if (header)
            table_csv_field(out, r->f[i].name);
        else
            table_csv_field(out, r->f[i].text);
    }
    fputc('\n', out);
}
