#include "loss.h"

#include <math.h>
#include <stddef.h>

static int argmax_col(const float *logits, int classes, int n, int i)
{
    int best = 0;
    for (int c = 1; c < classes; c++)
        if (logits[(long)c * n + i] > logits[(long)best * n + i])
            best = c;
    return best;
}

double loss_softmax_xent(const float *logits, const int *labels, int classes,
                         int n, float *dlogits, int *correct)
{
    double total = 0.0;
    for (int i = 0; i < n; i++) {
        float mx = logits[i];
        for (int c = 1; c < classes; c++)
            if (logits[(long)c * n + i] > mx)
                mx = logits[(long)c * n + i];
        double sum = 0.0;
        for (int c = 0; c < classes; c++)
            sum += exp((double)(logits[(long)c * n + i] - mx));
        double logz = log(sum) + mx;
        total += logz - logits[(long)labels[i] * n + i];
        if (dlogits != NULL)
            for (int c = 0; c < classes; c++) {
                double pr = exp((double)logits[(long)c * n + i] - logz);
                dlogits[(long)c * n + i] =
                    (float)((pr - (c == labels[i] ? 1.0 : 0.0)) / n);
            }
        if (correct != NULL && argmax_col(logits, classes, n, i) == labels[i])
            (*correct)++;
    }
    return total / n;
}

void loss_count_correct(const float *logits, const int *labels, int classes,
                        int n, int *correct)
{
    for (int i = 0; i < n; i++)
        if (argmax_col(logits, classes, n, i) == labels[i])
            (*correct)++;
}
