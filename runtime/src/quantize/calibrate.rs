//! The arithmetic of quantization: scales and zero points, rounding and clipping, and the ranges
//! that calibration chooses for activations. Pure functions, tested against hand-computed cases
//! and numpy (`runtime/python/tests/test_quantized.py`).

/// The number of histogram bins per activation tensor.
pub const BINS: usize = 2048;

/// The largest float16 magnitude.
pub const F16_MAX: f32 = 65504.0;

/// Per-channel symmetric int8: `q = clamp(round_half_even(w / s_c), -127, 127)` with
/// `s_c = max|w_c| / 127` (1 for an all-zero channel), channel `c` along `axis` of `dims`.
/// Returns the quantized values and one scale per channel.
///
/// # Panics
/// Never for consistent input: `values.len()` must be the product of `dims` and `axis` within
/// them (the callers check both).
pub fn symmetric_int8(values: &[f32], dims: &[usize], axis: usize) -> (Vec<i8>, Vec<f32>) {
    let channels = dims[axis];
    let inner: usize = dims[axis + 1..].iter().product();
    let channel = |i: usize| (i / inner) % channels;
    let mut max_abs = vec![0f32; channels];
    for (i, v) in values.iter().enumerate() {
        let c = channel(i);
        max_abs[c] = max_abs[c].max(v.abs());
    }
    let scales: Vec<f32> = max_abs
        .iter()
        .map(|&m| if m > 0.0 { m / 127.0 } else { 1.0 })
        .collect();
    let q = values
        .iter()
        .enumerate()
        .map(|(i, &v)| quantize(v, scales[channel(i)], 0, -127, 127) as i8)
        .collect();
    (q, scales)
}

/// `clamp(round_half_even(v / scale) + zero_point, lo, hi)`, as ONNX's QuantizeLinear computes it.
pub fn quantize(v: f32, scale: f32, zero_point: i32, lo: i32, hi: i32) -> i32 {
    let q = (v / scale).round_ties_even() as f64 + f64::from(zero_point);
    q.clamp(f64::from(lo), f64::from(hi)) as i32
}

/// A bias for an integer convolution or product: int32 with scale `input_scale * weight_scale_c`
/// per channel and zero point 0, as ONNX Runtime's integer kernels take it.
pub fn bias_int32(bias: &[f32], input_scale: f32, weight_scales: &[f32]) -> (Vec<i32>, Vec<f32>) {
    let scales: Vec<f32> = weight_scales.iter().map(|&w| input_scale * w).collect();
    let q = bias
        .iter()
        .zip(&scales)
        .map(|(&b, &s)| quantize(b, s, 0, i32::MIN, i32::MAX))
        .collect();
    (q, scales)
}

/// Per-tensor asymmetric uint8 for activations: the range is widened to hold 0 (so that 0, the
/// padding and ReLU's floor, is exact), `scale = (hi - lo) / 255`,
/// `zero_point = clamp(round_half_even(-lo / scale), 0, 255)`. A range of one value gives scale 1.
pub fn uint8_params(lo: f32, hi: f32) -> (f32, u8) {
    let (lo, hi) = (lo.min(0.0), hi.max(0.0));
    if !(hi - lo).is_finite() || hi - lo <= 0.0 {
        return (1.0, 0);
    }
    let scale = (hi - lo) / 255.0;
    let zero_point = (-lo / scale).round_ties_even().clamp(0.0, 255.0) as u8;
    (scale, zero_point)
}

/// float32 to float16, saturating at ±[`F16_MAX`] instead of becoming infinite; also says
/// whether it saturated.
pub fn to_f16(v: f32) -> (half::f16, bool) {
    let clipped = v.clamp(-F16_MAX, F16_MAX);
    (half::f16::from_f32(clipped), clipped != v)
}

/// How calibration turns an activation's observed values into its quantization range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Method {
    /// The smallest and largest values seen.
    MinMax,
    /// The range holding this share of the values (e.g. 0.9999), cut equally from both tails.
    Percentile(f64),
    /// The range whose quantization error (rounding inside, clipping outside) over the observed
    /// values is smallest.
    Mse,
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Method::MinMax => f.write_str("minmax"),
            Method::Percentile(p) => write!(f, "percentile-{}", 100.0 * p),
            Method::Mse => f.write_str("mse"),
        }
    }
}

impl std::str::FromStr for Method {
    type Err = String;

    /// `minmax`, `mse`, `percentile` (99.99 %) or `percentile-P` with P in percent.
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim().to_ascii_lowercase();
        match s.as_str() {
            "minmax" => Ok(Method::MinMax),
            "mse" => Ok(Method::Mse),
            "percentile" => Ok(Method::Percentile(0.9999)),
            _ => match s.strip_prefix("percentile-").map(str::parse::<f64>) {
                Some(Ok(p)) if p > 50.0 && p <= 100.0 => Ok(Method::Percentile(p / 100.0)),
                _ => Err(format!(
                    "unknown calibration method {s:?}: expected minmax, mse, percentile or percentile-P (P in (50, 100])"
                )),
            },
        }
    }
}

/// What calibration saw of one activation tensor: its extremes, then a histogram over them.
#[derive(Debug, Clone)]
pub struct Observed {
    /// The smallest value seen (at most 0).
    pub lo: f32,
    /// The largest value seen (at least 0).
    pub hi: f32,
    /// Counts of [`BINS`] equal bins over `lo..=hi`; empty until the second pass.
    pub bins: Vec<u64>,
}

impl Default for Observed {
    fn default() -> Self {
        Observed {
            lo: 0.0,
            hi: 0.0,
            bins: Vec::new(),
        }
    }
}

impl Observed {
    /// First pass: widens the extremes to hold `values`.
    pub fn extend_range(&mut self, values: &[f32]) {
        for &v in values.iter().filter(|v| v.is_finite()) {
            self.lo = self.lo.min(v);
            self.hi = self.hi.max(v);
        }
    }

    fn bin_width(&self) -> f64 {
        (f64::from(self.hi) - f64::from(self.lo)) / BINS as f64
    }

    /// Second pass: counts `values` into the histogram over the extremes of the first.
    pub fn count(&mut self, values: &[f32]) {
        if self.bins.is_empty() {
            self.bins = vec![0; BINS];
        }
        let width = self.bin_width();
        if width <= 0.0 {
            self.bins[0] += values.len() as u64;
            return;
        }
        for &v in values.iter().filter(|v| v.is_finite()) {
            let i = ((f64::from(v) - f64::from(self.lo)) / width) as usize;
            self.bins[i.min(BINS - 1)] += 1;
        }
    }

    /// The range `method` chooses. Minmax needs no histogram; the others fall back to it
    /// without one.
    pub fn range(&self, method: Method) -> (f32, f32) {
        let total: u64 = self.bins.iter().sum();
        if total == 0 || self.bin_width() <= 0.0 {
            return (self.lo, self.hi);
        }
        match method {
            Method::MinMax => (self.lo, self.hi),
            Method::Percentile(p) => self.percentile(p, total),
            Method::Mse => self.least_error(),
        }
    }

    fn edge(&self, i: usize) -> f32 {
        (f64::from(self.lo) + i as f64 * self.bin_width()) as f32
    }

    fn percentile(&self, p: f64, total: u64) -> (f32, f32) {
        // Cut (1 - p) of the values in all, half from each tail that lies below or above zero.
        let tails = u8::from(self.lo < 0.0) + u8::from(self.hi > 0.0);
        let cut = ((1.0 - p) * total as f64 / f64::from(tails.max(1))) as u64;
        let mut seen = 0;
        let mut lo = self.lo;
        if self.lo < 0.0 {
            for (i, &n) in self.bins.iter().enumerate() {
                seen += n;
                if seen > cut {
                    lo = self.edge(i);
                    break;
                }
            }
        }
        let (mut seen, mut hi) = (0, self.hi);
        if self.hi > 0.0 {
            for (i, &n) in self.bins.iter().enumerate().rev() {
                seen += n;
                if seen > cut {
                    hi = self.edge(i + 1);
                    break;
                }
            }
        }
        (lo.min(0.0), hi.max(0.0))
    }

    /// Expected squared error over the histogram for the range `lo..=hi`: values inside are off
    /// by a uniform rounding error (`step^2 / 12`), values outside by their distance to the edge.
    pub fn squared_error(&self, lo: f32, hi: f32) -> f64 {
        let (scale, zero_point) = uint8_params(lo, hi);
        // The range the uint8 grid really covers.
        let lo = f64::from(scale) * (0.0 - f64::from(zero_point));
        let hi = f64::from(scale) * (255.0 - f64::from(zero_point));
        let rounding = f64::from(scale).powi(2) / 12.0;
        let width = self.bin_width();
        self.bins
            .iter()
            .enumerate()
            .filter(|(_, &n)| n > 0)
            .map(|(i, &n)| {
                let centre = f64::from(self.lo) + (i as f64 + 0.5) * width;
                let e = if centre < lo {
                    (lo - centre).powi(2)
                } else if centre > hi {
                    (centre - hi).powi(2)
                } else {
                    rounding
                };
                n as f64 * e
            })
            .sum()
    }

    /// The range of least [`Observed::squared_error`] among the observed extremes shrunk by
    /// 1 %, 2 %, ... down to 5 % of their span (both ends by the same factor).
    fn least_error(&self) -> (f32, f32) {
        (5..=100)
            .map(|k| {
                let f = k as f32 / 100.0;
                (self.lo * f, self.hi * f)
            })
            .map(|(lo, hi)| (self.squared_error(lo, hi), lo, hi))
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .map_or((self.lo, self.hi), |(_, lo, hi)| (lo, hi))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_int8_scales_each_output_channel_by_its_largest_magnitude() {
        // dims [2, 3]: channels along axis 0 are rows, along axis 1 columns.
        let w = [0.5, -1.0, 0.25, 2.0, 0.0, -0.5];
        let (q, s) = symmetric_int8(&w, &[2, 3], 0);
        assert_eq!(s, vec![1.0 / 127.0, 2.0 / 127.0]);
        // 0.5 * 127 = 63.5 -> 64 (half to even), 0.25 * 127 = 31.75 -> 32; -0.5 / (2/127) = -31.75
        assert_eq!(q, vec![64, -127, 32, 127, 0, -32]);
        let (q, s) = symmetric_int8(&w, &[2, 3], 1);
        assert_eq!(s, vec![2.0 / 127.0, 1.0 / 127.0, 0.5 / 127.0]);
        assert_eq!(q, vec![32, -127, 64, 127, 0, -127]);
    }

    #[test]
    fn an_all_zero_channel_gets_scale_one_and_zeros() {
        let (q, s) = symmetric_int8(&[0.0, 0.0, 3.0, -3.0], &[2, 2], 0);
        assert_eq!(s, vec![1.0, 3.0 / 127.0]);
        assert_eq!(q, vec![0, 0, 127, -127]);
    }

    #[test]
    fn quantize_rounds_half_to_even_and_saturates() {
        assert_eq!(quantize(2.5, 1.0, 0, 0, 255), 2);
        assert_eq!(quantize(3.5, 1.0, 0, 0, 255), 4);
        assert_eq!(quantize(-2.5, 1.0, 0, -128, 127), -2);
        assert_eq!(quantize(1000.0, 1.0, 10, 0, 255), 255);
        assert_eq!(quantize(-1000.0, 1.0, 10, 0, 255), 0);
        assert_eq!(quantize(-1.0, 0.5, 10, 0, 255), 8);
    }

    #[test]
    fn uint8_params_hold_zero_exactly() {
        // [-1, 3]: scale 4/255, zero point 255/4 = 63.75 -> 64.
        let (s, z) = uint8_params(-1.0, 3.0);
        assert_eq!(s, 4.0 / 255.0);
        assert_eq!(z, 64);
        // ReLU outputs: zero point 0.
        assert_eq!(uint8_params(0.0, 6.0), (6.0 / 255.0, 0));
        // All positive: widened to 0.
        assert_eq!(uint8_params(2.0, 5.1), (5.1 / 255.0, 0));
        // All negative: zero point 255.
        assert_eq!(uint8_params(-5.1, -2.0), (5.1 / 255.0, 255));
        assert_eq!(uint8_params(0.0, 0.0), (1.0, 0));
    }

    #[test]
    fn bias_is_quantized_with_input_times_weight_scale() {
        let (q, s) = bias_int32(&[1.0, -0.3], 0.1, &[0.5, 0.01]);
        assert_eq!(s, vec![0.05, 0.001]);
        assert_eq!(q, vec![20, -300]);
    }

    #[test]
    fn f16_saturates_instead_of_overflowing() {
        assert_eq!(to_f16(1.5), (half::f16::from_f32(1.5), false));
        let (v, clipped) = to_f16(1e6);
        assert!(clipped);
        assert_eq!(v.to_f32(), F16_MAX);
    }

    fn observed(values: &[f32]) -> Observed {
        let mut o = Observed::default();
        o.extend_range(values);
        o.count(values);
        o
    }

    #[test]
    fn percentile_cuts_a_lone_outlier_and_minmax_keeps_it() {
        let mut values: Vec<f32> = (0..10_000).map(|i| i as f32 / 10_000.0).collect();
        values.push(100.0);
        let o = observed(&values);
        assert_eq!(o.range(Method::MinMax), (0.0, 100.0));
        let (lo, hi) = o.range(Method::Percentile(0.9999));
        assert_eq!(lo, 0.0);
        assert!(hi > 0.9 && hi < 1.1, "{hi}");
    }

    #[test]
    fn mse_clips_an_outlier_only_where_that_lowers_the_error() {
        // A million values in [0, 1) and one at 100: rounding over the whole range costs more
        // than clipping the one value. The error over hi = 100 f is 1e6 (100 f / 255)^2 / 12 +
        // (100 - 100 f)^2, least near f = 0.44.
        let mut values: Vec<f32> = (0..1_000_000).map(|i| i as f32 / 1e6).collect();
        values.push(100.0);
        let o = observed(&values);
        let (lo, hi) = o.range(Method::Mse);
        assert_eq!(lo, 0.0);
        assert!((40.0..=48.0).contains(&hi), "{hi}");
        assert!(o.squared_error(lo, hi) < o.squared_error(o.lo, o.hi));
        // Among ten thousand values, the same outlier costs less to keep than to clip.
        let mut values: Vec<f32> = (0..10_000).map(|i| i as f32 / 10_000.0).collect();
        values.push(100.0);
        let hi = observed(&values).range(Method::Mse).1;
        assert!(hi >= 99.0, "{hi}");
    }

    #[test]
    fn mse_keeps_the_whole_range_of_uniform_values() {
        let values: Vec<f32> = (0..10_000)
            .map(|i| i as f32 / 10_000.0 * 4.0 - 1.0)
            .collect();
        let o = observed(&values);
        let (lo, hi) = o.range(Method::Mse);
        assert!(lo <= -0.95 && hi >= 2.85, "{lo} {hi}");
        // And the error it reports grows once the range clips.
        assert!(o.squared_error(-0.5, 1.5) > o.squared_error(-1.0, 3.0));
    }

    #[test]
    fn methods_parse() {
        assert_eq!("minmax".parse::<Method>(), Ok(Method::MinMax));
        assert_eq!("MSE".parse::<Method>(), Ok(Method::Mse));
        match "percentile-99.9".parse::<Method>() {
            Ok(Method::Percentile(p)) => assert!((p - 0.999).abs() < 1e-12),
            other => panic!("{other:?}"),
        }
        assert!("percentile-20".parse::<Method>().is_err());
        assert!("entropy".parse::<Method>().is_err());
    }
}
