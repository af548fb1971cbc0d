//! How pixels become a model's input tensor: one [`InputConfig`], shared by the trainer (which
//! writes it into the exported model's metadata) and the runtime (which reads it back).

pub mod decode;

pub use decode::*;

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

/// Memory layout of the input tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Layout {
    /// `[batch, channels, height, width]`
    Nchw,
    /// `[batch, height, width, channels]`
    Nhwc,
}

/// Order of the three colour channels in the input tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ChannelOrder {
    /// Red, green, blue.
    Rgb,
    /// Blue, green, red (Caffe and Keras' VGG16).
    Bgr,
}

impl Layout {
    /// `"NCHW"` or `"NHWC"`, as the metadata writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Layout::Nchw => "NCHW",
            Layout::Nhwc => "NHWC",
        }
    }
}

impl ChannelOrder {
    /// `"RGB"` or `"BGR"`, as the metadata writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelOrder::Rgb => "RGB",
            ChannelOrder::Bgr => "BGR",
        }
    }
}

impl std::str::FromStr for Layout {
    type Err = String;

    /// `NCHW` or `NHWC`, in any case.
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_uppercase().as_str() {
            "NCHW" => Ok(Layout::Nchw),
            "NHWC" => Ok(Layout::Nhwc),
            _ => Err(format!("unknown layout {s:?} (NCHW or NHWC)")),
        }
    }
}

impl std::str::FromStr for ChannelOrder {
    type Err = String;

    /// `RGB` or `BGR`, in any case.
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_uppercase().as_str() {
            "RGB" => Ok(ChannelOrder::Rgb),
            "BGR" => Ok(ChannelOrder::Bgr),
            _ => Err(format!("unknown channel order {s:?} (RGB or BGR)")),
        }
    }
}

/// Preprocessing settings to put over a model's own (or over what its input shape implies):
/// what the runtime CLI's `--size`, `--layout`, `--scale`, `--mean`, `--std` and `--bgr` set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InputOverrides {
    /// `(height, width)`.
    pub size: Option<(usize, usize)>,
    /// The input tensor's layout.
    pub layout: Option<Layout>,
    /// The multiplier of 0..255 pixel values.
    pub scale: Option<f32>,
    /// Per-channel means (in the model's channel order), subtracted after scaling.
    pub mean: Option<[f32; 3]>,
    /// Per-channel standard deviations.
    pub std: Option<[f32; 3]>,
    /// The order of the colour channels.
    pub channel_order: Option<ChannelOrder>,
}

impl InputOverrides {
    /// An image size written `HxW`, or `N` for `NxN`: `(height, width)`, each at least 1.
    ///
    /// # Errors
    /// When it is neither.
    pub fn parse_size(s: &str) -> Result<(usize, usize), String> {
        let side = |v: &str| v.trim().parse::<usize>().ok().filter(|&v| v > 0);
        let size = match s.split_once('x') {
            Some((h, w)) => side(h).zip(side(w)),
            None => side(s).map(|n| (n, n)),
        };
        size.ok_or_else(|| format!("{s:?} is not an image size (N or HxW)"))
    }

    /// Three comma-separated numbers (`0.485,0.456,0.406`).
    ///
    /// # Errors
    /// When there are not three, or one is not a number.
    pub fn parse_triple(s: &str) -> Result<[f32; 3], String> {
        let values: Vec<f32> = s
            .split(',')
            .map(|v| v.trim().parse::<f32>())
            .collect::<Result<_, _>>()
            .map_err(|_| format!("{s:?}: expected three comma-separated numbers"))?;
        <[f32; 3]>::try_from(values)
            .map_err(|_| format!("{s:?}: expected three comma-separated numbers"))
    }

    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        *self == InputOverrides::default()
    }

    /// `base` with these settings on top, validated.
    ///
    /// # Errors
    /// When the result is unusable (see [`InputConfig::validate`]).
    pub fn apply(&self, mut base: InputConfig) -> Result<InputConfig, MetadataError> {
        if let Some((height, width)) = self.size {
            (base.height, base.width) = (height, width);
        }
        base.layout = self.layout.unwrap_or(base.layout);
        base.scale = self.scale.unwrap_or(base.scale);
        base.mean = self.mean.unwrap_or(base.mean);
        base.std = self.std.unwrap_or(base.std);
        base.channel_order = self.channel_order.unwrap_or(base.channel_order);
        base.validate()?;
        Ok(base)
    }
}

/// Everything needed to turn an 8-bit RGB image into the model's input:
/// `value = (pixel * scale - mean[c]) / std[c]`, with `c` in the model's channel order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputConfig {
    /// Input height in pixels.
    pub height: usize,
    /// Input width in pixels.
    pub width: usize,
    /// Where the channel axis is.
    pub layout: Layout,
    /// The order of the colour channels.
    pub channel_order: ChannelOrder,
    /// Multiplier applied to 0..255 pixel values.
    pub scale: f32,
    /// Subtracted after scaling, per channel in the model's order.
    pub mean: [f32; 3],
    /// Divided by last, per channel in the model's order.
    pub std: [f32; 3],
}

/// A preprocessing value that cannot be used: which metadata key, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct MetadataError {
    /// The metadata key (see [`keys`]).
    pub key: String,
    /// Why the value cannot be used.
    pub reason: String,
}

impl MetadataError {
    fn new(key: &str, reason: impl Into<String>) -> Self {
        MetadataError {
            key: key.to_string(),
            reason: reason.into(),
        }
    }
}

/// The largest input side a model may ask for, in pixels: one image of `MAX_INPUT_SIDE` squared is
/// 192 MiB as an input tensor.
pub const MAX_INPUT_SIDE: usize = 4096;

/// Metadata keys written into exported models (`metadata_props`).
pub mod keys {
    /// JSON array of class names, indexed by output position.
    pub const CLASSES: &str = "classes";
    /// `NCHW` or `NHWC`.
    pub const LAYOUT: &str = "input_layout";
    /// `HxW`, e.g. `32x32`.
    pub const SIZE: &str = "input_size";
    /// `RGB` or `BGR`.
    pub const CHANNEL_ORDER: &str = "channel_order";
    /// Multiplier applied to 0..255 pixel values before the mean is subtracted.
    pub const SCALE: &str = "scale";
    /// Three comma-separated means, in the model's channel order.
    pub const MEAN: &str = "mean";
    /// Three comma-separated standard deviations, in the model's channel order.
    pub const STD: &str = "std";
    /// `probabilities` (softmax applied in the graph) or `logits`.
    pub const OUTPUT: &str = "output";
    /// Which quantized variant of a float32 file the model is (`runtime::quantize`), if any.
    pub const QUANTIZATION_VARIANT: &str = "quantization_variant";
    /// [`QUANTIZATION_VARIANT`]'s value for int8 weights that feed float operators.
    pub const INT8_WEIGHTS: &str = "int8-weights";

    /// ONNX's standard image metadata (onnx `docs/MetadataProps.md`): written beside this
    /// project's keys, and read from models that carry only these.
    pub mod standard {
        /// `Rgb8` or `Bgr8` here (`Gray8`, `Rgba8`, `Bgra8` are refused).
        pub const PIXEL_FORMAT: &str = "Image.BitmapPixelFormat";
        /// `SRGB`: pixels are fed as stored (`Linear` is refused).
        pub const GAMMA: &str = "Image.ColorSpaceGamma";
        /// `NominalRange_0_255`, `Normalized_0_1` or `Normalized_1_1` (`NominalRange_16_235`
        /// is refused).
        pub const RANGE: &str = "Image.NominalPixelRange";
    }
}

impl InputConfig {
    /// Pixels scaled to `[0, 1]`, RGB, NCHW: what the CIFAR CNN is trained on.
    pub fn unit_rgb(side: usize) -> Self {
        InputConfig {
            height: side,
            width: side,
            layout: Layout::Nchw,
            channel_order: ChannelOrder::Rgb,
            scale: 1.0 / 255.0,
            mean: [0.0; 3],
            std: [1.0; 3],
        }
    }

    /// The input shape for `batch` images.
    pub fn shape(&self, batch: usize) -> [usize; 4] {
        match self.layout {
            Layout::Nchw => [batch, 3, self.height, self.width],
            Layout::Nhwc => [batch, self.height, self.width, 3],
        }
    }

    /// The `metadata_props` entries that describe this preprocessing.
    pub fn to_metadata(&self) -> Vec<(String, String)> {
        let triple = |v: [f32; 3]| format!("{},{},{}", v[0], v[1], v[2]);
        let pixel_format = match self.channel_order {
            ChannelOrder::Rgb => "Rgb8",
            ChannelOrder::Bgr => "Bgr8",
        };
        let mut entries = vec![
            (keys::LAYOUT.into(), self.layout.as_str().into()),
            (keys::SIZE.into(), format!("{}x{}", self.height, self.width)),
            (
                keys::CHANNEL_ORDER.into(),
                self.channel_order.as_str().into(),
            ),
            (keys::SCALE.into(), self.scale.to_string()),
            (keys::MEAN.into(), triple(self.mean)),
            (keys::STD.into(), triple(self.std)),
            (keys::standard::PIXEL_FORMAT.into(), pixel_format.into()),
            (keys::standard::GAMMA.into(), "SRGB".into()),
        ];
        if let Some(range) = self.standard_range() {
            entries.push((keys::standard::RANGE.into(), range.into()));
        }
        entries
    }

    /// The standard name of this preprocessing's value range, when one describes it exactly
    /// (per-channel means or deviations have none).
    fn standard_range(&self) -> Option<&'static str> {
        let all = |v: [f32; 3], x: f32| v.iter().all(|&m| m == x);
        if !all(self.std, 1.0) {
            return None;
        }
        match (self.scale, all(self.mean, 0.0), all(self.mean, 1.0)) {
            (s, true, _) if s == 1.0 / 255.0 => Some("Normalized_0_1"),
            (1.0, true, _) => Some("NominalRange_0_255"),
            (s, _, true) if s == 2.0 / 255.0 => Some("Normalized_1_1"),
            _ => None,
        }
    }

    /// Applies ONNX's standard image keys ([`keys::standard`]) found in `meta`: the channel
    /// order from the pixel format, the scale and mean from the nominal range.
    ///
    /// # Errors
    /// When a value is unknown or asks for what this runtime does not feed (grey or four-channel
    /// pixels, linear gamma, the 16-235 video range); the message names the key.
    pub fn apply_standard_metadata(
        &mut self,
        meta: &HashMap<String, String>,
    ) -> Result<(), MetadataError> {
        let get = |k: &str| meta.get(k).map(|v| v.trim().to_ascii_lowercase());
        if let Some(format) = get(keys::standard::PIXEL_FORMAT) {
            self.channel_order = match format.as_str() {
                "rgb8" => ChannelOrder::Rgb,
                "bgr8" => ChannelOrder::Bgr,
                _ => {
                    return Err(MetadataError::new(
                        keys::standard::PIXEL_FORMAT,
                        format!("{format:?} pixels are not fed here (Rgb8 or Bgr8 are)"),
                    ))
                }
            };
        }
        if let Some(gamma) = get(keys::standard::GAMMA).filter(|g| g != "srgb") {
            return Err(MetadataError::new(
                keys::standard::GAMMA,
                format!("{gamma:?} is not supported (pixels are fed as stored, sRGB)"),
            ));
        }
        if let Some(range) = get(keys::standard::RANGE) {
            let (scale, mean) = match range.as_str() {
                "nominalrange_0_255" => (1.0, 0.0),
                "normalized_0_1" => (1.0 / 255.0, 0.0),
                "normalized_1_1" => (2.0 / 255.0, 1.0),
                _ => {
                    return Err(MetadataError::new(
                        keys::standard::RANGE,
                        format!("{range:?} is not supported (NominalRange_0_255, Normalized_0_1 or Normalized_1_1 are)"),
                    ))
                }
            };
            self.scale = scale;
            self.mean = [mean; 3];
            self.std = [1.0; 3];
        }
        Ok(())
    }

    /// Reads the preprocessing back from `metadata_props`; `Ok(None)` when the model carries none.
    ///
    /// # Errors
    /// When a key is missing beside `input_size`, a value does not parse, or it is unusable
    /// (see [`InputConfig::validate`]).
    pub fn from_metadata(meta: &HashMap<String, String>) -> Result<Option<Self>, MetadataError> {
        let Some(size) = meta.get(keys::SIZE) else {
            return Ok(None);
        };
        let get = |k: &str| {
            meta.get(k)
                .ok_or_else(|| MetadataError::new(k, format!("missing beside {}", keys::SIZE)))
        };
        // The metadata always writes both sides (no `N` for `NxN`).
        let (h, w) = InputOverrides::parse_size(size)
            .ok()
            .filter(|_| size.contains('x'))
            .ok_or_else(|| MetadataError::new(keys::SIZE, format!("expected HxW, got {size:?}")))?;
        let layout: Layout = get(keys::LAYOUT)?
            .parse()
            .map_err(|e: String| MetadataError::new(keys::LAYOUT, e))?;
        let channel_order: ChannelOrder = get(keys::CHANNEL_ORDER)?
            .parse()
            .map_err(|e: String| MetadataError::new(keys::CHANNEL_ORDER, e))?;
        let number = |k: &str, s: &str| {
            s.trim()
                .parse::<f32>()
                .map_err(|_| MetadataError::new(k, format!("{s:?} is not a number")))
        };
        let triple =
            |k: &str| InputOverrides::parse_triple(get(k)?).map_err(|e| MetadataError::new(k, e));
        let config = InputConfig {
            height: h,
            width: w,
            layout,
            channel_order,
            scale: number(keys::SCALE, get(keys::SCALE)?)?,
            mean: triple(keys::MEAN)?,
            std: triple(keys::STD)?,
        };
        config.validate()?;
        Ok(Some(config))
    }

    /// Checks every value before it is used: each side `1..=`[`MAX_INPUT_SIDE`] pixels, a finite,
    /// positive scale, finite means and finite, non-zero standard deviations. The error names
    /// the field by its metadata key (e.g. `input_size: 0x0 ...`).
    ///
    /// # Errors
    /// The first value out of bounds, by its key.
    pub fn validate(&self) -> Result<(), MetadataError> {
        let side_ok = |v: usize| (1..=MAX_INPUT_SIDE).contains(&v);
        if !side_ok(self.height) || !side_ok(self.width) {
            return Err(MetadataError::new(
                keys::SIZE,
                format!(
                    "{}x{} is not an image size (each side 1 to {MAX_INPUT_SIDE} pixels)",
                    self.height, self.width
                ),
            ));
        }
        if !(self.scale.is_finite() && self.scale > 0.0) {
            return Err(MetadataError::new(
                keys::SCALE,
                format!("{} is not a finite, positive pixel scale", self.scale),
            ));
        }
        if let Some(m) = self.mean.iter().find(|m| !m.is_finite()) {
            return Err(MetadataError::new(
                keys::MEAN,
                format!("{m} is not a finite mean"),
            ));
        }
        if let Some(s) = self.std.iter().find(|s| !s.is_finite() || **s == 0.0) {
            return Err(MetadataError::new(
                keys::STD,
                format!("{s} is not a finite, non-zero standard deviation"),
            ));
        }
        Ok(())
    }

    /// Converts planar 8-bit RGB images (`C,H,W` each, already `height x width`) into the input tensor.
    pub fn tensor_from_planar(&self, planar: &[u8]) -> Vec<f32> {
        let plane = self.height * self.width;
        let per_image = 3 * plane;
        let batch = planar.len() / per_image;
        let mut out = vec![0f32; batch * per_image];
        // Model channel `c` reads source plane `src[c]`.
        let src = match self.channel_order {
            ChannelOrder::Rgb => [0, 1, 2],
            ChannelOrder::Bgr => [2, 1, 0],
        };
        for (image, dst) in planar
            .chunks_exact(per_image)
            .zip(out.chunks_exact_mut(per_image))
        {
            for c in 0..3 {
                let (mean, inv_std) = (self.mean[c], 1.0 / self.std[c]);
                let plane_in = &image[src[c] * plane..(src[c] + 1) * plane];
                for (p, &v) in plane_in.iter().enumerate() {
                    let x = (f32::from(v) * self.scale - mean) * inv_std;
                    match self.layout {
                        Layout::Nchw => dst[c * plane + p] = x,
                        Layout::Nhwc => dst[p * 3 + c] = x,
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn sizes_triples_and_overrides_parse_and_apply_with_checks() {
        assert_eq!(InputOverrides::parse_size("32"), Ok((32, 32)));
        assert_eq!(InputOverrides::parse_size(" 24x40 "), Ok((24, 40)));
        for bad in ["0", "x", "3x", "-1", "32x0", "big"] {
            assert!(InputOverrides::parse_size(bad).is_err(), "{bad}");
        }
        assert_eq!(InputOverrides::parse_triple("1, 2,3"), Ok([1.0, 2.0, 3.0]));
        assert!(
            InputOverrides::parse_triple("1,2").is_err()
                && InputOverrides::parse_triple("1,2,x").is_err()
        );
        assert_eq!("nhwc".parse::<Layout>(), Ok(Layout::Nhwc));
        assert!("chw".parse::<Layout>().is_err());
        let base = InputConfig::unit_rgb(32);
        assert!(InputOverrides::default().is_empty());
        assert_eq!(
            InputOverrides::default().apply(base.clone()),
            Ok(base.clone())
        );
        let set = InputOverrides {
            size: Some((64, 48)),
            channel_order: Some(ChannelOrder::Bgr),
            ..InputOverrides::default()
        };
        let applied = set.apply(base.clone()).unwrap();
        assert_eq!((applied.height, applied.width), (64, 48));
        assert_eq!(applied.channel_order, ChannelOrder::Bgr);
        let zero_std = InputOverrides {
            std: Some([1.0, 0.0, 1.0]),
            ..InputOverrides::default()
        };
        let err = zero_std.apply(base).unwrap_err();
        assert!(err.to_string().contains("std"), "{err}");
    }

    use super::*;

    #[test]
    fn metadata_round_trip() {
        let mut c = InputConfig::unit_rgb(32);
        c.layout = Layout::Nhwc;
        c.channel_order = ChannelOrder::Bgr;
        c.mean = [103.939, 116.779, 123.68];
        let meta: HashMap<_, _> = c.to_metadata().into_iter().collect();
        assert_eq!(InputConfig::from_metadata(&meta).unwrap(), Some(c));
        assert_eq!(InputConfig::from_metadata(&HashMap::new()).unwrap(), None);
    }

    /// Each preprocessing value a model file can carry, set to something unusable: refused,
    /// with the field's key in the message.
    #[test]
    fn unusable_values_in_the_metadata_are_refused_by_name() {
        let good: HashMap<String, String> = InputConfig::unit_rgb(32)
            .to_metadata()
            .into_iter()
            .collect();
        for (key, value) in [
            (keys::SIZE, "0x0"),
            (keys::SIZE, "32x0"),
            (keys::SIZE, "100000x100000"),
            (keys::SIZE, "18446744073709551615x2"),
            (keys::SCALE, "0"),
            (keys::SCALE, "-1"),
            (keys::SCALE, "NaN"),
            (keys::SCALE, "inf"),
            (keys::MEAN, "0,NaN,0"),
            (keys::MEAN, "0,0,-inf"),
            (keys::STD, "1,0,1"),
            (keys::STD, "1,1,inf"),
            (keys::STD, "NaN,1,1"),
        ] {
            let mut meta = good.clone();
            meta.insert(key.into(), value.into());
            let err = InputConfig::from_metadata(&meta).expect_err(value);
            assert_eq!(err.key, key, "{key}={value}: {err}");
        }
        assert!(InputConfig::from_metadata(&good).is_ok_and(|c| c.is_some()));
    }

    /// A JPEG or PNG cut short is refused, not decoded into a picture with a grey or missing end.
    #[test]
    fn truncated_images_are_refused() {
        let img =
            image::RgbImage::from_fn(24, 16, |x, y| image::Rgb([x as u8 * 10, y as u8 * 15, 90]));
        for format in [image::ImageFormat::Jpeg, image::ImageFormat::Png] {
            let mut bytes = Vec::new();
            img.write_to(&mut std::io::Cursor::new(&mut bytes), format)
                .expect("encoding");
            assert!(decode_image_bytes(&bytes).is_ok(), "{format:?} whole");
            let cut = &bytes[..bytes.len() * 3 / 4];
            let err = decode_image_bytes(cut).expect_err("a cut-off file");
            assert!(err.to_string().contains("truncated"), "{format:?}: {err}");
        }
    }

    /// A PNG that claims 20,000 x 20,000 pixels in a hundred bytes is refused by its header,
    /// before a byte of the 1.2 GB it would take is allocated.
    #[test]
    fn a_decompression_bomb_is_refused_before_it_allocates() {
        let bomb = include_bytes!("../../../fuzz/seeds/image_bytes/bomb_20000x20000.png");
        assert!(bomb.len() < 1000);
        let err = decode_image_bytes(bomb).expect_err("a 20000x20000 PNG");
        assert!(
            matches!(err, ImageError::Decode(image::ImageError::Limits(_))),
            "{err}"
        );
    }

    #[test]
    fn bad_metadata_is_an_error() {
        let mut meta: HashMap<_, _> = InputConfig::unit_rgb(32)
            .to_metadata()
            .into_iter()
            .collect();
        meta.insert(keys::MEAN.into(), "1,2".into());
        assert_eq!(
            InputConfig::from_metadata(&meta).unwrap_err().key,
            keys::MEAN
        );
        meta.insert(keys::SIZE.into(), "32".into());
        assert!(InputConfig::from_metadata(&meta)
            .unwrap_err()
            .to_string()
            .contains("HxW"));
    }

    #[test]
    fn layouts_and_channel_order() {
        // 1x1 image: R=10, G=20, B=30.
        let planar = [10u8, 20, 30];
        let mut c = InputConfig::unit_rgb(1);
        c.scale = 1.0;
        assert_eq!(c.tensor_from_planar(&planar), vec![10.0, 20.0, 30.0]);
        c.channel_order = ChannelOrder::Bgr;
        c.mean = [1.0, 2.0, 3.0];
        c.std = [1.0, 2.0, 1.0];
        assert_eq!(c.tensor_from_planar(&planar), vec![29.0, 9.0, 7.0]);
        // 2x1 image in NHWC interleaves.
        let mut c = InputConfig::unit_rgb(1);
        c.width = 2;
        c.scale = 1.0;
        c.layout = Layout::Nhwc;
        assert_eq!(
            c.tensor_from_planar(&[1, 2, 3, 4, 5, 6]),
            vec![1.0, 3.0, 5.0, 2.0, 4.0, 6.0]
        );
    }

    #[test]
    fn planar_round_trip() {
        let rgb: Vec<u8> = (0..12).collect();
        assert_eq!(planar_to_interleaved(&interleaved_to_planar(&rgb)), rgb);
    }
}
