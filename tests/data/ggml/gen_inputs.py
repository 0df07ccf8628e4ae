import numpy as np
rng = np.random.default_rng(4)
B = []
for _ in range(48): B.append(rng.standard_normal(32))
for s in [1e-6, 1e-3, 0.02, 100.0, 1e4]:
    for _ in range(4): B.append(rng.standard_normal(32) * s)
# ties for q8_0: amax 127 -> d = 1, id = 1
t = np.arange(32) - 15.5; t[0] = 127.0; B.append(t)
t = -(np.arange(32) - 15.5); t[0] = -127.0; B.append(t)
# q4_0: max = -8 -> d = 1, id = 1; and duplicate-magnitude maxima
t = rng.integers(-16, 17, 32) / 2.0; t[3] = -8.0; t[20] = 8.0; B.append(t)
t = rng.standard_normal(32); t[5] = 5.0; t[9] = -5.0; B.append(t)
t = rng.standard_normal(32); t[5] = -5.0; t[9] = 5.0; B.append(t)
B.append(np.zeros(32)); B.append(-np.zeros(32))
t = np.zeros(32); t[1::2] = -0.0; B.append(t)
t = np.zeros(32); t[0] = -0.0; B.append(t)
B.append(np.full(32, 3.25)); B.append(np.full(32, -1.5))
t = np.abs(rng.standard_normal(32)) + 1.0; B.append(t)   # all positive (q4_1 min > 0)
t = -np.abs(rng.standard_normal(32)) - 1.0; B.append(t)
t = rng.integers(0, 16, 32).astype(np.float64) * 0.1 - 0.3; B.append(t)  # q4_1 near-ties
for _ in range(6):
    t = rng.standard_normal(32); t[rng.integers(0,32)] = rng.choice([-1,1]) * 40.0; B.append(t)  # outliers
x = np.concatenate(B).astype(np.float32)
x.tofile("input.f32")
print(x.size // 32, "blocks")
