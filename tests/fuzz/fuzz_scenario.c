/* libFuzzer target: the hwsim scenario parser (files test authors write),
 * and the simulator each accepted scenario builds. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hf_hwsim.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > HF_HWSIM_SCENARIO_FILE_MAX + 16)
        return 0;
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = 0;
    char err[HF_HWSIM_SCENARIO_ERR_MAX];
    hf_err_t rc;
    hf_hwsim_scenario_t *sc = hf_hwsim_scenario_parse("fuzz", text, err, sizeof err, &rc);
    if (!sc && rc == HF_OK)
        abort();
    if (sc) {
        /* a scenario that parses always builds its simulator */
        hf_hwsim_t *sim = hf_hwsim_new_from_scenario(sc, NULL, &rc);
        if (!sim)
            abort();
        hf_hal_t hal = hf_hwsim_hal(sim);
        hal.ops->open(hal.impl, 1000000000ull, NULL);
        for (uint32_t i = 0; i < hf_hwsim_scenario_expect_count(sc); i++)
            (void)hf_hwsim_expect_holds(hf_hwsim_scenario_expect(sc, i), 1);
        for (uint64_t t = 0; t < 4; t++) {
            double v;
            hal.ops->read(hal.impl, 0, 1000000000ull + t * 700000000ull, &v, NULL);
            if (hal.ops->actuator_count(hal.impl) > 0)
                hal.ops->write(hal.impl, 0, 1000000000ull + t * 700000000ull, 1.0, NULL);
        }
        hf_hwsim_destroy(&sim);
    }
    hf_hwsim_scenario_destroy(&sc);
    free(text);
    return 0;
}
