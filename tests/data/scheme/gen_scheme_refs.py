"""Independent NumPy reference for lowbit::scheme (run: python3 gen_scheme_refs.py).

Written from the papers / torch source, not from the Rust code: XNOR-Net binary, TWN ternary,
nearest power-of-two (frexp), SmoothQuant scales (smooth_ln_fcs, float64), torch's
fake_quantize_per_tensor_affine (f32 x * (1/scale), rint), and torch's _amp_update_scale_
schedule on a sequence of found_inf flags.
"""
import numpy as np

rng = np.random.default_rng(7)
out = {}

# binary / ternary: 6 channels x 40
w = (rng.standard_normal((6, 40)) * rng.uniform(0.01, 2.0, (6, 1))).astype(np.float32)
w[2, :] = 0.0
w[3, :5] = 0.0
out["w"] = w
a = np.abs(w).astype(np.float64)
out["bin_alpha"] = a.mean(axis=1).astype(np.float32)
out["bin_deq"] = np.where(w < 0, -out["bin_alpha"][:, None], out["bin_alpha"][:, None]).astype(np.float32)
delta = (0.7 * a.mean(axis=1)).astype(np.float32)
mask = np.abs(w) > delta[:, None]
cnt = mask.sum(axis=1)
alpha = np.where(cnt > 0, (a * mask).sum(axis=1) / np.maximum(cnt, 1), 0.0).astype(np.float32)
out["ter_alpha"] = alpha
out["ter_deq"] = (np.sign(w) * mask * alpha[:, None]).astype(np.float32)

# log2 with k = 3 over a heavy-tailed tensor
x = (rng.standard_t(3, 500) * 0.2).astype(np.float32)
x[::50] = 0.0
out["log_x"] = x
def nearest_pow2_exp(v):
    m, e = np.frexp(np.float64(v))  # v = m 2^e, m in [0.5, 1)
    return np.where(m >= 0.75, e, e - 1)
k = 3
amax = np.abs(x).max()
emax = int(nearest_pow2_exp(amax))
emin = emax - (2**k - 2)
ax = np.abs(x).astype(np.float64)
e = nearest_pow2_exp(np.where(ax > 0, ax, 1.0))
mag = np.where(e >= emin, 2.0 ** np.minimum(e, emax), np.where(ax >= 2.0 ** (emin - 1), 2.0 ** emin, 0.0))
mag = np.where(ax == 0, 0.0, mag)
out["log_deq"] = (np.sign(x) * mag).astype(np.float32)
out["log_emax"] = np.array([emax], dtype=np.int32)

# SmoothQuant scales, alpha 0.5 and 0.8
X = rng.standard_normal((64, 24)).astype(np.float32)
X[:, [3, 17]] *= 60.0
W = (rng.standard_normal((16, 24)) * 0.05).astype(np.float32)
W[:, 5] = 0.0
out["sq_x"] = X
out["sq_w"] = W
act = np.abs(X).max(axis=0).astype(np.float64)
wmax = np.maximum(np.abs(W).max(axis=0).astype(np.float64), 1e-5)
for al, name in [(0.5, "sq_s05"), (float(np.float32(0.8)), "sq_s08")]:  # alpha as the f32 the Rust API takes
    out[name] = np.maximum(np.maximum(act, 1e-5) ** al / wmax ** (1 - al), 1e-5).astype(np.float32)

# fake quant, affine uint8 (torch formula) and symmetric int4
fx = (rng.standard_normal(300) * 2.0).astype(np.float32)
def fq(x, scale, zp, qmin, qmax):
    inv = np.float32(1.0) / np.float32(scale)
    r = np.rint(x * inv).astype(np.float64) + zp
    q = np.clip(r, qmin, qmax)
    y = ((q - zp).astype(np.float32) * np.float32(scale)).astype(np.float32)
    return y, ((r >= qmin) & (r <= qmax)).astype(np.float32)
out["fq_x"] = fx
out["fq_u8_y"], out["fq_u8_mask"] = fq(fx, 0.021, 97, 0, 255)
out["fq_s4_y"], out["fq_s4_mask"] = fq(fx, 0.37, 0, -7, 7)

# GradScaler schedule (torch._amp_update_scale_), float32 scale
flags = np.zeros(7000, dtype=np.uint8)
flags[[10, 2500, 2501, 6100]] = 1
scale, tracker, scales = np.float32(65536.0), 0, []
for f in flags:
    if f:
        scale = np.float32(np.float64(scale) * 0.5)
        tracker = 0
    else:
        succ = tracker + 1
        if succ == 2000:
            new = np.float32(np.float64(scale) * 2.0)
            if np.isfinite(new):
                scale = new
            tracker = 0
        else:
            tracker = succ
    scales.append(scale)
out["gs_flags"] = flags
out["gs_scales"] = np.array(scales, dtype=np.float32)

np.savez("scheme_refs.npz", **out)
