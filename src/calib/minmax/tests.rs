use super::*;

#[test]
fn signed_zeros_are_ordered() {
    let mut a = MinMaxCalibrator::new();
    a.observe(&[0.0, -0.0]).unwrap();
    let mut b = MinMaxCalibrator::new();
    b.observe(&[-0.0, 0.0]).unwrap();
    assert_eq!(a.range().unwrap().min.to_bits(), (-0.0f32).to_bits());
    assert_eq!(a.range().unwrap().max.to_bits(), 0.0f32.to_bits());
    assert_eq!(a, b);
}

#[test]
fn errors_leave_state() {
    let mut a = MinMaxCalibrator::new();
    assert_eq!(a.range(), Err(Error::NoData));
    a.observe(&[1.0]).unwrap();
    let e = a.observe(&[2.0, f32::INFINITY]).unwrap_err();
    assert_eq!(
        e,
        Error::NonFinite {
            index: 1,
            value: f32::INFINITY
        }
    );
    assert_eq!(a.range().unwrap(), Range { min: 1.0, max: 1.0 });
    assert!(MovingAverageMinMaxCalibrator::new(0.0).is_err());
    assert!(PerChannelMinMaxCalibrator::new(0).is_err());
}

#[test]
fn bytes_round_trip() {
    let mut a = PerChannelMinMaxCalibrator::new(3).unwrap();
    a.observe(&[1.0, -2.0, 0.5, 7.0, -0.0, 3.0]).unwrap();
    let b = PerChannelMinMaxCalibrator::from_bytes(&a.to_bytes()).unwrap();
    assert_eq!(a, b);
    let mut m = MovingAverageMinMaxCalibrator::new(0.01).unwrap();
    m.observe(&[1.0, -1.0]).unwrap();
    assert_eq!(MovingAverageMinMaxCalibrator::from_bytes(&m.to_bytes()).unwrap(), m);
    let mut c = MinMaxCalibrator::new();
    c.observe(&[-0.0]).unwrap();
    assert_eq!(MinMaxCalibrator::from_bytes(&c.to_bytes()).unwrap(), c);
    assert!(MinMaxCalibrator::from_bytes(&m.to_bytes()).is_err());
    assert!(MinMaxCalibrator::from_bytes(&c.to_bytes()[..10]).is_err());
}

/// States whose counts are at the `u64` limit decode, and refuse to count past it (merge
/// and observe) with `CountOverflow`, unchanged.
#[test]
fn counts_at_the_u64_limit() {
    let mut w = Writer::default();
    w.bytes(b"LBMM").u8(1).u64(u64::MAX).f32(-1.0).f32(2.0);
    let mut full = MinMaxCalibrator::from_bytes(&w.0).unwrap();
    let mut one = MinMaxCalibrator::new();
    one.observe(&[5.0]).unwrap();
    assert_eq!(full.merge(&one), Err(Error::CountOverflow));
    assert_eq!(one.merge(&full), Err(Error::CountOverflow));
    assert_eq!(full.observe(&[7.0]), Err(Error::CountOverflow));
    assert_eq!(full.range().unwrap(), Range { min: -1.0, max: 2.0 });
    assert_eq!(one.range().unwrap(), Range { min: 5.0, max: 5.0 });
    full.merge(&MinMaxCalibrator::new()).unwrap();

    let mut w = Writer::default();
    w.bytes(b"LBMC")
        .u8(2)
        .u32(2)
        .u64(u64::MAX)
        .u32(0x8000_0000)
        .u32(0xbf80_0000);
    w.u32(0x3fff_ffff).u32(0x8000_0000);
    let mut pc = PerChannelMinMaxCalibrator::from_bytes(&w.0).unwrap();
    let mut row = PerChannelMinMaxCalibrator::new(2).unwrap();
    row.observe(&[1.0, 2.0]).unwrap();
    assert_eq!(pc.merge(&row), Err(Error::CountOverflow));
    assert_eq!(row.merge(&pc), Err(Error::CountOverflow));
    assert_eq!(pc.observe(&[1.0, 2.0]), Err(Error::CountOverflow));
    assert_eq!(pc.to_bytes(), w.0);
    assert_eq!(
        pc.ranges().unwrap(),
        vec![Range { min: 0.0, max: 1.0 }, Range { min: -2.0, max: 0.0 }]
    );
}

/// A per-channel state must hold finite values with min <= max in every channel, and no
/// extremes without rows.
#[test]
fn per_channel_states_are_checked() {
    let bytes = |version: u8, rows: u64, keys: &[(u32, u32)]| {
        let mut w = Writer::default();
        w.bytes(b"LBMC").u8(version).u32(keys.len().max(1) as u32).u64(rows);
        for &(l, h) in keys {
            w.u32(l).u32(h);
        }
        w.0
    };
    let key = |x: f32| super::super::order_key(x.to_bits());
    let good = bytes(2, 3, &[(key(-1.0), key(1.0)), (key(2.0), key(2.0))]);
    assert!(PerChannelMinMaxCalibrator::from_bytes(&good).is_ok());
    for keys in [
        [(key(1.0), key(-1.0)), (key(2.0), key(2.0))], // min > max
        [(key(f32::NAN), key(1.0)), (key(2.0), key(2.0))],
        [(key(0.0), key(f32::INFINITY)), (key(2.0), key(2.0))],
        [(u32::MAX, 0), (key(2.0), key(2.0))], // the empty state in one channel
    ] {
        let r = PerChannelMinMaxCalibrator::from_bytes(&bytes(2, 3, &keys));
        assert_eq!(r, Err(Error::Decode("bad channel min/max")), "{keys:?}");
    }
    // Zero rows: version 1 wrote the empty extremes, version 2 nothing; either reads.
    let empty = PerChannelMinMaxCalibrator::new(2).unwrap();
    assert_eq!(empty.to_bytes()[..9], bytes(2, 0, &[(0, 0), (0, 0)])[..9]);
    assert_eq!(empty.to_bytes().len(), 17);
    let mut v1 = bytes(1, 0, &[(u32::MAX, 0), (u32::MAX, 0)]);
    assert_eq!(PerChannelMinMaxCalibrator::from_bytes(&v1), Ok(empty.clone()));
    v1[17] = 0;
    assert!(PerChannelMinMaxCalibrator::from_bytes(&v1).is_err());
    assert!(PerChannelMinMaxCalibrator::from_bytes(&bytes(2, 1, &[])).is_err());
    // Version 1 with rows reads as before.
    let mut c = PerChannelMinMaxCalibrator::new(2).unwrap();
    c.observe(&[1.0, -1.0, 3.0, 0.5]).unwrap();
    let mut v1 = c.to_bytes();
    v1[4] = 1;
    assert_eq!(PerChannelMinMaxCalibrator::from_bytes(&v1), Ok(c));
}

/// The channel count allocates nothing by itself: `u32::MAX` channels cost nothing until
/// a batch of that many values arrives, and a shorter one is a channel mismatch.
#[test]
fn channels_allocate_with_the_data() {
    let n = u32::MAX as usize;
    let mut c = PerChannelMinMaxCalibrator::new(n).unwrap();
    assert_eq!(c.channels(), n);
    assert_eq!(
        c.observe(&[1.0; 3]),
        Err(Error::ChannelMismatch { len: 3, channels: n })
    );
    c.observe(&[]).unwrap();
    assert_eq!(c.range(), Err(Error::NoData));
    assert_eq!(c.ranges(), Err(Error::NoData));
    let bytes = c.to_bytes();
    assert_eq!(bytes.len(), 17);
    let d = PerChannelMinMaxCalibrator::from_bytes(&bytes).unwrap();
    c.merge(&d).unwrap();
    assert_eq!(c, d);
    assert!(c.lo.capacity() == 0 && c.hi.capacity() == 0);
    assert!(PerChannelMinMaxCalibrator::new(n + 1).is_err());
}

/// The moving average of two values more than `f32::MAX` apart stays finite (torch's
/// `f32` difference overflows to infinity) and between them; otherwise it is torch's.
#[test]
fn moving_average_of_extremes_stays_finite() {
    let mut m = MovingAverageMinMaxCalibrator::new(0.5).unwrap();
    m.observe(&[-3e38]).unwrap();
    m.observe(&[3e38]).unwrap();
    let r = m.range().unwrap();
    assert_eq!(r, Range { min: 0.0, max: 0.0 });
    let mut m = MovingAverageMinMaxCalibrator::new(0.01).unwrap();
    m.observe(&[-f32::MAX, f32::MAX]).unwrap();
    m.observe(&[f32::MAX, f32::MAX]).unwrap();
    m.observe(&[-f32::MAX, -f32::MAX]).unwrap();
    let r = m.range().unwrap();
    assert!(r.min.is_finite() && r.max.is_finite() && r.min <= r.max, "{r:?}");
    assert!(r.affine_uint8().is_ok());
    // torch's f32 formula where it is finite.
    let mut m = MovingAverageMinMaxCalibrator::new(0.3).unwrap();
    m.observe(&[-1.0, 2.0]).unwrap();
    m.observe(&[0.7, 5.5]).unwrap();
    let (c, lo, hi) = (0.3f32, -1.0f32, 2.0f32);
    assert_eq!(
        m.range().unwrap(),
        Range {
            min: lo + c * (0.7 - lo),
            max: hi + c * (5.5 - hi)
        }
    );
    // A state with min > max is refused.
    let mut w = Writer::default();
    w.bytes(b"LBMA").u8(1).f32(0.5).u8(1).f32(2.0).f32(1.0);
    assert!(MovingAverageMinMaxCalibrator::from_bytes(&w.0).is_err());
}
