/* Classifies the images named on the command line with an ONNX model and prints CSV, as
 * `runtime classify --format csv --top-k 3` does. Uses nothing but the library's header.
 *
 *   cargo build --release -p runtime-c
 *   cc runtime/c/examples/classify.c -I runtime/c/include -L target/release -lcifar_onnx \
 *       -Wl,-rpath,"$PWD/target/release" -o classify
 *   ./classify models/cnn.onnx cat.png dog.jpg
 *
 * CIFAR_ENGINE=auto|ort|tract picks the engine (default auto); ORT_DYLIB_PATH names ONNX Runtime.
 * Exits 1 when the model cannot be opened or an image cannot be classified. */
#include "cifar_onnx.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { TOP_K = 3 };

/* Writes s as one CSV field (quoted when it holds a comma, a quote or a line break). */
static void csv_field(const char *s) {
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, stdout);
        return;
    }
    putchar('"');
    for (; *s; s++) {
        if (*s == '"') putchar('"');
        putchar(*s);
    }
    putchar('"');
}

/* The whole file, or NULL with errno set. */
static unsigned char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    unsigned char *bytes = NULL;
    size_t size = 0, cap = 0, n;
    do {
        if (size == cap) {
            cap = cap ? 2 * cap : 1 << 16;
            unsigned char *grown = realloc(bytes, cap);
            if (!grown) {
                free(bytes);
                fclose(f);
                errno = ENOMEM;
                return NULL;
            }
            bytes = grown;
        }
        n = fread(bytes + size, 1, cap - size, f);
        size += n;
    } while (n > 0);
    int failed = ferror(f);
    fclose(f);
    if (failed) {
        free(bytes);
        errno = EIO;
        return NULL;
    }
    *len = size;
    return bytes;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL.onnx IMAGE...\n", argv[0]);
        return 2;
    }
    cifar_quiet_caught_panics();
    cifar_options *options = cifar_options_new();
    const char *engine = getenv("CIFAR_ENGINE");
    if (engine && cifar_options_set_engine(options, engine) != CIFAR_STATUS_OK) {
        fprintf(stderr, "CIFAR_ENGINE: %s\n", cifar_last_error());
        cifar_options_free(options);
        return 2;
    }
    cifar_classifier *classifier = NULL;
    cifar_status status = cifar_classifier_open(argv[1], options, &classifier);
    cifar_options_free(options);
    if (status != CIFAR_STATUS_OK) {
        fprintf(stderr, "%s\n", cifar_last_error());
        return 1;
    }
    cifar_model_info info;
    cifar_classifier_info(classifier, &info);
    fprintf(stderr, "engine: %s (provider %s)\n", info.engine, info.provider);

    fputs("path,status", stdout);
    for (int k = 1; k <= TOP_K; k++) printf(",label_%d,probability_%d", k, k);
    puts(",engine,provider,error");
    int failures = 0;
    for (int i = 2; i < argc; i++) {
        size_t len = 0;
        unsigned char *bytes = read_file(argv[i], &len);
        cifar_result *result = NULL;
        char message[512] = "";
        if (!bytes) {
            snprintf(message, sizeof message, "%s: %s", argv[i], strerror(errno));
        } else if (cifar_classify_encoded(classifier, bytes, len, argv[i], TOP_K, &result) != CIFAR_STATUS_OK) {
            snprintf(message, sizeof message, "%s", cifar_last_error());
        }
        free(bytes);
        csv_field(argv[i]);
        fputs(result ? ",ok" : ",error", stdout);
        for (size_t k = 0; k < TOP_K; k++) {
            cifar_class c;
            if (result && cifar_result_class(result, k, &c) == CIFAR_STATUS_OK) {
                putchar(',');
                csv_field(c.label);
                printf(",%.6f", c.probability);
            } else {
                fputs(",,", stdout);
            }
        }
        putchar(',');
        csv_field(info.engine);
        putchar(',');
        csv_field(info.provider);
        putchar(',');
        csv_field(message);
        putchar('\n');
        failures += result == NULL;
        cifar_result_free(result);
    }
    cifar_classifier_free(classifier);
    return failures ? 1 : 0;
}
