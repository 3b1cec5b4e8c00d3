/* libFuzzer target: the method-file parser (files operators write). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hf_engine.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 16))
        return 0;
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = 0;
    char err[HF_METHOD_ERR_MAX];
    hf_err_t rc;
    hf_method_t *m = hf_method_parse("fuzz", text, err, sizeof err, &rc);
    if (!m && rc == HF_OK)
        abort();
    hf_method_destroy(&m);
    free(text);
    return 0;
}
