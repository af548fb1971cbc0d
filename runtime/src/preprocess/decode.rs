//! Image files to pixels: decoding with bounded memory, EXIF orientation, fitting to the model's
//! size (a centre crop, then a box or triangle filter), and the two pixel layouts.

use super::*;

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

#[cfg(feature = "tools")]
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

#[cfg(feature = "tools")]
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
