/* The runtime's image classifier for C and C++ (runtime/c/README.md). Made by cbindgen from
 * runtime/c/src/: edit that, not this. */

#ifndef CIFAR_ONNX_H
#define CIFAR_ONNX_H

#include <stddef.h>
#include <stdint.h>

/**
 * What a call did. `CIFAR_STATUS_OK` is 0; every other value comes with a message
 * (`cifar_last_error`).
 */
typedef enum cifar_status {
  /**
   * The call did what it was asked.
   */
  CIFAR_STATUS_OK = 0,
  /**
   * A null pointer, a string that is not UTF-8, a value out of range.
   */
  CIFAR_STATUS_INVALID_ARGUMENT = 1,
  /**
   * A file could not be read.
   */
  CIFAR_STATUS_IO = 2,
  /**
   * Not a usable image classifier (or a value in its metadata is unusable).
   */
  CIFAR_STATUS_BAD_MODEL = 3,
  /**
   * An image that cannot be decoded or used.
   */
  CIFAR_STATUS_BAD_IMAGE = 4,
  /**
   * Pixels or sizes that do not fit (a buffer too small for its width, height and stride).
   */
  CIFAR_STATUS_BAD_INPUT = 5,
  /**
   * The engine failed to load or run the model.
   */
  CIFAR_STATUS_ENGINE = 6,
  /**
   * ONNX Runtime was asked for and could not be loaded.
   */
  CIFAR_STATUS_ORT_UNAVAILABLE = 7,
  /**
   * A failure inside the library that it caught (a bug: please report the message).
   */
  CIFAR_STATUS_INTERNAL = 8,
} cifar_status;

/**
 * A loaded model. Opened by [`cifar_classifier_open`] or [`cifar_classifier_open_bytes`], freed
 * by [`cifar_classifier_free`].
 */
typedef struct cifar_classifier cifar_classifier;

/**
 * How to open a classifier. Made by [`cifar_options_new`], freed by [`cifar_options_free`].
 */
typedef struct cifar_options cifar_options;

/**
 * The most probable classes of one image, most probable first, or why there are none (in a
 * batch). Freed by [`cifar_result_free`].
 */
typedef struct cifar_result cifar_result;

/**
 * What the model is and how images are prepared for it. Its strings belong to the classifier
 * and live as long as it does.
 */
typedef struct cifar_model_info {
  /**
   * The model's file (or the name it was opened with).
   */
  const char *model;
  /**
   * The engine that runs it: `"ort"` or `"tract"`.
   */
  const char *engine;
  /**
   * The execution provider that runs it (`"cpu"`, `"cuda"`, ...).
   */
  const char *provider;
  /**
   * Input width in pixels.
   */
  uint32_t width;
  /**
   * Input height in pixels.
   */
  uint32_t height;
  /**
   * How many classes the model tells apart (0 when the file does not say).
   */
  size_t num_classes;
  /**
   * `"NCHW"` or `"NHWC"`.
   */
  const char *layout;
  /**
   * `"RGB"` or `"BGR"`.
   */
  const char *channel_order;
  /**
   * Multiplier applied to 0..255 pixel values.
   */
  float scale;
  /**
   * Subtracted after scaling, per channel in the model's order.
   */
  float mean[3];
  /**
   * Divided by last, per channel in the model's order.
   */
  float std[3];
  /**
   * The quantized variant (`"int8-weights"`, `"int8-static"`, `"fp16"`), or null for float32.
   */
  const char *variant;
} cifar_model_info;

/**
 * One encoded image of a batch.
 */
typedef struct cifar_image {
  /**
   * The encoded bytes (PNG, JPEG, BMP, GIF or WebP).
   */
  const uint8_t *bytes;
  /**
   * How many.
   */
  size_t len;
  /**
   * Its name in messages (a file name, say).
   */
  const char *name;
} cifar_image;

/**
 * One class of a result.
 */
typedef struct cifar_class {
  /**
   * The class's index in the model's output.
   */
  size_t index;
  /**
   * Its name (the index as text where the model names none); owned by the result.
   */
  const char *label;
  /**
   * Its probability, 0 to 1.
   */
  float probability;
} cifar_class;

#ifdef __cplusplus
extern "C" {
#endif // __cplusplus

/**
 * The library's version, e.g. `"0.1.0"` (a static string: do not free it).
 */
const char *cifar_version(void);

/**
 * The message of the last call that failed on this thread, naming the file and the problem
 * (an empty string when none has failed). It stays valid until the next failing call on this
 * thread; do not free it.
 */
const char *cifar_last_error(void);

/**
 * Keeps the panics that the library catches and returns as errors (tract panics on some
 * malformed models) off stderr, so that the returned error is all a user sees. It installs a
 * panic hook for the process, once, that hands every other panic to the hook before it; call it
 * at start-up if you want it (the library changes nothing by itself).
 */
void cifar_quiet_caught_panics(void);

/**
 * New options: engine `auto` (ONNX Runtime where it loads, else tract), the engine's default
 * threads, ONNX Runtime from `ORT_DYLIB_PATH` or beside the program. Never null.
 */
struct cifar_options *cifar_options_new(void);

/**
 * Frees options (null is allowed and does nothing).
 *
 * # Safety
 * `options` is null or came from [`cifar_options_new`] and is not used again.
 */
void cifar_options_free(struct cifar_options *options);

/**
 * Which engine runs the model: `"auto"`, `"ort"` or `"tract"`.
 *
 * # Safety
 * `options` is null or live; `engine` is null or a NUL-terminated string.
 */
enum cifar_status cifar_options_set_engine(struct cifar_options *options, const char *engine);

/**
 * Threads the engine may use for one model run, 1 to 256; 0 means the engine's default.
 *
 * # Safety
 * `options` is null or live.
 */
enum cifar_status cifar_options_set_threads(struct cifar_options *options, size_t threads);

/**
 * The ONNX Runtime shared library to load (`libonnxruntime.so.<version>`), for engines `auto`
 * and `ort`.
 *
 * # Safety
 * `options` is null or live; `path` is null or a NUL-terminated string.
 */
enum cifar_status cifar_options_set_ort_library(struct cifar_options *options, const char *path);

/**
 * Opens the ONNX model at `path` with `options` (null: the defaults). On success `*out` is the
 * classifier; on failure it is null and the status and [`cifar_last_error`] say why, naming the
 * file.
 *
 * # Safety
 * `path` is null or a NUL-terminated string; `options` is null or live; `out` is null or
 * writable.
 */
enum cifar_status cifar_classifier_open(const char *path,
                                        const struct cifar_options *options,
                                        struct cifar_classifier **out);

/**
 * Opens an ONNX model held in memory (`len` bytes at `bytes`, which the library copies what it
 * needs of); `name` names it in messages. Otherwise as [`cifar_classifier_open`].
 *
 * # Safety
 * `bytes` is null or `len` readable bytes; `name` is null or a NUL-terminated string; `options`
 * is null or live; `out` is null or writable.
 */
enum cifar_status cifar_classifier_open_bytes(const uint8_t *bytes,
                                              size_t len,
                                              const char *name,
                                              const struct cifar_options *options,
                                              struct cifar_classifier **out);

/**
 * Frees a classifier (null is allowed and does nothing). No other call may be using it.
 *
 * # Safety
 * `classifier` is null or came from an open function and is not used again.
 */
void cifar_classifier_free(struct cifar_classifier *classifier);

/**
 * Fills `*out` with what the model is and how images are prepared for it.
 *
 * # Safety
 * `classifier` is null or live; `out` is null or writable.
 */
enum cifar_status cifar_classifier_info(const struct cifar_classifier *classifier,
                                        struct cifar_model_info *out);

/**
 * The name of class `index` (the index as text where the model names none), owned by the
 * classifier; null when `classifier` is null or `index` is not a class.
 *
 * # Safety
 * `classifier` is null or live.
 */
const char *cifar_classifier_class_name(const struct cifar_classifier *classifier, size_t index);

/**
 * Everything the library knows of the model, as one line of JSON (input name and shape,
 * preprocessing, class names, variant, opset, engine and provider). Free it with
 * [`cifar_string_free`]; null when `classifier` is null.
 *
 * # Safety
 * `classifier` is null or live.
 */
char *cifar_classifier_describe(const struct cifar_classifier *classifier);

/**
 * Frees a string the library made (null is allowed and does nothing).
 *
 * # Safety
 * `s` is null or came from [`cifar_classifier_describe`] and is not used again.
 */
void cifar_string_free(char *s);

/**
 * Classifies one encoded image (PNG, JPEG, BMP, GIF or WebP; `len` bytes at `bytes`), resized
 * as the model's preprocessing says; `name` names it in messages. On success `*out` holds its
 * `top_k` most probable classes (at least 1); on failure it is null.
 *
 * # Safety
 * `classifier` is null or live; `bytes` is null or `len` readable bytes; `name` is null or a
 * NUL-terminated string; `out` is null or writable.
 */
enum cifar_status cifar_classify_encoded(const struct cifar_classifier *classifier,
                                         const uint8_t *bytes,
                                         size_t len,
                                         const char *name,
                                         size_t top_k,
                                         struct cifar_result **out);

/**
 * Classifies one image given as 8-bit RGB pixels: `height` rows of `width` pixels, each row
 * `stride` bytes after the one before (`stride >= 3 * width`), in a buffer of `len` bytes. It is
 * resized as encoded images are. Otherwise as [`cifar_classify_encoded`]; a buffer too small for
 * its sizes is `CIFAR_STATUS_BAD_INPUT`.
 *
 * # Safety
 * `classifier` is null or live; `pixels` is null or `len` readable bytes; `out` is null or
 * writable.
 */
enum cifar_status cifar_classify_rgb8(const struct cifar_classifier *classifier,
                                      const uint8_t *pixels,
                                      size_t len,
                                      uint32_t width,
                                      uint32_t height,
                                      size_t stride,
                                      size_t top_k,
                                      struct cifar_result **out);

/**
 * Classifies `count` encoded images, running them through the model together. `results` must
 * have room for `count` pointers: each gets a result, which says by itself whether that image
 * was classified ([`cifar_result_status`], [`cifar_result_error`]), so one bad image does not
 * stop the rest. The call fails only for bad arguments (then every slot is null) or when the
 * model run itself fails.
 *
 * # Safety
 * `classifier` is null or live; `images` is null or `count` readable [`CifarImage`]s whose
 * pointers follow [`cifar_classify_encoded`]'s rules; `results` is null or room for `count`
 * pointers.
 */
enum cifar_status cifar_classify_batch(const struct cifar_classifier *classifier,
                                       const struct cifar_image *images,
                                       size_t count,
                                       size_t top_k,
                                       struct cifar_result **results);

/**
 * Whether the result's image was classified (`CIFAR_STATUS_OK`) or why not (in a batch);
 * `CIFAR_STATUS_INVALID_ARGUMENT` for a null result.
 *
 * # Safety
 * `result` is null or live.
 */
enum cifar_status cifar_result_status(const struct cifar_result *result);

/**
 * Why the result's image was not classified, naming it; null when it was (or `result` is null).
 * Owned by the result.
 *
 * # Safety
 * `result` is null or live.
 */
const char *cifar_result_error(const struct cifar_result *result);

/**
 * How many classes the result holds (0 for an image that was not classified or a null result).
 *
 * # Safety
 * `result` is null or live.
 */
size_t cifar_result_count(const struct cifar_result *result);

/**
 * Fills `*out` with the result's `index`-th most probable class (0 is the top-1).
 *
 * # Safety
 * `result` is null or live; `out` is null or writable.
 */
enum cifar_status cifar_result_class(const struct cifar_result *result,
                                     size_t index,
                                     struct cifar_class *out);

/**
 * Frees a result (null is allowed and does nothing).
 *
 * # Safety
 * `result` is null or came from a classify call and is not used again.
 */
void cifar_result_free(struct cifar_result *result);

#ifdef __cplusplus
}  // extern "C"
#endif  // __cplusplus

#endif  /* CIFAR_ONNX_H */
