"""Golden fixture for kernels/fp8.c: torch's fp32 -> float8_e4m3fn / float8_e5m2 casts.

Run from the repository root:  python3 tests/ref/make_fp8_fixture.py
Needs: torch, numpy.
Writes: tests/fixtures/fp8/casts.bin (about 300 KB), read by tests/test_fp8.c. Layout, all
little-endian:
  char[4] "PTF8", uint32 version (1), uint32 n, uint32 flags, char[32] torch version (NUL-padded),
  float32 x[n]            the inputs,
  uint8   e4m3[n]         x.to(torch.float8_e4m3fn) as raw bytes,
  uint8   e5m2[n]         x.to(torch.float8_e5m2) as raw bytes.
flags bit 0: torch's E4M3 cast saturates (overflow and inf give ±448); bit 1: its E5M2 cast does.
The inputs: every finite value of both formats and the exact midpoint between each pair of
neighbours (ties to even), the fp32 neighbours of each midpoint, ±0, fp32 subnormals, values
around and beyond the largest finite values (448, 464, 480, 57344, 61440, 65536, 1e38), ±inf,
NaNs with several payloads and both signs, and 30000 random values spread over exponents -40..40
plus random bit patterns. Each positive input also appears negated.
Overflow differs between torch versions: older ones turn an E4M3 overflow into NaN, current ones
(2.15 here) saturate it to ±448, inf included; E5M2 overflows to inf. The flags record which, and
tests/test_fp8.c compares torch with the matching mode of kernels/fp8.h bit for bit.
"""
import os
import struct

import numpy as np
import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "fp8", "casts.bin")


def finite_values(dtype):
    codes = torch.arange(256, dtype=torch.uint8).view(dtype).float()
    v = codes[torch.isfinite(codes)]
    return torch.unique(v[v >= 0]).sort().values


def main():
    rng = np.random.default_rng(8)
    xs = []
    for dt in (torch.float8_e4m3fn, torch.float8_e5m2):
        v = finite_values(dt).numpy().astype(np.float32)
        mids = ((v[:-1].astype(np.float64) + v[1:]) / 2).astype(np.float32)
        xs += [v, mids, np.nextafter(mids, np.float32(np.inf)), np.nextafter(mids, np.float32(0))]
        # beyond the top: the would-be next value and the midpoint to it
        top = float(v[-1])
        step = float(v[-1] - v[-2])
        xs.append(np.array([top + step / 2, top + step, top + 1.5 * step, top * 2], np.float32))
    xs.append(np.array([0.0, 448, 464, 479.99997, 480, 481, 500, 57344, 61439.996, 61440, 61441, 65536, 1e5,
                        1e38, 3.4028235e38, np.inf], np.float32))
    # fp32 subnormals and tiny normals (all round to zero or the smallest subnormals)
    xs.append(np.array([1e-45, 1e-40, 1.1754942e-38, 1.17549435e-38, 2.0 ** -17, 2.0 ** -10, 2.0 ** -10 * 1.5,
                        2.0 ** -10 * 1.0000001, 2.0 ** -17 * 1.0000001, 2.0 ** -18 * 1.5], np.float32))
    rnd = (rng.uniform(1, 2, 20000) * 2.0 ** rng.integers(-40, 41, 20000)).astype(np.float32)
    bits = rng.integers(0, 0x7F800000, 10000, dtype=np.uint32).view(np.float32)
    xs += [rnd, bits]
    pos = np.concatenate(xs).astype(np.float32)
    x = np.concatenate([pos, -pos])
    nan_bits = np.array([0x7FC00000, 0x7F800001, 0x7FBFFFFF, 0xFFC00000, 0xFF800001, 0x7FFFFFFF], np.uint32)
    x = np.concatenate([x, nan_bits.view(np.float32)])
    t = torch.from_numpy(x.copy())
    e4 = t.to(torch.float8_e4m3fn).view(torch.uint8).numpy()
    e5 = t.to(torch.float8_e5m2).view(torch.uint8).numpy()
    probe = torch.tensor([1000.0])
    flags = int(probe.to(torch.float8_e4m3fn).view(torch.uint8).item() == 0x7E)
    flags |= int(torch.tensor([1e6]).to(torch.float8_e5m2).view(torch.uint8).item() == 0x7B) << 1
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "wb") as f:
        f.write(b"PTF8" + struct.pack("<III", 1, len(x), flags) + torch.__version__.encode()[:31].ljust(32, b"\0"))
        f.write(x.astype("<f4").tobytes())
        f.write(e4.tobytes())
        f.write(e5.tobytes())
    print(f"wrote {OUT}: {len(x)} values, flags {flags}, torch {torch.__version__}, {os.path.getsize(OUT)} bytes")


if __name__ == "__main__":
    main()
