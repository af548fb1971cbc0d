// The header in a C++ program: it compiles with -Wall -Wextra -Werror, links and runs.
#include "cifar_onnx.h"

#include <cstdio>
#include <memory>

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    std::unique_ptr<cifar_options, decltype(&cifar_options_free)> options(cifar_options_new(), cifar_options_free);
    cifar_options_set_engine(options.get(), "tract");
    cifar_classifier *raw = nullptr;
    if (cifar_classifier_open(argv[1], options.get(), &raw) != CIFAR_STATUS_OK) {
        std::fprintf(stderr, "%s\n", cifar_last_error());
        return 1;
    }
    std::unique_ptr<cifar_classifier, decltype(&cifar_classifier_free)> classifier(raw, cifar_classifier_free);
    cifar_model_info info{};
    cifar_classifier_info(classifier.get(), &info);
    std::printf("c++: %s, %ux%u, %zu classes, engine %s\n", info.model, info.width, info.height, info.num_classes, info.engine);
    return info.num_classes > 0 ? 0 : 1;
}
