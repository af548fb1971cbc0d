//! How pixels become a model's input tensor: one [`InputConfig`], shared by the trainer (which
//! writes it into the exported model's metadata) and the runtime (which reads it back).

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
        let order = match self.channel_order {
            ChannelOrder::Rgb => "RGB",
            ChannelOrder::Bgr => "BGR",
        };
        let layout = match self.layout {
            Layout::Nchw => "NCHW",
            Layout::Nhwc => "NHWC",
        };
        let pixel_format = match self.channel_order {
            ChannelOrder::Rgb => "Rgb8",
            ChannelOrder::Bgr => "Bgr8",
        };
        let mut entries = vec![
            (keys::LAYOUT.into(), layout.into()),
            (keys::SIZE.into(), format!("{}x{}", self.height, self.width)),
            (keys::CHANNEL_ORDER.into(), order.into()),
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
        let (h, w) = parse_size(size)
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
        let triple = |k: &str| parse_triple(get(k)?).map_err(|e| MetadataError::new(k, e));
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

/// Errors from decoding one image file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImageError {
    /// The file could not be read.
    #[error("cannot read: {0}")]
    Io(#[from] std::io::Error),
    /// The bytes are not an image of a supported format, or exceed the decoding limits.
    #[error("cannot decode: {0}")]
    Decode(#[from] image::ImageError),
    /// The file is empty.
    #[error("the file is empty")]
    Empty,
    /// The file is larger than [`MAX_FILE_BYTES`].
    #[error("{0} bytes is larger than the {MAX_FILE_BYTES}-byte limit for one image file")]
    TooLarge(u64),
    /// The file stops before its format's end marker: a decoder would fill the rest in.
    #[error("truncated: the {0} data ends before its end marker")]
    Truncated(&'static str),
    /// The image has no pixels: a width or height of 0.
    #[error("the image is {0}x{1} pixels: there is nothing to classify")]
    NoPixels(u32, u32),
}

/// Largest image file read, in bytes.
pub const MAX_FILE_BYTES: u64 = 256 << 20;
/// Largest width or height decoded, in pixels.
pub const MAX_SIDE: u32 = 16_384;
/// Most memory one decode may allocate, in bytes.
pub const MAX_DECODE_ALLOC: u64 = 1 << 30;

/// Decodes an image file of any supported format (PNG, JPEG, BMP, GIF, WebP), with bounded
/// memory, and turns it upright as its EXIF orientation says.
///
/// # Errors
/// When the file is empty, larger than [`MAX_FILE_BYTES`], or as [`decode_image_bytes`].
pub fn decode_image(path: &Path) -> Result<image::DynamicImage, ImageError> {
    let len = std::fs::metadata(path)?.len();
    if len == 0 {
        return Err(ImageError::Empty);
    }
    if len > MAX_FILE_BYTES {
        return Err(ImageError::TooLarge(len));
    }
    decode_image_bytes(&std::fs::read(path)?)
}

/// [`decode_image`] for bytes already in memory.
///
/// # Errors
/// When the bytes are empty, more than [`MAX_FILE_BYTES`], not an image of a supported format,
/// cut short, or beyond the decoding limits ([`MAX_SIDE`], [`MAX_DECODE_ALLOC`]).
pub fn decode_image_bytes(bytes: &[u8]) -> Result<image::DynamicImage, ImageError> {
    use image::ImageDecoder;
    if bytes.is_empty() {
        return Err(ImageError::Empty);
    }
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(ImageError::TooLarge(bytes.len() as u64));
    }
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes)).with_guessed_format()?;
    // Decoders fill in what is missing from a cut-off JPEG (grey) or may stop early on a PNG:
    // a picture that looks whole but is not. Both formats end with a marker.
    match reader.format() {
        Some(image::ImageFormat::Jpeg) if !contains(bytes, &[0xFF, 0xD9]) => {
            return Err(ImageError::Truncated("JPEG"));
        }
        Some(image::ImageFormat::Png) if !contains(bytes, b"IEND") => {
            return Err(ImageError::Truncated("PNG"));
        }
        _ => {}
    }
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODE_ALLOC);
    reader.limits(limits);
    let mut decoder = reader.into_decoder()?;
    let orientation = decoder.orientation()?;
    let mut img = image::DynamicImage::from_decoder(decoder)?;
    if img.width() == 0 || img.height() == 0 {
        return Err(ImageError::NoPixels(img.width(), img.height()));
    }
    img.apply_orientation(orientation);
    Ok(img)
}

/// Whether `marker` occurs in `bytes`, looked for from the end (where end markers are).
fn contains(bytes: &[u8], marker: &[u8]) -> bool {
    bytes.windows(marker.len()).rev().any(|w| w == marker)
}

/// Decodes an image file to planar RGB of `height x width` (see [`fit_planar`]).
///
/// # Errors
/// As [`decode_image`].
pub fn load_planar(path: &Path, height: usize, width: usize) -> Result<Vec<u8>, ImageError> {
    Ok(fit_planar(&decode_image(path)?, height, width))
}

/// Resizes a decoded image to `height x width` planar RGB: scaled so that it covers the target,
/// then centre-cropped, so the aspect ratio is kept and the sides of a wide image are lost rather
/// than the image squashed. Shrinking by 2x or more averages each output pixel's area of the
/// image (a box filter, fast and free of aliasing); smaller changes of size are bilinear
/// (a triangle filter). Grayscale is replicated to three channels, 16-bit samples are reduced to
/// 8 bits and an alpha channel is dropped (as PIL's `convert("RGB")` does). An image without
/// pixels (which [`decode_image`] refuses) gives black.
pub fn fit_planar(img: &image::DynamicImage, height: usize, width: usize) -> Vec<u8> {
    use image::imageops;
    if img.width() == 0 || img.height() == 0 {
        return vec![0; 3 * height * width];
    }
    let (w, h) = (img.width().max(1), img.height().max(1));
    let (tw, th) = (width as u32, height as u32);
    // The largest crop of the target's aspect ratio that fits in the image.
    let (cw, ch) = if u64::from(w) * u64::from(th) > u64::from(h) * u64::from(tw) {
        (
            ((u64::from(h) * u64::from(tw)) / u64::from(th)).max(1) as u32,
            h,
        )
    } else {
        (
            w,
            ((u64::from(w) * u64::from(th)) / u64::from(tw)).max(1) as u32,
        )
    };
    let converted;
    let rgb = match img.as_rgb8() {
        Some(rgb) => rgb,
        None => {
            converted = img.to_rgb8();
            &converted
        }
    };
    let (x0, y0) = ((rgb.width() - cw) / 2, (rgb.height() - ch) / 2);
    if cw >= 2 * tw && ch >= 2 * th {
        return area_average(rgb, (x0, y0, cw, ch), (tw, th));
    }
    // A view of the crop: nothing is copied before the resize reads it.
    let crop = imageops::crop_imm(rgb, x0, y0, cw, ch);
    let resized = if (cw, ch) == (tw, th) {
        crop.to_image()
    } else {
        imageops::resize(&*crop, tw, th, imageops::FilterType::Triangle)
    };
    interleaved_to_planar(resized.as_raw())
}

/// Shrinks the `(x, y, w, h)` region of `rgb` to `tw x th` planar RGB, each output pixel the
/// rounded mean of the pixels its area covers. One pass over the region's rows.
fn area_average(
    rgb: &image::RgbImage,
    (x, y, w, h): (u32, u32, u32, u32),
    (tw, th): (u32, u32),
) -> Vec<u8> {
    let edge =
        |i: u32, len: u32, out: u32| (u64::from(i) * u64::from(len) / u64::from(out)) as usize;
    let columns: Vec<(usize, usize)> = (0..tw)
        .map(|o| (x as usize + edge(o, w, tw), x as usize + edge(o + 1, w, tw)))
        .collect();
    let stride = 3 * rgb.width() as usize;
    let raw = rgb.as_raw();
    let plane = (tw * th) as usize;
    let mut out = vec![0u8; 3 * plane];
    let mut sums = vec![[0u64; 3]; tw as usize];
    for oy in 0..th {
        let (top, bottom) = (
            y as usize + edge(oy, h, th),
            y as usize + edge(oy + 1, h, th),
        );
        sums.iter_mut().for_each(|s| *s = [0; 3]);
        for row in raw[top * stride..bottom * stride].chunks_exact(stride) {
            for (sum, &(left, right)) in sums.iter_mut().zip(&columns) {
                let mut acc = [0u32; 3];
                for px in row[3 * left..3 * right].chunks_exact(3) {
                    acc[0] += u32::from(px[0]);
                    acc[1] += u32::from(px[1]);
                    acc[2] += u32::from(px[2]);
                }
                for c in 0..3 {
                    sum[c] += u64::from(acc[c]);
                }
            }
        }
        for (ox, (sum, &(left, right))) in sums.iter().zip(&columns).enumerate() {
            let n = ((bottom - top) * (right - left)) as u64;
            for c in 0..3 {
                out[c * plane + oy as usize * tw as usize + ox] = ((sum[c] + n / 2) / n) as u8;
            }
        }
    }
    out
}

/// `RGBRGB...` to `RR..GG..BB..`.
pub fn interleaved_to_planar(rgb: &[u8]) -> Vec<u8> {
    let plane = rgb.len() / 3;
    let mut out = vec![0u8; rgb.len()];
    for (p, px) in rgb.chunks_exact(3).enumerate() {
        for c in 0..3 {
            out[c * plane + p] = px[c];
        }
    }
    out
}

/// `RR..GG..BB..` to `RGBRGB...`.
pub fn planar_to_interleaved(planar: &[u8]) -> Vec<u8> {
    let plane = planar.len() / 3;
    let mut out = vec![0u8; planar.len()];
    for p in 0..plane {
        for c in 0..3 {
            out[p * 3 + c] = planar[c * plane + p];
        }
    }
    out
}

/// Softmax over each row of `width` values, in place.
pub fn softmax_rows(values: &mut [f32], width: usize) {
    for row in values.chunks_exact_mut(width) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0;
        for v in row.iter_mut() {
            *v = (*v - max).exp();
            sum += *v;
        }
        for v in row.iter_mut() {
            *v /= sum;
        }
    }
}

/// Index of the largest value.
pub fn argmax(row: &[f32]) -> usize {
    row.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| {
            if v > bv {
                (i, v)
            } else {
                (bi, bv)
            }
        })
        .0
}

#[cfg(test)]
mod tests {

    #[test]
    fn sizes_triples_and_overrides_parse_and_apply_with_checks() {
        assert_eq!(parse_size("32"), Ok((32, 32)));
        assert_eq!(parse_size(" 24x40 "), Ok((24, 40)));
        for bad in ["0", "x", "3x", "-1", "32x0", "big"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_triple("1, 2,3"), Ok([1.0, 2.0, 3.0]));
        assert!(parse_triple("1,2").is_err() && parse_triple("1,2,x").is_err());
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
        let bomb = include_bytes!("../../fuzz/seeds/image_bytes/bomb_20000x20000.png");
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

#[cfg(test)]
mod image_tests {
    use super::*;

    #[test]
    fn wide_images_are_cropped_not_squashed() {
        // Left third red, middle third green, right third blue: the centre crop is all green.
        let img = image::RgbImage::from_fn(30, 10, |x, _| match x / 10 {
            0 => image::Rgb([255, 0, 0]),
            1 => image::Rgb([0, 255, 0]),
            _ => image::Rgb([0, 0, 255]),
        });
        let planar = fit_planar(&image::DynamicImage::ImageRgb8(img), 10, 10);
        assert!(planar[..100].iter().all(|&r| r == 0));
        assert!(planar[100..200].iter().all(|&g| g == 255));
        // A target of another aspect ratio keeps that ratio.
        let tall = fit_planar(&image::DynamicImage::new_rgb8(30, 10), 4, 2);
        assert_eq!(tall.len(), 3 * 4 * 2);
    }

    #[test]
    fn large_shrinks_average_each_area() {
        // 8x4 to 4x2 (a 2x shrink): each output pixel is the rounded mean of a 2x2 block.
        let img = image::RgbImage::from_fn(8, 4, |x, y| {
            image::Rgb([(x * 10 + y) as u8, 7, (x * y) as u8])
        });
        let planar = fit_planar(&image::DynamicImage::ImageRgb8(img.clone()), 2, 4);
        for (oy, ox) in [(0u32, 0u32), (0, 3), (1, 2)] {
            let block = [(0, 0), (1, 0), (0, 1), (1, 1)]
                .map(|(dx, dy)| img.get_pixel(2 * ox + dx, 2 * oy + dy).0);
            for c in 0..3 {
                let mean = (block.iter().map(|p| u32::from(p[c])).sum::<u32>() + 2) / 4;
                assert_eq!(
                    u32::from(planar[c * 8 + (oy * 4 + ox) as usize]),
                    mean,
                    "pixel {ox},{oy} channel {c}"
                );
            }
        }
    }

    #[test]
    fn gray_alpha_and_16_bit_become_rgb() {
        let gray = image::DynamicImage::ImageLuma16(image::ImageBuffer::from_pixel(
            4,
            4,
            image::Luma([65535u16]),
        ));
        assert!(fit_planar(&gray, 4, 4).iter().all(|&v| v == 255));
        let rgba = image::DynamicImage::ImageRgba8(image::ImageBuffer::from_pixel(
            4,
            4,
            image::Rgba([10, 20, 30, 0]),
        ));
        assert_eq!(&fit_planar(&rgba, 1, 1)[..], &[10, 20, 30]);
    }

    #[test]
    fn empty_and_garbage_bytes_are_errors() {
        assert!(matches!(decode_image_bytes(b""), Err(ImageError::Empty)));
        assert!(matches!(
            decode_image_bytes(b"GIF89a garbage"),
            Err(ImageError::Decode(_))
        ));
    }
}

#[cfg(test)]
mod exif_tests {
    use super::*;

    /// Four colours, one a quadrant: any rotation or mirroring moves them.
    const QUADRANTS: [[u8; 3]; 4] = [[220, 30, 30], [30, 200, 30], [30, 30, 220], [230, 230, 230]];

    /// A `width x height` image whose quadrants are [`QUADRANTS`] (top-left, top-right,
    /// bottom-left, bottom-right).
    fn quadrants(width: u32, height: u32) -> image::RgbImage {
        image::RgbImage::from_fn(width, height, |x, y| {
            let q = usize::from(x >= width / 2) + 2 * usize::from(y >= height / 2);
            image::Rgb(QUADRANTS[q])
        })
    }

    /// `image` as a JPEG with an EXIF APP1 segment giving `orientation`.
    fn jpeg_with_orientation(image: &image::RgbImage, orientation: u8) -> Vec<u8> {
        let mut jpeg = Vec::new();
        image
            .write_to(
                &mut std::io::Cursor::new(&mut jpeg),
                image::ImageFormat::Jpeg,
            )
            .unwrap();
        let mut tiff = b"II*\0\x08\0\0\0".to_vec();
        tiff.extend_from_slice(&1u16.to_le_bytes()); // one IFD entry
        tiff.extend_from_slice(&0x0112u16.to_le_bytes()); // Orientation
        tiff.extend_from_slice(&3u16.to_le_bytes()); // SHORT
        tiff.extend_from_slice(&1u32.to_le_bytes()); // count
        tiff.extend_from_slice(&[orientation, 0, 0, 0]); // the value, padded
        tiff.extend_from_slice(&0u32.to_le_bytes()); // no next IFD
        let mut app1 = b"Exif\0\0".to_vec();
        app1.extend_from_slice(&tiff);
        let mut out = jpeg[..2].to_vec();
        out.extend_from_slice(&[0xff, 0xe1]);
        out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
        out.extend_from_slice(&app1);
        out.extend_from_slice(&jpeg[2..]);
        out
    }

    /// The index into [`QUADRANTS`] of the colour nearest `pixel`.
    fn quadrant_colour(pixel: &image::Rgb<u8>) -> usize {
        let distance = |c: &[u8; 3]| -> i32 {
            c.iter()
                .zip(pixel.0)
                .map(|(&a, b)| (i32::from(a) - i32::from(b)).pow(2))
                .sum()
        };
        (0..4).min_by_key(|&q| distance(&QUADRANTS[q])).unwrap()
    }

    /// Every EXIF orientation turns the picture upright: for each, where the stored image's
    /// quadrants must end up (EXIF 2.3, tag 0x0112: 2 mirrors left-right, 3 turns 180 degrees, 4
    /// mirrors top-bottom, 5 mirrors along the main diagonal, 6 turns 90 degrees clockwise, 7
    /// mirrors along the other diagonal, 8 turns 90 degrees anticlockwise).
    #[test]
    fn every_exif_orientation_is_applied() {
        let (w, h) = (48u32, 32u32);
        let stored = quadrants(w, h);
        for orientation in 1..=8u8 {
            let upright = decode_image_bytes(&jpeg_with_orientation(&stored, orientation))
                .unwrap()
                .to_rgb8();
            let turned = orientation >= 5;
            let (dw, dh) = if turned { (h, w) } else { (w, h) };
            assert_eq!(upright.dimensions(), (dw, dh), "orientation {orientation}");
            // The stored pixel that shows at (x, y) of the upright picture.
            let source = |x: u32, y: u32| match orientation {
                1 => (x, y),
                2 => (w - 1 - x, y),
                3 => (w - 1 - x, h - 1 - y),
                4 => (x, h - 1 - y),
                5 => (y, x),
                6 => (y, h - 1 - x),
                7 => (w - 1 - y, h - 1 - x),
                _ => (w - 1 - y, x),
            };
            // The centre of each quadrant of the upright picture.
            for (x, y) in [
                (dw / 4, dh / 4),
                (3 * dw / 4, dh / 4),
                (dw / 4, 3 * dh / 4),
                (3 * dw / 4, 3 * dh / 4),
            ] {
                let (sx, sy) = source(x, y);
                assert_eq!(
                    quadrant_colour(upright.get_pixel(x, y)),
                    quadrant_colour(stored.get_pixel(sx, sy)),
                    "orientation {orientation}, upright pixel ({x}, {y})"
                );
            }
        }
    }
}
