/* A short real training run that must learn: the reference net on a tenth
 * of Fashion-MNIST for two epochs, tested on a fifth of its test set.  A
 * trainer that runs but does not learn (a wrong gradient, a broken update,
 * shuffled labels) fails here. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "check.h"
#include "worker/engine/data.h"
#include "worker/engine/train.h"

#define FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"
#define SHORT_TRAIN 6000
#define SHORT_TEST 2000
/* Measured with the default config (seed 1): 0.7620 after 2 epochs on 6000
 * images, tested on 2000; seeds 2-6 reached 0.7575, 0.7425, 0.7430, 0.7565
 * and 0.7610.  The bar sits a few points below seed 1 (two below the worst
 * seed), so that another thread count's or kernel's rounding passes while a
 * trainer that learns badly does not (chance is 0.10). */
#define SHORT_MIN_ACC 0.72

static void on_epoch(const train_progress *p, void *ud)
{
    (void)ud;
    fprintf(stderr, "  epoch %d/%d  loss %.4f  test_acc %.4f  %.0f img/s\n",
            p->epoch, p->epochs, p->train_loss, p->test_acc,
            p->images_per_s);
}

static int test_fashion_mnist_short(void)
{
    struct stat st;
    if (stat(FASHION_MNIST_DIR, &st) != 0) {
        fprintf(stderr, "note: %s not found, skipping\n", FASHION_MNIST_DIR);
        return 0;
    }
    data_set train, test;
    data_norm norm;
    char fp[HASH_HEX_BYTES];
    tfq_error e = {0};
    CHECK_MSG(data_load(DATA_KIND_IDX, FASHION_MNIST_DIR, &train, &test, fp, &e)
                  == 0, "%s", e.msg);
    data_norm_compute(&train, &norm);
    CHECK(train.n >= SHORT_TRAIN && test.n >= SHORT_TEST);
    train.n = SHORT_TRAIN;
    test.n = SHORT_TEST;
    train_config cfg;
    train_config_default(&cfg);
    cfg.epochs = 2;
    trainer *t = trainer_new(&cfg, &train, &test, &norm, fp, &e);
    int rc = t != NULL ? trainer_run(t, on_epoch, NULL, NULL, NULL, 0, &e)
                       : e.code;
    train_result r = {0};
    if (t != NULL)
        trainer_result_get(t, &r);
    trainer_destroy(&t);
    data_release(&train);
    data_release(&test);
    CHECK_MSG(rc == 0, "%s", e.msg);
    fprintf(stderr, "  final test accuracy %.4f after %d epochs, %.1f s\n",
            r.final_acc, r.epochs_done, r.seconds);
    CHECK_EQ_INT(r.epochs_done, 2);
    CHECK_MSG(r.final_acc >= SHORT_MIN_ACC, "accuracy %.4f < %.2f",
              r.final_acc, SHORT_MIN_ACC);
    return 0;
}

static const test_case cases[] = {
    {"fashion_mnist_short", test_fashion_mnist_short},
};

int main(int argc, char **argv)
{
    return test_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
