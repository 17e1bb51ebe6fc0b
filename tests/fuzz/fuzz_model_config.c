/* fuzz_model_config.c — libFuzzer harness for the config.json parser (`make fuzz`): any input
 * must parse and validate, or fail with a message; a config that validates must also survive a
 * save-format round trip (to_json → parse → to_json gives the same text). Run:
 *   build-fuzz/fuzz_model_config -max_total_time=60 tests/fuzz/corpus/model_config
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/model_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    model_config c;
    pt_error err = {0};
    if (model_config_parse(&c, text, "fuzz.json", &err) == PT_OK) {
        if (model_config_validate(&c, "fuzz.json", &err) == PT_OK) {
            char *a = NULL, *b = NULL;
            if (model_config_to_json(&a, &c, &err) == PT_OK) {
                model_config c2;
                if (model_config_parse(&c2, a, "roundtrip", &err) != PT_OK) abort();
                if (model_config_to_json(&b, &c2, &err) != PT_OK || strcmp(a, b) != 0) abort();
                model_config_free(&c2);
            }
            free(a);
            free(b);
        }
        model_config_free(&c);
    }
    free(text);
    return 0;
}
