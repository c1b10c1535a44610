#include "data_kind.h"

#include <stddef.h>
#include <string.h>

int data_kind_parse(const char *name, data_kind *kind)
{
    static const struct {
        const char *name;
        data_kind kind;
    } names[] = {
        {"idx", DATA_KIND_IDX},         {"mnist", DATA_KIND_IDX},
        {"fashion-mnist", DATA_KIND_IDX}, {"cifar10", DATA_KIND_CIFAR10},
        {"cifar100", DATA_KIND_CIFAR100},
    };
    if (name == NULL)
        return TFQ_EINVAL;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(name, names[i].name) == 0) {
            *kind = names[i].kind;
            return 0;
        }
    }
    return TFQ_EINVAL;
}

const char *data_kind_name(data_kind kind)
{
    switch (kind) {
    case DATA_KIND_IDX:
        return "idx";
    case DATA_KIND_CIFAR10:
        return "cifar10";
    case DATA_KIND_CIFAR100:
        return "cifar100";
    }
    return "unknown";
}
