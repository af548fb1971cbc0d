//! The CPU convolution (`trainer::ops::conv`) against Burn's own on random inputs: the forward pass
//! and the gradients of the input, the weight and the bias, for every convolution shape the two
//! models train (the CNN's four; VGG16's thirteen at 32x32, as `--freeze none` trains them) and
//! for strides, dilations, asymmetric padding and odd sizes.
//!
//! Burn's reference is `Conv2d::forward` on `Autodiff<Flex>`: flex's forward, Burn's generic
//! gradients (a transposed convolution for the input, a convolution over swapped axes for the
//! weight).

use burn::backend::{Autodiff, Flex};
use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::PaddingConfig2d;
use burn::prelude::*;
use burn::tensor::Distribution;
use trainer::ops::conv;

type B = Autodiff<Flex>;

/// Largest difference relative to the reference's largest magnitude.
fn relative_error(got: &Tensor<Flex, 4>, want: &Tensor<Flex, 4>) -> f32 {
    let scale = want.clone().abs().max().into_scalar().max(1e-6);
    let diff = (got.clone() - want.clone()).abs().max().into_scalar();
    diff / scale
}

struct Case {
    name: &'static str,
    batch: usize,
    channels: [usize; 2],
    input: [usize; 2],
    kernel: [usize; 2],
    stride: [usize; 2],
    dilation: [usize; 2],
    padding: PaddingConfig2d,
    bias: bool,
    /// Whether the input takes part in training (its gradient is wanted).
    input_grad: bool,
    /// Whether a ReLU follows (`conv::forward_relu` against `relu(Conv2d::forward)`).
    relu: bool,
}

impl Case {
    fn new(
        name: &'static str,
        batch: usize,
        channels: [usize; 2],
        side: usize,
        same: bool,
    ) -> Self {
        Case {
            name,
            batch,
            channels,
            input: [side, side],
            kernel: [3, 3],
            stride: [1, 1],
            dilation: [1, 1],
            padding: if same {
                PaddingConfig2d::Same
            } else {
                PaddingConfig2d::Valid
            },
            bias: true,
            input_grad: true,
            relu: false,
        }
    }

    fn with_relu(mut self) -> Self {
        self.relu = true;
        self
    }

    fn check(&self) {
        let device = Default::default();
        let mut layer: Conv2d<B> = Conv2dConfig::new(self.channels, self.kernel)
            .with_stride(self.stride)
            .with_dilation(self.dilation)
            .with_padding(self.padding.clone())
            .with_bias(self.bias)
            .init(&device);
        // Keras-like magnitudes: weights ~ U(-0.2, 0.2), a non-zero bias.
        layer.weight = Param::from_tensor(
            layer
                .weight
                .val()
                .random_like(Distribution::Uniform(-0.2, 0.2)),
        );
        if let Some(b) = &layer.bias {
            layer.bias = Some(Param::from_tensor(
                b.val().random_like(Distribution::Uniform(-0.5, 0.5)),
            ));
        }
        let [h, w] = self.input;
        let x0 = Tensor::<Flex, 4>::random(
            [self.batch, self.channels[0], h, w],
            Distribution::Normal(0.0, 1.0),
            &device,
        );

        let run = |ours: bool| {
            let x = Tensor::<B, 4>::from_inner(x0.clone());
            let x = if self.input_grad { x.require_grad() } else { x };
            let y = match (ours, self.relu) {
                (true, false) => conv::forward(&layer, x.clone()),
                (true, true) => conv::forward_relu(&layer, x.clone()),
                (false, false) => layer.forward(x.clone()),
                (false, true) => burn::tensor::activation::relu(layer.forward(x.clone())),
            };
            // A loss whose output gradient varies over every element.
            let probe = Tensor::<B, 4>::from_inner(
                y.clone()
                    .inner()
                    .random_like(Distribution::Uniform(-1.0, 1.0)),
            );
            (x, y, probe)
        };
        // The same probe for both: drawn once, from the reference's output shape.
        let (x_ref, y_ref, probe) = run(false);
        let before = conv::cpu_passes();
        let (x_ours, y_ours, _) = run(true);
        assert_eq!(y_ours.dims(), y_ref.dims(), "{}: output shape", self.name);
        let err = relative_error(&y_ours.clone().inner(), &y_ref.clone().inner());
        assert!(err < 1e-5, "{}: forward differs by {err:e}", self.name);

        let grads_ref = (y_ref * probe.clone()).sum().backward();
        let grads_ours = (y_ours * probe).sum().backward();
        // The CPU kernels computed "ours", once each way (not Burn's path under another name;
        // the tests take turns, so no other test's passes are counted).
        let after = conv::cpu_passes();
        assert_eq!(
            (
                after.forward - before.forward,
                after.backward - before.backward
            ),
            (1, 1),
            "{}: passes of the CPU kernels",
            self.name
        );

        let weight_ref = layer
            .weight
            .grad(&grads_ref)
            .expect("reference weight gradient");
        let weight_ours = layer.weight.grad(&grads_ours).expect("weight gradient");
        let err = relative_error(&weight_ours, &weight_ref);
        assert!(
            err < 1e-4,
            "{}: weight gradient differs by {err:e}",
            self.name
        );

        if let Some(bias) = &layer.bias {
            let want = bias.grad(&grads_ref).expect("reference bias gradient");
            let got = bias.grad(&grads_ours).expect("bias gradient");
            let err = relative_error(&got.unsqueeze(), &want.unsqueeze());
            assert!(
                err < 1e-4,
                "{}: bias gradient differs by {err:e}",
                self.name
            );
        }

        if self.input_grad {
            let want = x_ref.grad(&grads_ref).expect("reference input gradient");
            let got = x_ours.grad(&grads_ours).expect("input gradient");
            let err = relative_error(&got, &want);
            assert!(
                err < 1e-4,
                "{}: input gradient differs by {err:e}",
                self.name
            );
        } else {
            assert!(
                x_ours.grad(&grads_ours).is_none(),
                "{}: an input that does not train got a gradient",
                self.name
            );
        }
    }
}

#[test]
fn the_cnn_convolutions_match_burn() {
    let _seed = trainer::train::take_turn();
    B::seed(&Default::default(), 7);
    let mut first = Case::new("cnn conv1 3->32 same 32x32", 5, [3, 32], 32, true);
    first.input_grad = false; // the images: no gradient, as in training
    first.check();
    Case::new("cnn conv2 32->32 valid 32x32", 5, [32, 32], 32, false).check();
    Case::new("cnn conv3 32->64 same 15x15", 5, [32, 64], 15, true).check();
    Case::new("cnn conv4 64->64 valid 15x15", 5, [64, 64], 15, false).check();
    // As the CNN trains them: each followed by a ReLU, fused.
    let mut first = Case::new("cnn conv1+relu", 5, [3, 32], 32, true).with_relu();
    first.input_grad = false;
    first.check();
    Case::new("cnn conv2+relu", 5, [32, 32], 32, false)
        .with_relu()
        .check();
    Case::new("cnn conv3+relu", 5, [32, 64], 15, true)
        .with_relu()
        .check();
    Case::new("cnn conv4+relu", 1, [64, 64], 15, false)
        .with_relu()
        .check();
}

#[test]
fn the_vgg16_convolutions_match_burn() {
    let _seed = trainer::train::take_turn();
    B::seed(&Default::default(), 8);
    // (in, out, side) of the 13 convolutions at 32x32: blocks 1 to 5.
    let shapes = [
        (3, 64, 32),
        (64, 64, 32),
        (64, 128, 16),
        (128, 128, 16),
        (128, 256, 8),
        (256, 256, 8),
        (256, 512, 4),
        (512, 512, 4),
        (512, 512, 2),
    ];
    for (i, &(c_in, c_out, side)) in shapes.iter().enumerate() {
        let mut case = Case::new("vgg16", 3, [c_in, c_out], side, true);
        case.input_grad = i > 0;
        case.check();
    }
    // Block 5 as the article trains it: 32 images a batch (one product over all of them).
    Case::new("vgg16 block 5, batch 32", 32, [512, 512], 2, true).check();
    Case::new("vgg16 block 5 + relu, batch 32", 32, [512, 512], 2, true)
        .with_relu()
        .check();
}

#[test]
fn strides_dilations_padding_and_odd_sizes_match_burn() {
    let _seed = trainer::train::take_turn();
    B::seed(&Default::default(), 9);
    let base = |name| Case::new(name, 3, [4, 6], 9, true);
    let cases = [
        Case {
            stride: [2, 2],
            ..base("stride 2, same")
        },
        Case {
            stride: [2, 3],
            padding: PaddingConfig2d::Explicit(1, 2, 0, 1),
            ..base("stride 2x3, asymmetric padding")
        },
        Case {
            dilation: [2, 2],
            padding: PaddingConfig2d::Explicit(2, 2, 2, 2),
            ..base("dilation 2")
        },
        Case {
            input: [7, 5],
            kernel: [5, 3],
            padding: PaddingConfig2d::Valid,
            ..base("odd sizes, 5x3 kernel")
        },
        Case {
            input: [6, 11],
            kernel: [1, 1],
            bias: false,
            ..base("1x1, no bias")
        },
        Case {
            batch: 37,
            input: [3, 3],
            ..base("many small maps: groups of images, a partial last group")
        },
        Case {
            input: [4, 4],
            kernel: [5, 5],
            padding: PaddingConfig2d::Explicit(2, 2, 2, 2),
            ..base("kernel larger than the map")
        },
        // Stride 1 on maps wide enough to be unfolded on the padded grid.
        Case {
            input: [10, 24],
            padding: PaddingConfig2d::Explicit(1, 2, 0, 1),
            ..base("grid: asymmetric padding")
        },
        Case {
            input: [12, 30],
            dilation: [2, 2],
            padding: PaddingConfig2d::Explicit(2, 2, 2, 2),
            ..base("grid: dilation 2")
        },
        Case {
            input: [11, 40],
            kernel: [5, 3],
            padding: PaddingConfig2d::Valid,
            ..base("grid: 5x3 kernel, valid")
        },
        Case {
            batch: 7,
            input: [12, 16],
            ..base("grid: groups of images, a partial last group")
        },
        // With a ReLU: each path of the output gradient (one image filling a product, groups,
        // the grid, no bias).
        Case {
            batch: 2,
            input: [64, 64],
            stride: [2, 2],
            ..base("relu: stride 2, one image a product")
        }
        .with_relu(),
        Case {
            batch: 37,
            input: [3, 3],
            ..base("relu: groups of small maps")
        }
        .with_relu(),
        Case {
            input: [11, 40],
            kernel: [5, 3],
            padding: PaddingConfig2d::Valid,
            ..base("relu: grid, 5x3 kernel, valid")
        }
        .with_relu(),
        Case {
            input: [6, 11],
            kernel: [1, 1],
            bias: false,
            ..base("relu: 1x1, no bias")
        }
        .with_relu(),
    ];
    for case in cases {
        case.check();
    }
}

/// Grids with enough input channels are computed channels-last (the weight gradient from 8
/// input channels on, the forward pass from 32 input and output channels on): the same odd
/// cases on that path.
#[test]
fn channels_last_grids_match_burn() {
    let _seed = trainer::train::take_turn();
    B::seed(&Default::default(), 10);
    let base = |name, channels| Case::new(name, 3, channels, 9, true);
    let cases = [
        Case {
            input: [10, 24],
            padding: PaddingConfig2d::Explicit(1, 2, 0, 1),
            ..base("channels-last: asymmetric padding", [32, 40])
        },
        Case {
            input: [11, 40],
            kernel: [5, 3],
            padding: PaddingConfig2d::Valid,
            ..base("channels-last: 5x3 kernel, valid", [32, 32])
        },
        Case {
            input: [12, 30],
            dilation: [2, 1],
            padding: PaddingConfig2d::Explicit(2, 1, 2, 1),
            ..base("channels-last: vertical dilation 2", [36, 32])
        },
        Case {
            batch: 7,
            input: [12, 16],
            ..base(
                "channels-last: groups of images, a partial last group",
                [32, 70],
            )
        },
        Case {
            input: [9, 20],
            bias: false,
            ..base(
                "channels-last weight gradient, NCHW forward, no bias",
                [8, 16],
            )
        },
        Case {
            input: [9, 26],
            kernel: [3, 5],
            padding: PaddingConfig2d::Explicit(1, 2, 1, 1),
            ..base("channels-last: 3x5 kernel (views 5 taps wide)", [32, 33])
        },
        Case {
            batch: 2,
            input: [24, 30],
            kernel: [1, 1],
            padding: PaddingConfig2d::Valid,
            ..base(
                "channels-last: 1x1, one image a product (no grid slack)",
                [32, 32],
            )
        },
        Case {
            batch: 2,
            input: [24, 30],
            kernel: [1, 1],
            padding: PaddingConfig2d::Valid,
            bias: false,
            ..base("channels-last weight gradient: 1x1, 8 channels", [8, 12])
        },
        Case {
            input: [11, 40],
            kernel: [5, 3],
            padding: PaddingConfig2d::Valid,
            ..base("channels-last + relu: 5x3 kernel, valid", [32, 32])
        }
        .with_relu(),
        Case {
            batch: 7,
            input: [12, 16],
            ..base(
                "channels-last weight gradient + relu: groups of images",
                [12, 16],
            )
        }
        .with_relu(),
    ];
    for case in cases {
        case.check();
    }
}

/// Which matrix-product kernels this CPU runs; `EXPECT_GEMM_KERNEL` (set by
/// `trainer/tests/cpu_fallback.sh`, e.g. under an emulated AVX2-only CPU) says which it must be.
#[test]
fn gemm_kernel() {
    let kernel = conv::gemm::kernel();
    eprintln!("gemm kernel: {kernel}");
    if let Ok(expected) = std::env::var("EXPECT_GEMM_KERNEL") {
        assert_eq!(kernel, expected);
    }
}
