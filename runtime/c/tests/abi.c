/* Checks the C ABI from C, as an app would call it: every bad argument is an error code with a
 * message, never a crash; encoded, RGB8 and batch calls agree; a classifier shared by two threads
 * gives the answers it gives to one. Run under AddressSanitizer and UndefinedBehaviorSanitizer by
 * runtime/c/test.sh:
 *
 *   abi MODEL.onnx IMAGE.png IMAGE.rgb WIDTH HEIGHT BROKEN.png NOT_A_MODEL HOSTILE_MODEL.onnx
 *
 * IMAGE.rgb holds IMAGE.png's pixels (8-bit RGB rows, no padding). */
#include "cifar_onnx.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0;

#define CHECK(cond, ...)                                             \
    do {                                                             \
        if (!(cond)) {                                               \
            fprintf(stderr, "abi.c:%d: %s: ", __LINE__, #cond);      \
            fprintf(stderr, __VA_ARGS__);                            \
            fputc('\n', stderr);                                     \
            failures++;                                              \
        }                                                            \
    } while (0)

/* The call returned `want`, with a message holding `part` (when given). */
static void expect(cifar_status got, cifar_status want, const char *part, const char *what) {
    const char *message = cifar_last_error();
    CHECK(got == want, "%s: status %d, expected %d (%s)", what, got, want, message);
    if (part) CHECK(strstr(message, part) != NULL, "%s: the message \"%s\" does not name \"%s\"", what, message, part);
    if (got == want) printf("abi: %s: status %d: %s\n", what, got, want == CIFAR_STATUS_OK ? "ok" : message);
}

/* The file name of a path. */
static const char *base(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

static unsigned char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        exit(2);
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *bytes = malloc((size_t)size + 1);
    if (!bytes || fread(bytes, 1, (size_t)size, f) != (size_t)size) {
        perror(path);
        exit(2);
    }
    fclose(f);
    *len = (size_t)size;
    return bytes;
}

/* The top-1 class and its probability. */
static void top1(const cifar_result *r, size_t *index, float *p) {
    cifar_class c = {0, NULL, 0};
    CHECK(cifar_result_class(r, 0, &c) == CIFAR_STATUS_OK, "no top-1: %s", cifar_last_error());
    *index = c.index;
    *p = c.probability;
}

struct job {
    const cifar_classifier *classifier; /* shared, or NULL to open one of its own */
    const char *model;
    const unsigned char *png;
    size_t len;
    size_t index;
    float probability;
    int mismatches;
};

static void *classify_many(void *arg) {
    struct job *job = arg;
    cifar_classifier *own = NULL;
    const cifar_classifier *c = job->classifier;
    if (!c) {
        if (cifar_classifier_open(job->model, NULL, &own) != CIFAR_STATUS_OK) {
            job->mismatches = -1;
            return NULL;
        }
        c = own;
    }
    for (int i = 0; i < 20; i++) {
        cifar_result *r = NULL;
        size_t index = 0;
        float p = 0;
        if (cifar_classify_encoded(c, job->png, job->len, "thread.png", 1, &r) != CIFAR_STATUS_OK) {
            job->mismatches++;
            continue;
        }
        top1(r, &index, &p);
        if (index != job->index || fabsf(p - job->probability) > 1e-5f) job->mismatches++;
        cifar_result_free(r);
    }
    cifar_classifier_free(own);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 9) {
        fprintf(stderr, "usage: abi MODEL IMAGE.png IMAGE.rgb WIDTH HEIGHT BROKEN NOT_A_MODEL HOSTILE_MODEL\n");
        return 2;
    }
    const char *model = argv[1], *png_path = argv[2], *broken_path = argv[6];
    const unsigned width = (unsigned)atoi(argv[4]), height = (unsigned)atoi(argv[5]);
    setvbuf(stdout, NULL, _IOLBF, 0);
    cifar_quiet_caught_panics();
    printf("abi: library version %s\n", cifar_version());

    /* Null and invalid arguments. */
    cifar_classifier *c = (cifar_classifier *)1;
    expect(cifar_classifier_open(NULL, NULL, &c), CIFAR_STATUS_INVALID_ARGUMENT, "path", "open(NULL path)");
    CHECK(c == NULL, "a failed open leaves *out null");
    expect(cifar_classifier_open(model, NULL, NULL), CIFAR_STATUS_INVALID_ARGUMENT, "out", "open(NULL out)");
    expect(cifar_classifier_open_bytes(NULL, 10, "x.onnx", NULL, &c), CIFAR_STATUS_INVALID_ARGUMENT, "bytes", "open_bytes(NULL bytes)");
    expect(cifar_classify_encoded(NULL, (const uint8_t *)"x", 1, "x", 1, NULL), CIFAR_STATUS_INVALID_ARGUMENT, NULL, "classify(NULL classifier)");
    cifar_options *options = cifar_options_new();
    expect(cifar_options_set_engine(options, "gpu"), CIFAR_STATUS_INVALID_ARGUMENT, "gpu", "set_engine(\"gpu\")");
    expect(cifar_options_set_engine(NULL, "tract"), CIFAR_STATUS_INVALID_ARGUMENT, "options", "set_engine(NULL options)");
    expect(cifar_options_set_threads(options, 100000), CIFAR_STATUS_INVALID_ARGUMENT, "threads", "set_threads(100000)");
    expect(cifar_options_set_engine(options, "tract"), CIFAR_STATUS_OK, NULL, "set_engine(\"tract\")");
    expect(cifar_options_set_threads(options, 1), CIFAR_STATUS_OK, NULL, "set_threads(1)");
    CHECK(cifar_result_count(NULL) == 0, "count(NULL)");
    CHECK(cifar_result_error(NULL) == NULL, "error(NULL)");
    CHECK(cifar_result_status(NULL) == CIFAR_STATUS_INVALID_ARGUMENT, "status(NULL)");
    CHECK(cifar_classifier_describe(NULL) == NULL, "describe(NULL)");
    CHECK(cifar_classifier_class_name(NULL, 0) == NULL, "class_name(NULL)");
    cifar_result_free(NULL);
    cifar_classifier_free(NULL);
    cifar_options_free(NULL);
    cifar_string_free(NULL);

    /* Files that are missing or not usable models: errors naming them. */
    expect(cifar_classifier_open("no/such/model.onnx", options, &c), CIFAR_STATUS_IO, "no/such/model.onnx", "open(missing file)");
    expect(cifar_classifier_open(argv[7], options, &c), CIFAR_STATUS_BAD_MODEL, argv[7], "open(not a model)");
    cifar_status hostile = cifar_classifier_open(argv[8], options, &c);
    CHECK(hostile != CIFAR_STATUS_OK && c == NULL, "a model tract cannot run is refused");
    CHECK(strstr(cifar_last_error(), base(argv[8])) != NULL, "the message names the model: %s", cifar_last_error());
    printf("abi: open(a model tract panics on): status %d: %s\n", hostile, cifar_last_error());

    expect(cifar_classifier_open(model, options, &c), CIFAR_STATUS_OK, NULL, "open(model)");
    cifar_options_free(options);
    if (!c) return 1;

    /* What the model says about itself. */
    cifar_model_info info;
    expect(cifar_classifier_info(c, &info), CIFAR_STATUS_OK, NULL, "info");
    expect(cifar_classifier_info(c, NULL), CIFAR_STATUS_INVALID_ARGUMENT, "out", "info(NULL out)");
    CHECK(info.num_classes > 1 && info.width > 0 && info.height > 0, "info: %zu classes, %ux%u", info.num_classes, info.width, info.height);
    CHECK(strcmp(info.engine, "tract") == 0, "engine %s", info.engine);
    CHECK(strcmp(info.layout, "NCHW") == 0 || strcmp(info.layout, "NHWC") == 0, "layout %s", info.layout);
    CHECK(cifar_classifier_class_name(c, 0) != NULL, "class 0 has a name");
    CHECK(cifar_classifier_class_name(c, info.num_classes) == NULL, "no class past the last");
    char *json = cifar_classifier_describe(c);
    char want[64];
    snprintf(want, sizeof want, "\"height\":%u", info.height);
    CHECK(json && strstr(json, want) && strstr(json, "\"engine\":\"tract\""), "describe: %s", json ? json : "(null)");
    printf("abi: %s\n", json);
    cifar_string_free(json);

    /* One encoded image, then the same pixels as RGB8 rows with and without padding. */
    size_t png_len, rgb_len, broken_len;
    unsigned char *png = read_all(png_path, &png_len);
    unsigned char *rgb = read_all(argv[3], &rgb_len);
    unsigned char *broken = read_all(broken_path, &broken_len);
    CHECK(rgb_len == (size_t)width * height * 3, "IMAGE.rgb holds %zu bytes", rgb_len);
    cifar_result *encoded = NULL, *pixels = NULL, *padded = NULL;
    expect(cifar_classify_encoded(c, png, png_len, png_path, 5, &encoded), CIFAR_STATUS_OK, NULL, "classify_encoded");
    CHECK(cifar_result_count(encoded) == 5, "top-5 holds %zu", cifar_result_count(encoded));
    cifar_class last;
    expect(cifar_result_class(encoded, 5, &last), CIFAR_STATUS_INVALID_ARGUMENT, "index 5", "result_class(past the end)");
    expect(cifar_classify_rgb8(c, rgb, rgb_len, width, height, 3 * width, 5, &pixels), CIFAR_STATUS_OK, NULL, "classify_rgb8");
    size_t stride = 3 * width + 13;
    unsigned char *rows = calloc(stride * height, 1);
    for (unsigned y = 0; y < height; y++) memcpy(rows + y * stride, rgb + y * 3 * width, 3 * width);
    expect(cifar_classify_rgb8(c, rows, stride * height - 13, width, height, stride, 5, &padded), CIFAR_STATUS_OK, NULL, "classify_rgb8(padded rows)");
    for (size_t k = 0; k < 5 && encoded && pixels && padded; k++) {
        cifar_class a, b, d;
        cifar_result_class(encoded, k, &a);
        cifar_result_class(pixels, k, &b);
        cifar_result_class(padded, k, &d);
        CHECK(a.index == b.index && a.probability == b.probability && b.index == d.index && b.probability == d.probability,
              "rank %zu: encoded %zu %.7f, rgb8 %zu %.7f, padded %zu %.7f", k, a.index, a.probability, b.index, b.probability, d.index, d.probability);
        CHECK(strcmp(a.label, cifar_classifier_class_name(c, a.index)) == 0, "label %s", a.label);
    }
    cifar_result *none = (cifar_result *)1;
    expect(cifar_classify_rgb8(c, rgb, rgb_len - 1, width, height, 3 * width, 1, &none), CIFAR_STATUS_BAD_INPUT, "too few", "classify_rgb8(buffer one byte short)");
    CHECK(none == NULL, "a failed call leaves *out null");
    expect(cifar_classify_rgb8(c, rgb, rgb_len, width, height, 3 * width - 1, 1, &none), CIFAR_STATUS_BAD_INPUT, "stride", "classify_rgb8(stride shorter than a row)");
    expect(cifar_classify_rgb8(c, rgb, rgb_len, 0, height, 0, 1, &none), CIFAR_STATUS_BAD_INPUT, "0x", "classify_rgb8(width 0)");
    expect(cifar_classify_rgb8(c, NULL, rgb_len, width, height, 3 * width, 1, &none), CIFAR_STATUS_INVALID_ARGUMENT, "pixels", "classify_rgb8(NULL pixels)");
    expect(cifar_classify_encoded(c, broken, broken_len, broken_path, 1, &none), CIFAR_STATUS_BAD_IMAGE, base(broken_path), "classify_encoded(broken image)");
    expect(cifar_classify_encoded(c, png, 0, "empty.png", 1, &none), CIFAR_STATUS_BAD_IMAGE, "empty.png", "classify_encoded(0 bytes)");

    /* A batch with a broken image in the middle: it gets its own error, the others their answers. */
    cifar_image batch[3] = {{png, png_len, "first.png"}, {broken, broken_len, "broken-in-batch.png"}, {png, png_len, "third.png"}};
    cifar_result *results[3] = {NULL, NULL, NULL};
    expect(cifar_classify_batch(c, batch, 3, 2, results), CIFAR_STATUS_OK, NULL, "classify_batch");
    CHECK(cifar_result_status(results[1]) == CIFAR_STATUS_BAD_IMAGE, "batch[1] status %d", cifar_result_status(results[1]));
    CHECK(cifar_result_error(results[1]) && strstr(cifar_result_error(results[1]), "broken-in-batch.png"), "batch[1] error names it");
    CHECK(cifar_result_count(results[1]) == 0, "batch[1] has no classes");
    size_t i0 = 0, i1 = 0, i2 = 0;
    float p0 = 0, p1 = 0, p2 = 0;
    top1(encoded, &i0, &p0);
    top1(results[0], &i1, &p1);
    top1(results[2], &i2, &p2);
    CHECK(i0 == i1 && i0 == i2 && fabsf(p0 - p1) < 1e-5f && fabsf(p0 - p2) < 1e-5f, "batch top-1 %zu %g / %zu %g, alone %zu %g", i1, p1, i2, p2, i0, p0);
    CHECK(cifar_result_error(results[0]) == NULL, "batch[0] has no error");
    cifar_result *again[3] = {(cifar_result *)1, (cifar_result *)1, (cifar_result *)1};
    expect(cifar_classify_batch(c, NULL, 3, 1, again), CIFAR_STATUS_INVALID_ARGUMENT, "images", "classify_batch(NULL images)");
    for (int k = 0; k < 3; k++) CHECK(again[k] == NULL, "a failed batch leaves its slots null");
    cifar_image nameless[1] = {{png, png_len, NULL}};
    cifar_result *one[1] = {NULL};
    expect(cifar_classify_batch(c, nameless, 1, 1, one), CIFAR_STATUS_OK, NULL, "classify_batch(an image without a name)");
    CHECK(cifar_result_status(one[0]) == CIFAR_STATUS_INVALID_ARGUMENT, "a nameless image is its own error");
    cifar_result_free(one[0]);

    /* Two threads on one classifier, and two with their own: the answers of one thread. */
    struct job jobs[4];
    pthread_t threads[4];
    for (int t = 0; t < 4; t++) {
        jobs[t] = (struct job){t < 2 ? c : NULL, model, png, png_len, i0, p0, 0};
        pthread_create(&threads[t], NULL, classify_many, &jobs[t]);
    }
    for (int t = 0; t < 4; t++) {
        pthread_join(threads[t], NULL);
        CHECK(jobs[t].mismatches == 0, "thread %d (%s classifier): %d answers differ", t, t < 2 ? "shared" : "own", jobs[t].mismatches);
    }
    printf("abi: 4 threads (2 sharing a classifier, 2 with their own) x 20 images agree with one thread\n");

    for (int k = 0; k < 3; k++) cifar_result_free(results[k]);
    cifar_result_free(encoded);
    cifar_result_free(pixels);
    cifar_result_free(padded);
    cifar_classifier_free(c);
    free(png);
    free(rgb);
    free(broken);
    free(rows);
    if (failures) {
        fprintf(stderr, "abi: %d checks failed\n", failures);
        return 1;
    }
    printf("abi: all checks passed\n");
    return 0;
}
