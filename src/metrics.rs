//! How far quantized values are from the originals: MSE, SQNR and the largest error, summed
//! over as many slices as you like (and mergeable across threads or shards).

/// Running error statistics of reconstructed values against the originals.
///
/// ```
/// use lowbit::metrics::ErrorMetrics;
/// let x = [1.0f32, -2.0, 0.5, 4.0];
/// let y = [1.0f32, -2.0, 0.5, 3.0];
/// let m = ErrorMetrics::of(&x, &y);
/// assert_eq!(m.max_abs_error(), 1.0);
/// assert_eq!(m.mse(), 0.25);
/// assert!((m.sqnr_db() - 10.0 * (21.25f64 / 1.0).log10()).abs() < 1e-12);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ErrorMetrics {
    count: usize,
    signal: f64,
    noise: f64,
    max: f32,
}

impl ErrorMetrics {
    /// The statistics of one pair of slices (compared up to the shorter one's length).
    pub fn of(x: &[f32], y: &[f32]) -> Self {
        let mut m = Self::default();
        m.add(x, y);
        m
    }

    /// Add a pair of slices: `x` the originals, `y` the reconstruction.
    pub fn add(&mut self, x: &[f32], y: &[f32]) {
        for (&a, &b) in x.iter().zip(y) {
            let e = f64::from(a) - f64::from(b);
            self.signal += f64::from(a) * f64::from(a);
            self.noise += e * e;
            self.max = self.max.max((a - b).abs());
        }
        self.count += x.len().min(y.len());
    }

    /// Add another set of statistics (another shard of the same tensor or model).
    pub fn merge(&mut self, o: &ErrorMetrics) {
        self.count += o.count;
        self.signal += o.signal;
        self.noise += o.noise;
        self.max = self.max.max(o.max);
    }

    /// Values compared.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Mean squared error (0 for no values).
    pub fn mse(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.noise / self.count as f64
        }
    }

    /// Mean square of the originals (0 for no values).
    pub fn signal_power(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.signal / self.count as f64
        }
    }

    /// Signal-to-quantization-noise ratio in dB, `10 log10(Σx² / Σ(x-y)²)`; infinite for an
    /// exact reconstruction.
    pub fn sqnr_db(&self) -> f64 {
        sqnr_db(self.signal, self.noise)
    }

    /// The largest `|x - y|`.
    pub fn max_abs_error(&self) -> f32 {
        self.max
    }
}

/// `10 log10(signal / noise)`, infinite for zero noise.
pub(crate) fn sqnr_db(signal: f64, noise: f64) -> f64 {
    if noise == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (signal / noise).log10()
    }
}
