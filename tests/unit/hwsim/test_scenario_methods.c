/* test_scenario_methods.c - every shipped scenario's inline method is a valid
 * method for the scenario's own instrument (the engine's parser and binder
 * say so). Kept apart from test_scenario: it links the engine library. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <string.h>

#include "hf_engine.h"
#include "hf_hwsim.h"

Test(scenario_methods, every_scenario_method_parses_and_binds, .timeout = 10)
{
    DIR *d = opendir(HF_HWSIM_SCENARIO_DIR);
    cr_assert_not_null(d);
    int count = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t n = strlen(de->d_name);
        if (n < 10 || strcmp(de->d_name + n - 9, ".scenario") != 0)
            continue;
        char path[1024], err[HF_METHOD_ERR_MAX] = "";
        snprintf(path, sizeof path, "%s/%s", HF_HWSIM_SCENARIO_DIR, de->d_name);
        hf_hwsim_scenario_t *sc = hf_hwsim_scenario_load(path, err, sizeof err, NULL);
        cr_assert_not_null(sc, "%s: %s", path, err);
        hf_method_t *m = hf_method_parse(hf_hwsim_scenario_name(sc),
                                         hf_hwsim_scenario_method(sc), err, sizeof err, NULL);
        cr_assert_not_null(m, "%s: method (from line %u): %s", path,
                           hf_hwsim_scenario_method_line(sc), err);
        cr_assert_leq(hf_method_duration_ns(m), 5000000000ull, "%s: keep e2e runs short", path);
        hf_hwsim_t *sim = hf_hwsim_new_from_scenario(sc, NULL, NULL);
        hf_hal_t hal = hf_hwsim_hal(sim);
        hf_method_binding_t b;
        cr_assert_eq(hf_method_bind(m, &hal, &b, err, sizeof err), HF_OK, "%s: %s", path, err);
        hf_hwsim_destroy(&sim);
        hf_method_destroy(&m);
        hf_hwsim_scenario_destroy(&sc);
        count++;
    }
    closedir(d);
    cr_assert_geq(count, 8);
}
