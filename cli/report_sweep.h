/* tfq report over a swept grid: its jobs' setting combinations (the
 * store's sweep coordinate, "lr=0.01/init=caffe"), the ones --where
 * chooses, and the jobs of one. */
#ifndef TFQ_CLI_REPORT_SWEEP_H
#define TFQ_CLI_REPORT_SWEEP_H

#include "common/err.h"

/* --where KEY=VALUE options a report takes at most. */
#define SWEEP_MAX_WHERE 16

typedef struct {
    char **names; /* (n) the distinct combinations, in the order of the
                     first job of each */
    int n;
    int *chosen;  /* (n) 1: in the report */
    char grid[256]; /* the grid's name */
} sweep_set;

/* The combinations of json's jobs (an array of job objects with "sweep";
 * none: n is 0), each chosen, and the grid's name: grid, else the first
 * job's.  sweep_set_release frees s in every case. */
int sweep_set_load(sweep_set *s, const char *json, const char *grid,
                   tfq_error *e);
void sweep_set_release(sweep_set *s);

/* Keeps chosen only the combinations that have every where[i] (KEY=VALUE)
 * among their values, a value compared canonically (numbers by value:
 * 0.010 is 0.01).  TFQ_EINVAL for a malformed item, a grid without
 * sweeps, a key no combination has or a value none has (the message lists
 * the known keys or that key's values), or when nothing is left. */
int sweep_set_where(sweep_set *s, const char *const *where, int nwhere,
                    tfq_error *e);

/* The jobs of json whose sweep is name, as a new JSON array the caller
 * frees; NULL with the reason in e. */
char *sweep_select(const char *json, const char *name, tfq_error *e);

/* The value of key in combination name ("lr=0.01/init=he", "lr":
 * "0.01") into out; "" when it has none. */
void sweep_value(const char *name, const char *key, char *out, size_t bytes);

/* The keys of combination name, in its order, into keys[0 .. *n), each a
 * string of at most 31 characters. */
void sweep_keys(const char *name, char keys[][32], int max, int *n);

#endif
