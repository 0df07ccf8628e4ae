//! How elements are grouped to share a scale.

use super::Error;

/// How elements are grouped to share a scale (and zero point).
///
/// Matrices are row-major: element `(r, c)` of a matrix with `cols` columns is at index
/// `r * cols + c`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Granularity {
    /// One group: the whole slice.
    PerTensor,
    /// One group per row of a row-major matrix with `cols` columns (per output channel of a
    /// `Linear` weight stored `[out, in]`). The length must be a multiple of `cols`.
    PerRow {
        /// Columns (row length).
        cols: usize,
    },
    /// One group per column of a row-major matrix with `cols` columns. The length must be a
    /// multiple of `cols`.
    PerColumn {
        /// Columns (row length).
        cols: usize,
    },
    /// Blocks of this many consecutive elements; the last block may be shorter.
    PerBlock(usize),
}

impl Granularity {
    /// Check the group size: [`Error::ZeroGroupSize`] for a zero block size or column count.
    ///
    /// # Errors
    /// [`Error::ZeroGroupSize`].
    pub fn validate(self) -> Result<(), Error> {
        match self {
            Granularity::PerTensor => Ok(()),
            Granularity::PerRow { cols: n } | Granularity::PerColumn { cols: n } | Granularity::PerBlock(n) => {
                if n == 0 {
                    Err(Error::ZeroGroupSize)
                } else {
                    Ok(())
                }
            }
        }
    }

    /// Number of groups (scales) for `len` elements.
    ///
    /// ```
    /// use lowbit::quant::Granularity;
    /// assert_eq!(Granularity::PerBlock(32).groups(100)?, 4);
    /// assert_eq!(Granularity::PerRow { cols: 10 }.groups(100)?, 10);
    /// assert_eq!(Granularity::PerColumn { cols: 4 }.groups(100)?, 4);
    /// assert_eq!(Granularity::PerTensor.groups(0)?, 0);
    /// # Ok::<(), lowbit::QuantError>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::ZeroGroupSize`], or [`Error::NotAMultiple`] when a per-row or per-column
    /// length is not a multiple of `cols`.
    pub fn groups(self, len: usize) -> Result<usize, Error> {
        self.validate()?;
        Ok(match self {
            Granularity::PerTensor => usize::from(len > 0),
            Granularity::PerBlock(b) => len.div_ceil(b),
            Granularity::PerRow { cols } | Granularity::PerColumn { cols } => {
                if !len.is_multiple_of(cols) {
                    return Err(Error::NotAMultiple { len, cols });
                }
                if matches!(self, Granularity::PerRow { .. }) {
                    len / cols
                } else if len == 0 {
                    0
                } else {
                    cols
                }
            }
        })
    }

    /// For contiguous groupings, the length of each group (all but possibly the last);
    /// `None` for [`PerColumn`](Granularity::PerColumn).
    pub(crate) fn run(self, len: usize) -> Option<usize> {
        match self {
            Granularity::PerTensor => Some(len.max(1)),
            Granularity::PerBlock(b) => Some(b),
            Granularity::PerRow { cols } => Some(cols),
            Granularity::PerColumn { .. } => None,
        }
    }

    pub(crate) fn tag(self) -> (u8, u64) {
        match self {
            Granularity::PerTensor => (0, 0),
            Granularity::PerRow { cols } => (1, cols as u64),
            Granularity::PerColumn { cols } => (2, cols as u64),
            Granularity::PerBlock(b) => (3, b as u64),
        }
    }
}
