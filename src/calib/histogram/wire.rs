//! The serialised state: `to_bytes` / `from_bytes` in the layout documented on
//! [`HistogramCalibrator`].

use super::{HistogramCalibrator, Method, NonFinite, NONE, PAGES};
use crate::calib::bytes::{Reader, Writer};
use crate::calib::Error;

impl Method {
    fn encode(&self) -> (u8, u8, f64) {
        match *self {
            Method::Percentile(p) => (0, 0, p),
            Method::Entropy { bits } => (1, bits as u8, 0.0),
            Method::Mse { bits } => (2, bits as u8, 0.0),
        }
    }

    fn decode(tag: u8, bits: u8, p: f64) -> Result<Self, Error> {
        Ok(match tag {
            0 => Method::Percentile(p),
            1 => Method::Entropy { bits: bits.into() },
            2 => Method::Mse { bits: bits.into() },
            _ => return Err(Error::Decode("unknown method")),
        })
    }
}

impl HistogramCalibrator {
    /// [`Calibrator::to_bytes`](crate::calib::Calibrator::to_bytes), in the layout documented on
    /// [`HistogramCalibrator`].
    pub(super) fn encode_state(&self) -> Vec<u8> {
        let mut w = Writer::default();
        let (tag, bits, p) = self.method.encode();
        w.bytes(b"LBHC").u8(1).u8(self.fine as u8).u16(0);
        w.u32(self.bins as u32).u8(tag).u8(bits).u8(self.symmetric as u8);
        w.u8((self.nonfinite == NonFinite::Skip) as u8).f64(p);
        w.u64(self.count).u64(self.skipped).u32(self.pos_max).u32(self.neg_max);
        let slots = 1usize << self.fine;
        type Page = (usize, Vec<(usize, u64, u32)>);
        let pages: Vec<Page> = (0..PAGES)
            .filter(|&p| self.index[p] != NONE)
            .map(|p| {
                let off = self.index[p] as usize;
                let nz = (0..slots)
                    .map(|k| (k, self.slot_count(off + k), self.slot_ext(off + k)))
                    .filter(|&(_, c, _)| c != 0)
                    .collect();
                (p, nz)
            })
            .filter(|(_, nz): &(usize, Vec<_>)| !nz.is_empty())
            .collect();
        w.u32(pages.len() as u32);
        for (p, nz) in pages {
            w.u16(p as u16).u16(0).u32(nz.len() as u32);
            for (slot, c, e) in nz {
                w.u32(slot as u32).u64(c).u32(e);
            }
        }
        w.0
    }

    /// [`Calibrator::from_bytes`](crate::calib::Calibrator::from_bytes): checks every field and
    /// that the counts add up.
    pub(super) fn decode_state(bytes: &[u8]) -> Result<Self, Error> {
        let mut r = Reader(bytes);
        r.header(b"LBHC", 1)?;
        let fine = u32::from(r.u8()?);
        r.u16()?;
        let bins = r.u32()? as usize;
        let (tag, bits, sym, nf) = (r.u8()?, r.u8()?, r.u8()?, r.u8()?);
        let p = r.f64()?;
        let method = Method::decode(tag, bits, p)?;
        let mut s = Self::new(method)
            .with_bins(bins)
            .map_err(|_| Error::Decode("bad bin count"))?;
        if fine != s.fine || sym > 1 || nf > 1 {
            return Err(Error::Decode("bad configuration"));
        }
        s.symmetric = sym == 1;
        s.nonfinite = if nf == 1 { NonFinite::Skip } else { NonFinite::Error };
        s.count = r.u64()?;
        s.skipped = r.u64()?;
        s.pos_max = r.u32()?;
        s.neg_max = r.u32()?;
        if s.pos_max >= 0x7f80_0000 || s.neg_max >= 0x7f80_0000 {
            return Err(Error::Decode("non-finite maximum"));
        }
        let npages = r.u32()? as usize;
        let slots = 1usize << fine;
        let mut total = 0u64;
        let mut last_page = None;
        for _ in 0..npages {
            let page = r.u16()? as usize;
            r.u16()?;
            let nnz = r.u32()? as usize;
            if page >= PAGES || (page & 255) == 255 || last_page >= Some(page) || nnz > slots {
                return Err(Error::Decode("bad page"));
            }
            last_page = Some(page);
            let off = s.page(page);
            let mut last_slot = None;
            for _ in 0..nnz {
                let slot = r.u32()? as usize;
                let c = r.u64()?;
                let ext = r.u32()?;
                let low = (1u32 << (23 - fine)) - 1;
                let (hi, lo) = (ext >> 16, !ext & 0xffff);
                if slot >= slots || last_slot >= Some(slot) || c == 0 || hi > low || lo > hi {
                    return Err(Error::Decode("bad slot"));
                }
                last_slot = Some(slot);
                if c > u64::from(u32::MAX) {
                    if s.spill.is_empty() {
                        s.spill = vec![0; s.words.len()];
                    }
                    s.spill[off + slot] = c;
                } else {
                    s.words[off + slot][0] = c as u32;
                }
                s.words[off + slot][1] = ext;
                total = total.checked_add(c).ok_or(Error::Decode("count overflow"))?;
            }
        }
        r.finish()?;
        s.since_flush = s.count; // bounds every 32-bit count held in `words`
        if total != s.count {
            return Err(Error::Decode("counts do not add up"));
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calib::Calibrator;

    #[test]
    fn bytes_round_trip() {
        let mut h = HistogramCalibrator::new(Method::Entropy { bits: 8 }).with_symmetric(false);
        let data: Vec<f32> = (0..5000).map(|i| ((i as f32) * 0.77).sin() * (i as f32)).collect();
        h.observe(&data).unwrap();
        let b = h.to_bytes();
        let g = HistogramCalibrator::from_bytes(&b).unwrap();
        assert_eq!(g.to_bytes(), b);
        assert_eq!(g.range().unwrap(), h.range().unwrap());
        assert!(HistogramCalibrator::from_bytes(&b[..b.len() - 1]).is_err());
        let mut c = b.clone();
        let last = c.len() - 1;
        c[last] ^= 1; // corrupt a count
        assert!(HistogramCalibrator::from_bytes(&c).is_err());
    }
}
